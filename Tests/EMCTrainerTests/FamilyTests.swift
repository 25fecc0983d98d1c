import EMCCore
import EMCTrainer
import Testing

/// n random images with random labels.
func randomImages(n: Int, shape: FeatureShape, classes: Int, seed: UInt64) throws -> InMemoryTrainingData {
    let rng = CounterRNG(seed: seed, stream: .test)
    let inputs = (0..<(n * shape.count)).map { Float(rng.normal(UInt64($0))) }
    let labels = (0..<n).map { Int32(rng.int(UInt64(1 << 32 | $0), below: UInt32(classes))) }
    return try InMemoryTrainingData(inputs: inputs, labels: labels, shape: shape, classes: classes)
}

@Suite("ResNet, EfficientNet and ViT specs, and how a batch-norm model is judged")
struct FamilyTests {
    static let image = FeatureShape(height: 32, width: 32, channels: 3)

    @Test("specs print in a canonical form that parses back to the same model")
    func roundTrip() throws {
        for text in ["resnet:width=0.5,blocks=3,stages=3,shortcut=a", "resnet", "efficientnet:phi=1", "efficientnet:width=0.25,depth=0.5,stages=4",
                     "vit:dim=32,depth=3,heads=4,patch=8,mlp=2,pool=mean", "vit"] {
            let spec = try ModelSpec(parsing: text)
            let again = try ModelSpec(parsing: spec.description)
            #expect(again == spec, "\(text) → \(spec.description)")
            #expect(try spec.parameterCount(input: Self.image, classes: 10) == again.parameterCount(input: Self.image, classes: 10))
        }
        // The defaults: the paper authors' ResNet depth (2 blocks per stage), B0, and a small CIFAR ViT.
        #expect(try ModelSpec(parsing: "resnet").description == "resnet:width=1,blocks=2,stages=3,shortcut=projection,act=relu")
        #expect(try ModelSpec(parsing: "efficientnet:phi=0").parameterCount(input: Self.image, classes: 1000) == 5_288_548)  // torchvision's B0
    }

    @Test("a class-token ViT's products are counted as it computes them: the last block's keys and values for every token, the rest for the class token")
    func classTokenFLOPs() throws {
        let shape = FeatureShape(height: 8, width: 8, channels: 3)
        let model = try ModelSpec(parsing: "vit:dim=16,depth=1,heads=2,patch=4,mlp=4").build(input: shape, classes: 10, maxBatch: 8)
        let (b, d, t) = (8.0, 16.0, 5.0)  // 2×2 patches and the class token
        let embed = 2 * b * 4 * (4 * 4 * 3) * d * 2          // the first trainable layer: forward and weight gradient
        let qkv = 2 * b * d * d * (2 * t + 1) * 3            // keys and values for 5 tokens, one query
        let classRows = 2 * b * (d * d + d * 4 * d + 4 * d * d) * 3  // projection and MLP on the class token
        let head = 2 * b * d * 10 * 3
        #expect(model.gemmFLOPsPerStep(batch: 8) == embed + qkv + classRows + head)
    }

    @Test("a spec that cannot take the data's shape, or contradicts itself, is a clear error", arguments: [
        ("vit:patch=5", FeatureShape(height: 32, width: 32, channels: 3), "does not tile"),
        ("vit:dim=30,heads=4", FeatureShape(height: 32, width: 32, channels: 3), "divisible by heads"),
        ("resnet:stages=4", FeatureShape.vector(54), "vectors: use mlp"),
        ("efficientnet", FeatureShape(height: 4, width: 4, channels: 3), "at least 8×8"),
        ("efficientnet:phi=1,width=2", FeatureShape(height: 32, width: 32, channels: 3), "not both"),
        ("resnet:width=0", FeatureShape(height: 32, width: 32, channels: 3), "width=0"),
        ("resnet:shortcut=b", FeatureShape(height: 32, width: 32, channels: 3), "shortcut"),
    ])
    func shapeErrors(spec: String, shape: FeatureShape, message: String) {
        do {
            _ = try ModelSpec(parsing: spec).build(input: shape, classes: 10, maxBatch: 8)
            Issue.record("\(spec) on \(shape) was accepted")
        } catch let error as EMCError {
            #expect(error.description.contains(message), "\(error.description)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("a ResNet's fit is judged in evaluation mode with statistics recomputed over the n samples, and recorded so")
    func batchNormDecision() throws {
        let shape = FeatureShape(height: 8, width: 8, channels: 1)
        let data = try randomImages(n: 24, shape: shape, classes: 2, seed: 4)
        let model = try ModelSpec(parsing: "resnet:width=0.5,blocks=1,stages=2").build(input: shape, classes: 2, maxBatch: 16)
        model.initialize(seed: 1)
        var options = FitOptions()
        options.batch = 8
        options.evalBatch = 16
        options.budget.epochs = 200
        let trainer = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: "adam:lr=0.01"), options: options)
        let outcome = try trainer.fit()
        #expect(outcome.result == .fitted, "\(outcome.reason)")
        #expect(outcome.batchNorm == FitOutcome.batchNormDecision)
        // The same count by hand: collect statistics over the 24 samples in batches of 16, then evaluate with them.
        var inputs = [Float](repeating: 0, count: 24 * shape.count), labels = [Int32](repeating: 0, count: 24)
        try (0..<24).map(UInt32.init).withUnsafeBufferPointer { i in
            try inputs.withUnsafeMutableBufferPointer { x in try labels.withUnsafeMutableBufferPointer { try data.loadBatch(i, inputs: x, labels: $0) } }
        }
        func wrong() -> Int {
            var count = 0
            for start in stride(from: 0, to: 24, by: 16) {
                let b = min(16, 24 - start)
                let z = inputs.withUnsafeBufferPointer { model.forward($0.baseAddress! + start * shape.count, batch: b) }
                for s in 0..<b where (z[2 * s + 1] > z[2 * s] ? 1 : 0) != labels[start + s] { count += 1 }
            }
            return count
        }
        model.setMode(.collecting)
        _ = wrong()
        model.setMode(.evaluation)
        #expect(wrong() == outcome.wrong)
        model.setMode(.training)
        // The decision is a function of the samples and parameters: twice the same, and the model back in training mode.
        let first = try trainer.fullPass(gradient: false), second = try trainer.fullPass(gradient: false)
        #expect(first.loss == second.loss && first.wrong == second.wrong)
        #expect(batchNorms(model.layers).allSatisfy { $0.mode == .training })

        // Other data (a test split) is measured with the training samples' statistics, not its own.
        let other = try randomImages(n: 16, shape: shape, classes: 2, seed: 9)
        let tester = try Trainer(model: model, data: other, optimizer: try OptimizerSpec(parsing: "sgd:lr=0.01"), options: options)
        try trainer.prepareEvaluation()
        let withTrainStatistics = try tester.evaluateAsIs()
        model.setMode(.training)
        model.setMode(.collecting)
        _ = wrong()  // the 24 training samples again, by hand
        model.setMode(.evaluation)
        let byHand = try tester.evaluateAsIs()
        model.setMode(.training)
        #expect(withTrainStatistics.loss == byHand.loss && withTrainStatistics.wrong == byHand.wrong)
        #expect(try tester.fullPass(gradient: false).loss != byHand.loss, "the test data's own statistics give another function")

        // A model without batch norm records nothing.
        let plain = try ModelSpec(parsing: "cnn:channels=2,layers=1").build(input: shape, classes: 2, maxBatch: 16)
        plain.initialize(seed: 1)
        options.budget.epochs = 3
        let plainOutcome = try Trainer(model: plain, data: data, optimizer: try OptimizerSpec(parsing: "sgd:lr=0.01"), options: options).fit()
        #expect(plainOutcome.batchNorm == nil)
    }

    @Test("the Hessian check refuses a model with a layer whose R-operator is not written, naming it")
    func hessianRefusal() throws {
        let shape = FeatureShape(height: 8, width: 8, channels: 1)
        let data = try randomImages(n: 8, shape: shape, classes: 2, seed: 4)
        for (spec, names) in [("vit:dim=8,depth=1,heads=2,patch=4", ["attention", "layernorm", "tokens"]), ("efficientnet:width=0.1,depth=0.1,stages=1", ["squeeze-excite"])] {
            let model = try ModelSpec(parsing: spec).build(input: shape, classes: 2, maxBatch: 8)
            model.initialize(seed: 1)
            var options = FitOptions()
            options.batch = 8
            options.evalBatch = 8
            let trainer = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: "sgd:lr=0.01"), options: options)
            do {
                _ = try trainer.checkHessian(seed: 1)
                Issue.record("\(spec): the check ran")
            } catch let error as EMCError {
                for name in names { #expect(error.description.contains(name), "\(error.description)") }
                #expect(error.description.contains("--hessian-check off"))
            }
        }
    }
}
