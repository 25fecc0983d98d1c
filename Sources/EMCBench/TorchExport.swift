import EMCCore
import EMCTrainer
import Foundation

/// `emc bench export-torch`: a freshly initialised model and one fixed batch, written for scripts/bench/torch_fixtures.py,
/// which loads them into the same spec built in PyTorch and writes the reference outputs the trainer's tests compare
/// against (Tests/EMCTrainerTests/Fixtures/torch).
///
/// Files: `params.bin` (the flat parameter store, float32 little-endian, emc's layouts), `input.bin` (the batch, NHWC
/// float32, uniform in [−1, 1] from the seed), `labels.bin` (int32, (3·i + 1) mod classes), the native model's answer on
/// that batch (`logits.bin`: a training-mode forward, [batch, classes]; `gradients.bin`: the gradient of the mean
/// cross-entropy, in store order; both float32) and `meta.json` (the spec, shapes, each parameter tensor's layer and size
/// in order, the loss, and CRC32C digests of the parameters and the input).
public enum TorchExport {
    public struct Tensor: Codable, Sendable {
        public var layer: String
        public var count: Int
    }

    public struct Meta: Codable, Sendable {
        public var spec: String
        public var input: [Int]
        public var classes: Int
        public var batch: Int
        public var seed: UInt64
        public var parameterCount: Int
        public var tensors: [Tensor]
        public var parametersCRC32C: UInt32
        public var inputCRC32C: UInt32
        /// The mean cross-entropy of the native model's training-mode forward on the batch.
        public var loss: Double?
        /// With `hessianSteps`: the native Hessian check of the mean loss over the batch at these parameters (Lanczos
        /// with that many steps; as many as parameters gives the exact extreme eigenvalues).
        public var hessian: HessianCheck?
    }

    /// The batch's inputs and labels for (shape, batch, classes, seed): the same in the exporter and in the tests.
    public static func batch(shape: FeatureShape, batch: Int, classes: Int, seed: UInt64) -> (inputs: [Float], labels: [Int32]) {
        let rng = CounterRNG(seed: seed, stream: .test)
        return ((0..<(batch * shape.count)).map { 2 * rng.uniform(UInt64($0)) - 1 }, (0..<batch).map { Int32((3 * $0 + 1) % classes) })
    }

    /// Every parameter tensor's layer name, in store order (blocks' layers in their own order).
    public static func tensors(_ model: Model) -> [Tensor] {
        func walk(_ layer: Layer) -> [Tensor] {
            if let block = layer as? CompositeLayer { return block.sublayers.flatMap(walk) }
            return layer.parameterTensors.map { Tensor(layer: layer.name, count: $0.count) }
        }
        return model.layers.flatMap(walk)
    }

    public static func write(spec text: String, input: FeatureShape, classes: Int, batch: Int, seed: UInt64, to directory: String,
                             force: Bool, hessianSteps: Int? = nil) throws -> Meta {
        let spec = try ModelSpec(parsing: text)
        let model = try spec.build(input: input, classes: classes, maxBatch: batch)
        model.initialize(seed: seed)
        let (inputs, labels) = Self.batch(shape: input, batch: batch, classes: classes, seed: seed)
        try FileSystem.createDirectory(directory)
        let metaPath = directory + "/meta.json"
        if FileSystem.exists(metaPath) && !force {
            throw EMCError(.invalidArgument, "\(metaPath) exists; pass --force to overwrite it")
        }
        let parameters = model.parameterValues
        let paramBytes = parameters.withUnsafeBytes { Array($0) }, inputBytes = inputs.withUnsafeBytes { Array($0) }
        // The native answer: one training-mode forward and the mean cross-entropy's gradient (parameters unchanged).
        model.zeroGradients()
        let (logits, loss) = inputs.withUnsafeBufferPointer { x in
            labels.withUnsafeBufferPointer { y in
                let out = model.forward(x.baseAddress!, batch: batch)
                let logits = Array(UnsafeBufferPointer(start: out, count: batch * classes))
                let r = SoftmaxCrossEntropy.evaluate(logits: out, labels: y.baseAddress!, batch: batch, classes: model.classes,
                                                     gradient: model.logitGradient, scale: 1 / Float(batch))
                model.backward(x.baseAddress!, batch: batch)
                return (logits, r.lossSum / Double(batch))
            }
        }
        let gradients = Array(model.gradients.prefix(model.parameterCount))
        var meta = Meta(spec: spec.description, input: [input.height, input.width, input.channels], classes: classes, batch: batch, seed: seed,
                        parameterCount: model.parameterCount, tensors: tensors(model),
                        parametersCRC32C: CRC32C.checksum(paramBytes), inputCRC32C: CRC32C.checksum(inputBytes))
        meta.loss = loss
        if let steps = hessianSteps {
            var options = FitOptions()
            options.batch = batch
            options.evalBatch = batch
            let data = try InMemoryTrainingData(inputs: inputs, labels: labels, shape: input, classes: classes)
            var check = HessianCheckOptions()
            check.steps = steps
            meta.hessian = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: "sgd:lr=0.01"), options: options)
                .checkHessian(check, seed: seed)
        }
        try AtomicFileWriter.write(logits.withUnsafeBytes { Array($0) }, to: directory + "/logits.bin")
        try AtomicFileWriter.write(gradients.withUnsafeBytes { Array($0) }, to: directory + "/gradients.bin")
        try AtomicFileWriter.write(paramBytes, to: directory + "/params.bin")
        try AtomicFileWriter.write(inputBytes, to: directory + "/input.bin")
        try AtomicFileWriter.write(labels.withUnsafeBytes { Array($0) }, to: directory + "/labels.bin")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFileWriter.write(Array(try encoder.encode(meta)), to: metaPath)
        return meta
    }
}
