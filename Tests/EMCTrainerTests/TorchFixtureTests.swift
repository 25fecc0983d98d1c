import Foundation
import EMCCore
import EMCTrainer
import Testing

/// The PyTorch reference fixtures (scripts/bench/torch_fixtures.py): the same spec built in PyTorch, loaded with emc's
/// initial parameters and run on the same batch. Errors are ‖a − b‖ / ‖b‖ per tensor.
struct TorchFixture: Decodable {
    var name: String
    var spec: String
    var input: [Int]
    var classes: Int
    var batch: Int
    var seed: UInt64
    var parameterCount: Int
    var tensors: [Int]
    var parametersCRC32C: UInt32
    var inputCRC32C: UInt32
    var sgdLearningRate: Double
    var adamLearningRate: Double
    var loss: Double
    var logits: [Float]
    var batchNormRunning: [[[Float]]]

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/torch").path
    static let names = ["mlp", "cnn", "resnet-projection", "resnet-a", "resnet-conv3", "efficientnet", "vit-cls", "vit-mean"]

    static func load(_ name: String) throws -> (TorchFixture, grads: [Float], sgd: [Float], adam: [Float]) {
        let fixture = try JSONDecoder().decode(TorchFixture.self, from: Data(try ReadableFile.contents(of: "\(directory)/\(name).json")))
        let bytes = try ReadableFile.contents(of: "\(directory)/\(name).bin")
        let p = fixture.parameterCount
        guard bytes.count == 3 * p * 4 else { throw EMCError(.format, "\(name).bin has \(bytes.count) bytes, expected \(3 * p * 4)") }
        let floats = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return (fixture, Array(floats[0..<p]), Array(floats[p..<(2 * p)]), Array(floats[(2 * p)...]))
    }
}

/// ‖a − b‖ / ‖b‖ (‖a‖ when b is zero).
func relativeError(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
    var diff = 0.0, norm = 0.0
    for (x, y) in zip(a, b) { diff += Double(x - y) * Double(x - y); norm += Double(y) * Double(y) }
    return norm > 0 ? (diff / norm).squareRoot() : diff.squareRoot()
}

/// Whether emc's tensor `a` matches PyTorch's `b`: ‖a − b‖ / ‖b‖ ≤ `tolerance`; or, when `b` is zero up to float rounding
/// (‖b‖ ≤ 1e-6·`scale`: a quantity that is zero in exact arithmetic, such as the gradient of a shift that a later batch
/// norm removes, or of attention's key bias), ‖a‖ ≤ 1e-5·`scale` too. Returns the error and the rule applied.
func tensorMatch(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>, tolerance: Double, scale: Double) -> (ok: Bool, error: Double, rule: String) {
    let nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    if nb <= 1e-6 * scale {
        let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        return (na <= 1e-5 * scale, na / scale, "zero in exact arithmetic: ‖a‖/scale")
    }
    let e = relativeError(a, b)
    return (e <= tolerance, e, "‖a − b‖/‖b‖")
}

func norm(_ a: [Float]) -> Double { a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

/// The batch-norm layers of a model in order, inside blocks too.
func batchNorms(_ layers: [Layer]) -> [BatchNorm] {
    layers.flatMap { layer -> [BatchNorm] in
        if let bn = layer as? BatchNorm { return [bn] }
        if let block = layer as? CompositeLayer { return batchNorms(block.sublayers) }
        return []
    }
}

@Suite("Matched to PyTorch (committed fixtures)")
struct TorchFixtureTests {
    @Test("logits, loss, gradients, running statistics, and one SGD and one Adam step", arguments: TorchFixture.names)
    func matches(name: String) throws {
        let (fixture, grads, sgd, adam) = try TorchFixture.load(name)
        let shape = FeatureShape(height: fixture.input[0], width: fixture.input[1], channels: fixture.input[2])
        let spec = try ModelSpec(parsing: fixture.spec)
        #expect(spec.description == fixture.spec)
        func fresh() throws -> Model {
            let model = try spec.build(input: shape, classes: fixture.classes, maxBatch: fixture.batch)
            model.initialize(seed: fixture.seed)
            return model
        }
        let model = try fresh()
        #expect(model.parameterCount == fixture.parameterCount, "parameter counts: emc \(model.parameterCount), PyTorch \(fixture.parameterCount)")
        #expect(model.parameterLayout.map(\.count) == fixture.tensors)
        let initial = model.parameterValues
        try #require(CRC32C.checksum(initial.withUnsafeBytes { Array($0) }) == fixture.parametersCRC32C,
                     "emc's initialisation changed since the fixture was written: rerun scripts/bench/torch_fixtures.py")
        // The batch TorchExport writes: uniform in [−1, 1] from the seed, labels (3i + 1) mod classes.
        let rng = CounterRNG(seed: fixture.seed, stream: .test)
        let inputs = (0..<(fixture.batch * shape.count)).map { 2 * rng.uniform(UInt64($0)) - 1 }
        let labels = (0..<fixture.batch).map { Int32((3 * $0 + 1) % fixture.classes) }
        try #require(CRC32C.checksum(inputs.withUnsafeBytes { Array($0) }) == fixture.inputCRC32C)

        func gradientStep(_ model: Model) -> (logits: [Float], loss: Double) {
            model.zeroGradients()
            return inputs.withUnsafeBufferPointer { x in labels.withUnsafeBufferPointer { y in
                let z = model.forward(x.baseAddress!, batch: fixture.batch)
                let r = SoftmaxCrossEntropy.evaluate(logits: z, labels: y.baseAddress!, batch: fixture.batch, classes: fixture.classes,
                                                     gradient: model.logitGradient, scale: 1 / Float(fixture.batch))
                let logits = Array(UnsafeBufferPointer(start: z, count: fixture.batch * fixture.classes))
                model.backward(x.baseAddress!, batch: fixture.batch)
                return (logits, r.lossSum / Double(fixture.batch))
            } }
        }
        let (logits, loss) = gradientStep(model)
        #expect(relativeError(logits[...], fixture.logits[...]) <= 1e-4, "logits")
        #expect(abs(loss - fixture.loss) / abs(fixture.loss) <= 1e-4, "loss \(loss) vs PyTorch \(fixture.loss)")
        let layout = model.parameterLayout
        let emcGrads = Array(model.gradients.prefix(model.parameterCount))
        let gradScale = norm(grads)
        for (i, t) in layout.enumerated() {
            let range = t.offset..<(t.offset + t.count)
            let m = tensorMatch(emcGrads[range], grads[range], tolerance: 1e-3, scale: gradScale)
            #expect(m.ok, "gradient of tensor \(i) (\(t.count) values): \(m.rule) = \(m.error)")
        }
        let norms = batchNorms(model.layers)
        #expect(norms.count == fixture.batchNormRunning.count)
        let meanScale = norm(fixture.batchNormRunning.flatMap { $0[0] })
        for (k, (bn, running)) in zip(norms, fixture.batchNormRunning).enumerated() {
            let m = tensorMatch(bn.runningMean[...], running[0][...], tolerance: 1e-4, scale: meanScale)
            #expect(m.ok, "batch norm \(k)'s running mean: \(m.rule) = \(m.error)")
            #expect(relativeError(bn.runningVariance[...], running[1][...]) <= 1e-4, "batch norm \(k)'s running variance")
        }
        for (optimizerText, lr, expected) in [("sgd:lr=\(fixture.sgdLearningRate)", fixture.sgdLearningRate, sgd),
                                              ("adam:lr=\(fixture.adamLearningRate)", fixture.adamLearningRate, adam)] {
            let model = try fresh()
            _ = gradientStep(model)
            let optimizer = Optimizer(spec: try OptimizerSpec(parsing: optimizerText), layout: model.parameterLayout)
            optimizer.step(parameters: model.parameters, gradients: model.gradients, lr: lr)
            var updated = model.parameterValues
            var compared = expected
            if optimizerText.hasPrefix("adam") {
                // Adam's first step moves each value by lr·g/(|g| + 1e-8): for a gradient that is zero in exact
                // arithmetic (|g| ≤ 1e-6·‖g‖, rounding noise in both), that is lr times the noise's sign and size,
                // in PyTorch as here. Those values are held to the bound |step| ≤ lr and left out of the comparison.
                for j in 0..<updated.count where Double(abs(grads[j])) <= 1e-6 * gradScale {
                    #expect(Double(abs(updated[j] - initial[j])) <= lr * 1.0001)
                    updated[j] = 0
                    compared[j] = 0
                }
            }
            let paramScale = norm(compared)
            for (i, t) in layout.enumerated() {
                let range = t.offset..<(t.offset + t.count)
                let m = tensorMatch(updated[range], compared[range], tolerance: 1e-3, scale: paramScale)
                #expect(m.ok, "\(optimizerText): tensor \(i) after one step: \(m.rule) = \(m.error)")
            }
            if optimizerText.hasPrefix("sgd") {
                // The step itself, not only where it lands: θ₁ − θ₀ against PyTorch's.
                let ours = zip(updated, initial).map { $0 - $1 }, theirs = zip(expected, initial).map { $0 - $1 }
                #expect(relativeError(ours[...], theirs[...]) <= 1e-3, "the SGD update")
            }
        }
    }
}
