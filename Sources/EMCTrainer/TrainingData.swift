import EMCCore

/// What the trainer consumes: `count` labelled samples, delivered as Float32 batches. The trainer
/// knows nothing of files; the data pipeline (or a test) implements this.
public protocol TrainingData: AnyObject {
    var count: Int { get }
    var shape: FeatureShape { get }
    var classes: Int { get }
    /// Writes the samples `indices` (each in 0..<count) into `inputs` ([indices.count, shape.count], NHWC)
    /// and their labels into `labels`.
    func load(_ indices: UnsafeBufferPointer<UInt32>, inputs: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>) throws
    /// The order of training epoch `epoch`. Default: `epochOrder(seed:epoch:count:)`, a full shuffle;
    /// a streaming source returns a chunk-window shuffle instead.
    func order(epoch: Int, seed: UInt64) -> [UInt32]
    /// Called before each training epoch with its order and batch size, so a source can prefetch.
    func beginEpoch(_ epoch: Int, order: [UInt32], batchSize: Int)
}

extension TrainingData {
    public func order(epoch: Int, seed: UInt64) -> [UInt32] { epochOrder(seed: seed, epoch: epoch, count: count) }
    public func beginEpoch(_ epoch: Int, order: [UInt32], batchSize: Int) {}
}

/// Samples already in memory as floats: for tests, benchmarks and small sets.
public final class InMemoryTrainingData: TrainingData {
    public let inputs: [Float]
    public let labels: [Int32]
    public let shape: FeatureShape
    public let classes: Int

    public init(inputs: [Float], labels: [Int32], shape: FeatureShape, classes: Int) {
        precondition(inputs.count == labels.count * shape.count, "InMemoryTrainingData: inputs do not match labels × shape")
        self.inputs = inputs
        self.labels = labels
        self.shape = shape
        self.classes = classes
    }

    public var count: Int { labels.count }

    public func load(_ indices: UnsafeBufferPointer<UInt32>, inputs out: UnsafeMutablePointer<Float>, labels outLabels: UnsafeMutablePointer<Int32>) throws {
        let d = shape.count
        inputs.withUnsafeBufferPointer { src in
            for (k, i) in indices.enumerated() {
                (out + k * d).update(from: src.baseAddress! + Int(i) * d, count: d)
                outLabels[k] = labels[Int(i)]
            }
        }
    }
}
