import EMCCore
import EMCTrainer
import Testing

/// n random points in d dimensions with random labels: pure memorisation.
func randomData(n: Int, d: Int, classes: Int, seed: UInt64) throws -> InMemoryTrainingData {
    let rng = CounterRNG(seed: seed, stream: .test)
    let inputs = (0..<(n * d)).map { Float(rng.normal(UInt64($0))) }
    let labels = (0..<n).map { Int32(rng.int(UInt64(1 << 32 | $0), below: UInt32(classes))) }
    return try InMemoryTrainingData(inputs: inputs, labels: labels, shape: .vector(d), classes: classes)
}

func train(_ model: String, _ optimizer: String, data: InMemoryTrainingData, epochs: Int, seed: UInt64 = 1,
           batch: Int = 16, configure: (inout FitOptions) -> Void = { _ in }) throws -> (FitOutcome, Model) {
    let spec = try ModelSpec(parsing: model)
    var options = FitOptions()
    options.batch = batch
    options.budget.epochs = epochs
    options.evalBatch = 64
    options.seed = seed
    configure(&options)
    let m = try spec.build(input: data.shape, classes: data.classes, maxBatch: 64)
    m.initialize(seed: seed)
    let trainer = try Trainer(model: m, data: data, optimizer: try OptimizerSpec(parsing: optimizer), options: options)
    return (try trainer.fit(), m)
}

@Suite("Fitting and its decisions")
struct FitTests {
    @Test("a small MLP memorises 64 random points with random labels")
    func memorise() throws {
        let data = try randomData(n: 64, d: 10, classes: 10, seed: 3)
        let (outcome, _) = try train("mlp:width=64,depth=2", "adam:lr=0.01", data: data, epochs: 300)
        #expect(outcome.result == .fitted, "\(outcome.reason)")
        #expect(outcome.wrong == 0 && outcome.trainAccuracy == 1)
        let (gd, _) = try train("mlp:width=64,depth=1", "gd:lr=0.5,momentum=0.9", data: data, epochs: 2000)
        #expect(gd.result == .fitted, "\(gd.reason)")
    }

    @Test("a tiny model on too many random labels never reports fitted")
    func cannotFit() throws {
        let data = try randomData(n: 400, d: 4, classes: 10, seed: 5)
        for optimizer in ["sgd:lr=0.05,momentum=0.9", "gd:lr=0.5"] {
            let (outcome, _) = try train("mlp:width=2,depth=1", optimizer, data: data, epochs: 400, batch: 32) {
                $0.patience = 10
                $0.gradientTolerance = 5e-2
            }
            #expect(outcome.result == .convergedUnfit || outcome.result == .budgetExhausted, "\(optimizer): \(outcome.result) \(outcome.reason)")
            #expect(outcome.wrong > 200)
            #expect(outcome.gradientNorm != nil)
            #expect(!outcome.lossHistory.isEmpty && outcome.lossHistory.count <= 100)
        }
    }

    @Test("full-batch GD on a convex model converges short of a fit and says so")
    func converged() throws {
        let data = try randomData(n: 200, d: 3, classes: 5, seed: 6)
        // depth=0 is softmax regression: convex, so GD reaches its (unfitting) minimum.
        let (outcome, _) = try train("mlp:depth=0", "gd:lr=0.5,momentum=0.9", data: data, epochs: 3000) {
            $0.patience = 50
            $0.minImprovement = 1e-4
            $0.gradientTolerance = 1e-3
        }
        #expect(outcome.result == .convergedUnfit, "\(outcome.result): \(outcome.reason)")
        #expect((outcome.gradientNorm ?? 1) < 1e-3)
        #expect(outcome.reason.contains("plateaued"))
    }

    @Test("an absurd learning rate diverges")
    func diverges() throws {
        let data = try randomData(n: 64, d: 10, classes: 10, seed: 7)
        let (outcome, _) = try train("mlp:width=32,depth=2", "sgd:lr=1e6", data: data, epochs: 50)
        #expect(outcome.result == .diverged, "\(outcome.result): \(outcome.reason)")
    }

    @Test("the same seed gives identical weights after training; another seed does not")
    func determinism() throws {
        let data = try randomData(n: 100, d: 8, classes: 4, seed: 9)
        let (_, a) = try train("mlp:width=16,depth=2", "sgd:lr=0.05,momentum=0.9", data: data, epochs: 5, seed: 11)
        let (_, b) = try train("mlp:width=16,depth=2", "sgd:lr=0.05,momentum=0.9", data: data, epochs: 5, seed: 11)
        let (_, c) = try train("mlp:width=16,depth=2", "sgd:lr=0.05,momentum=0.9", data: data, epochs: 5, seed: 12)
        #expect(a.parameterValues == b.parameterValues)
        #expect(a.parameterValues != c.parameterValues)
    }

    @Test("a CNN fits a few images")
    func cnn() throws {
        let rng = CounterRNG(seed: 2, stream: .test)
        let shape = FeatureShape(height: 8, width: 8, channels: 3)
        let n = 32
        let data = try InMemoryTrainingData(inputs: (0..<(n * shape.count)).map { _ in 0 }.enumerated().map { Float(rng.normal(UInt64($0.offset))) },
                                        labels: (0..<n).map { Int32($0 % 4) }, shape: shape, classes: 4)
        let spec = try ModelSpec(parsing: "cnn:channels=8,layers=2,fc=16")
        let model = try spec.build(input: shape, classes: 4, maxBatch: 64)
        model.initialize(seed: 1)
        var options = FitOptions()
        options.batch = 8
        options.budget.epochs = 300
        options.evalBatch = 64
        let outcome = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: "adam:lr=0.01"), options: options).fit()
        #expect(outcome.result == .fitted, "\(outcome.reason)")
    }

    @Test("initialisation is uniform in ±1/√fan_in, as PyTorch's default")
    func initialisation() throws {
        let model = try ModelSpec(parsing: "mlp:width=50,depth=1").build(input: .vector(400), classes: 10, maxBatch: 1)
        model.initialize(seed: 3)
        let w = model.parameterValues
        let first = w[0..<(400 * 50)]
        let bound = 1 / Float(400).squareRoot()
        #expect(first.allSatisfy { abs($0) <= bound })
        #expect(first.max()! > 0.95 * bound && first.min()! < -0.95 * bound)
        let mean = first.reduce(0, +) / Float(first.count)
        let variance = first.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(first.count)
        #expect(abs(variance - bound * bound / 3) < 0.05 * bound * bound / 3)
        let output = w[(400 * 50 + 50)..<(400 * 50 + 50 + 500)]
        #expect(output.allSatisfy { abs($0) <= 1 / Float(50).squareRoot() })
    }

    @Test("model specs: parameter counts and errors")
    func specs() throws {
        let mnist = FeatureShape(height: 28, width: 28, channels: 1)
        #expect(try ModelSpec(parsing: "mlp:width=16").parameterCount(input: mnist, classes: 10) == 784 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10)
        #expect(try ModelSpec(parsing: "mlp:width=32,depth=1").parameterCount(input: mnist, classes: 10) == 25_450)
        // conv 1→4 (40), conv 4→4 (148), 7·7·4 = 196 → 10 (1970)
        #expect(try ModelSpec(parsing: "cnn:channels=4,layers=2").parameterCount(input: mnist, classes: 10) == 40 + 148 + 1970)
        // growth 2: 1→4 (40), 4→8 (296), 7·7·8 = 392 → 32 (12,576), 32 → 10 (330)
        #expect(try ModelSpec(parsing: "cnn:channels=4,layers=2,growth=2,fc=32").parameterCount(input: mnist, classes: 10) == 40 + 296 + 12_576 + 330)
        for bad in ["resnet:depth=18", "mlp:width=0", "mlp:act=swish", "cnn:growth=3", "mlp:widht=3"] {
            #expect(throws: EMCError.self, "\(bad)") { _ = try ModelSpec(parsing: bad) }
        }
        #expect(throws: EMCError.self) { _ = try ModelSpec(parsing: "cnn:layers=6").layers(input: mnist, classes: 10) }
        #expect(try ModelSpec(parsing: "mlp:width=8,act=tanh").description == "mlp:width=8,depth=2,act=tanh")
    }

    @Test("a step budget stops a trial at that many optimizer steps, whatever n; GD and SGD can be compared at equal steps")
    func stepBudget() throws {
        let data = try randomData(n: 200, d: 20, classes: 10, seed: 5)
        for optimizer in ["sgd:lr=0.001", "gd:lr=0.001"] {
            let (outcome, _) = try train("mlp:width=4,depth=1", optimizer, data: data, epochs: 300) { $0.budget.steps = 37 }
            #expect(outcome.result == .budgetExhausted && outcome.steps == 37, "\(optimizer): \(outcome.steps) steps, \(outcome.result)")
            #expect(outcome.reason.contains("37-step"))
        }
    }

    @Test("a minimum number of steps grows a small n's epoch budget; cosine over a step budget ends at zero")
    func minimumSteps() throws {
        let data = try randomData(n: 32, d: 20, classes: 10, seed: 6)
        let (outcome, _) = try train("mlp:width=2,depth=1", "sgd:lr=0.0001", data: data, epochs: 10, batch: 16) { $0.budget.minSteps = 100 }
        #expect(outcome.steps == 100 && outcome.epochs == 50, "\(outcome.steps) steps in \(outcome.epochs) epochs")
        var options = FitOptions()
        options.batch = 16
        options.budget.epochs = 10
        options.budget.minSteps = 100
        #expect(options.epochBudget(samples: 32, fullBatch: false) == 50 && options.epochBudget(samples: 32, fullBatch: true) == 100)
        #expect(options.epochBudget(samples: 10_000, fullBatch: false) == 10)
        let cosine = try OptimizerSpec(parsing: "sgd:lr=0.1,schedule=cosine")
        #expect(cosine.learningRate(epoch: 0, totalEpochs: 37) == 0.1 && abs(cosine.learningRate(epoch: 37, totalEpochs: 37)) < 1e-12)
    }

    @Test("the plateau schedule drops the rate after `wait` flat epochs, records each drop, and judges convergence only after the last")
    func plateauSchedule() throws {
        // A learning rate far too small: the loss is flat from the start, so every wait ends in a drop.
        let data = try randomData(n: 64, d: 10, classes: 4, seed: 7)
        let (outcome, _) = try train("mlp:width=2,depth=1", "sgd:lr=1e-9,schedule=plateau,gamma=0.5,wait=5,drops=2", data: data, epochs: 60, batch: 64) {
            $0.patience = 5
            $0.gradientTolerance = 1e9  // any plateau counts as converged once the drops are spent
        }
        // A drop compares the best of the last `wait` epochs with the best before them: the first can come after epoch 6.
        #expect(outcome.learningRateDrops == [6, 11], "\(outcome.learningRateDrops)")
        #expect(outcome.result == .convergedUnfit && outcome.epochs >= 15, "\(outcome.result) after \(outcome.epochs) epochs")
        #expect(try OptimizerSpec(parsing: "sgd:schedule=plateau,wait=7,drops=1").description.contains("wait=7"))
    }
}

@Suite("Checking the fit every K steps")
struct CheckCadenceTests {
    @Test("with a cadence of K steps, a fit is found only at the end of an epoch that reached a multiple of K")
    func everyKSteps() throws {
        let data = try randomData(n: 64, d: 10, classes: 10, seed: 3)
        let k = 20, perEpoch = 64 / 8
        let (every, _) = try train("mlp:width=64,depth=2", "adam:lr=0.01", data: data, epochs: 300, batch: 8)
        let (cadenced, _) = try train("mlp:width=64,depth=2", "adam:lr=0.01", data: data, epochs: 300, batch: 8) { $0.checkEvery = k }
        #expect(every.result == .fitted && cadenced.result == .fitted, "\(cadenced.reason)")
        #expect(cadenced.steps == cadenced.epochs * perEpoch)
        #expect((cadenced.steps - perEpoch) / k < cadenced.steps / k, "fitted at step \(cadenced.steps): an epoch that reached a multiple of \(k)")
        #expect(cadenced.epochs >= every.epochs, "the same run, checked less often, fits no earlier")
        #expect(Array(cadenced.lossHistory.prefix(every.lossHistory.count - 1)) == Array(every.lossHistory.dropLast()),
                "the cadence changes when the fit is checked, not the training")
        // Full-batch GD checks at each multiple of K steps (one per epoch).
        let (gd, _) = try train("mlp:width=64,depth=1", "gd:lr=0.5,momentum=0.9", data: data, epochs: 2000) { $0.checkEvery = 7 }
        #expect(gd.result == .fitted && gd.steps % 7 == 0, "GD fitted at step \(gd.steps)")
    }

    @Test("the cadence is a rule of the configuration: in its key when set, absent otherwise; out of range is an error")
    func cadenceKey() throws {
        var rules = TrainingRules()
        #expect(!rules.canonicalLines.tail.joined().contains("checkevery"))
        rules.checkEvery = 10_000
        #expect(rules.canonicalLines.tail.contains("checkevery:10000"))
        rules.checkEvery = 0
        #expect(throws: EMCError.self) { try rules.check() }
    }
}
