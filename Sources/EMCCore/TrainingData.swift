/// The data protocol between the batch pipeline and the trainer: samples delivered as Float32 batches.
/// The trainer knows batches, not files; the pipeline (or a test) implements `TrainingData`, and neither
/// module imports the other. Buffers cross with their counts, and labels are range-checked here, once.

/// The shape of one sample as it flows through a network: height × width × channels, channels
/// innermost (NHWC). Feature vectors are 1 × 1 × F.
public struct FeatureShape: Sendable, Equatable, CustomStringConvertible {
    public var height: Int
    public var width: Int
    public var channels: Int

    public init(height: Int, width: Int, channels: Int) {
        self.height = height
        self.width = width
        self.channels = channels
    }

    public static func vector(_ n: Int) -> FeatureShape { FeatureShape(height: 1, width: 1, channels: n) }

    public var count: Int { height * width * channels }
    public var description: String { height == 1 && width == 1 ? "\(channels)" : "\(height)×\(width)×\(channels)" }
}

/// What the trainer consumes: `count` labelled samples, delivered as Float32 batches.
public protocol TrainingData: AnyObject {
    var count: Int { get }
    var shape: FeatureShape { get }
    var classes: Int { get }
    /// Where the samples come from, for error messages (a shard set's folder).
    var source: String { get }
    /// Writes the samples `indices` (each in 0..<count) into `inputs` (indices.count × shape.count floats, NHWC)
    /// and their labels into `labels` (indices.count values). Callers go through `loadBatch`, which checks both.
    func load(_ indices: UnsafeBufferPointer<UInt32>, inputs: UnsafeMutableBufferPointer<Float>, labels: UnsafeMutableBufferPointer<Int32>) throws
    /// The order of training epoch `epoch`. Default: `epochOrder(seed:epoch:count:)`, a full shuffle;
    /// a streaming source returns a chunk-window shuffle instead.
    func order(epoch: Int, seed: UInt64) -> [UInt32]
    /// Called before each training epoch with its order and batch size, so a source can prefetch.
    func beginEpoch(_ epoch: Int, order: [UInt32], batchSize: Int)
}

extension TrainingData {
    public var source: String { "training data" }
    public func order(epoch: Int, seed: UInt64) -> [UInt32] { epochOrder(seed: seed, epoch: epoch, count: count) }
    public func beginEpoch(_ epoch: Int, order: [UInt32], batchSize: Int) {}

    /// `load`, with the contract checked: buffer sizes match the batch, indices are in range, and every label is
    /// a class the data declares (a label past the class count would index past the loss's buffers).
    public func loadBatch(_ indices: UnsafeBufferPointer<UInt32>, inputs: UnsafeMutableBufferPointer<Float>,
                          labels: UnsafeMutableBufferPointer<Int32>) throws {
        guard inputs.count == indices.count * shape.count, labels.count == indices.count else {
            throw EMCError(.invalidArgument, "batch buffers do not match the batch", file: source,
                           expected: "\(indices.count * shape.count) inputs and \(indices.count) labels", found: "\(inputs.count) and \(labels.count)")
        }
        if let bad = indices.firstIndex(where: { Int($0) >= count }) {
            throw EMCError(.invalidArgument, "sample \(indices[bad]) is outside the \(count) samples", file: source)
        }
        try load(indices, inputs: inputs, labels: labels)
        for k in 0..<labels.count where labels[k] < 0 || Int(labels[k]) >= classes {
            throw EMCError(.format, "label \(labels[k]) is not one of the \(classes) classes the data declares "
                           + "(the manifest's class count is wrong, or a label is damaged)", file: source, place: .sample(Int(indices[k])),
                           expected: "0..<\(classes)", found: "\(labels[k])")
        }
    }
}

/// Samples already in memory as floats: for tests, benchmarks and small sets.
public final class InMemoryTrainingData: TrainingData {
    public let inputs: [Float]
    public let labels: [Int32]
    public let shape: FeatureShape
    public let classes: Int

    /// Throws when `inputs` is not `labels.count` samples of `shape`.
    public init(inputs: [Float], labels: [Int32], shape: FeatureShape, classes: Int) throws {
        guard inputs.count == labels.count * shape.count else {
            throw EMCError(.invalidArgument, "in-memory training data: \(inputs.count) inputs are not \(labels.count) samples of \(shape)")
        }
        self.inputs = inputs
        self.labels = labels
        self.shape = shape
        self.classes = classes
    }

    public var count: Int { labels.count }

    public func load(_ indices: UnsafeBufferPointer<UInt32>, inputs out: UnsafeMutableBufferPointer<Float>, labels outLabels: UnsafeMutableBufferPointer<Int32>) throws {
        let d = shape.count
        inputs.withUnsafeBufferPointer { src in
            for (k, i) in indices.enumerated() {
                (out.baseAddress! + k * d).update(from: src.baseAddress! + Int(i) * d, count: d)
                outLabels[k] = labels[Int(i)]
            }
        }
    }
}
