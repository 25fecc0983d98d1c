import EMCCore
import EMCTrainer
import Foundation

/// `emc bench train`: samples/s of forward + backward + SGD update at batch 128 on 1 thread, and the
/// GFLOP/s its matrix products reach beside raw cblas_sgemm on the model's largest product.
public enum TrainBenchmark {
    public struct Row: Encodable, Sendable {
        var model: String
        var input: String
        var parameters: Int
        var samplesPerSecond: Double
        var gemmGFLOPs: Double
        var rawSgemmGFLOPs: Double?
        var largestGemm: String
        /// The layer with the largest product, alone: forward, weight, bias and input gradients (3 products' FLOPs).
        var heaviestLayerGFLOPs: Double?
        var torchSamplesPerSecond: Double?
    }

    static let cases: [(String, FeatureShape)] = [
        ("mlp:width=8", FeatureShape(height: 28, width: 28, channels: 1)),
        ("mlp:width=16", FeatureShape(height: 28, width: 28, channels: 1)),
        ("mlp:width=32", FeatureShape(height: 28, width: 28, channels: 1)),
        ("mlp:width=256", FeatureShape(height: 28, width: 28, channels: 1)),
        ("cnn:channels=4,layers=2", FeatureShape(height: 28, width: 28, channels: 1)),
        ("cnn:channels=8,layers=2", FeatureShape(height: 28, width: 28, channels: 1)),
        ("cnn:channels=32,layers=2", FeatureShape(height: 28, width: 28, channels: 1)),
        ("cnn:channels=4,layers=2", FeatureShape(height: 32, width: 32, channels: 3)),
        ("cnn:channels=8,layers=2", FeatureShape(height: 32, width: 32, channels: 3)),
        ("cnn:channels=32,layers=2", FeatureShape(height: 32, width: 32, channels: 3)),
        ("resnet:width=0.5,blocks=1,stages=3", FeatureShape(height: 32, width: 32, channels: 3)),
        ("resnet:width=2,blocks=1,stages=3", FeatureShape(height: 32, width: 32, channels: 3)),
        ("efficientnet:width=0.25,depth=0.25", FeatureShape(height: 32, width: 32, channels: 3)),
        ("efficientnet:phi=0", FeatureShape(height: 32, width: 32, channels: 3)),
        ("vit:dim=64,depth=2,heads=4,patch=4", FeatureShape(height: 32, width: 32, channels: 3)),
        ("vit:dim=128,depth=4,heads=4,patch=4", FeatureShape(height: 32, width: 32, channels: 3)),
    ]

    /// `only`: the rows whose model spec contains it (all when nil). `progress` gets a line as each row is measured.
    public static func run(batch: Int, seconds: Double, repeats: Int, torch: [String: Double], only: String? = nil, rawSgemm timesRaw: Bool = true,
                           progress: (String) -> Void = { _ in }) throws -> [Row] {
        var rows: [Row] = []
        let selected = cases.filter { only.map($0.0.contains) ?? true }
        for (index, (specText, shape)) in selected.enumerated() {
            let (model, trainer, optimizer) = try benchTrainer(model: specText, shape: shape, batch: batch, optimizer: "sgd:lr=0.01,momentum=0.9")
            try trainer.runSteps(5, optimizer: optimizer, lr: 0.01)
            // Steps per repetition sized to take about `seconds`.
            let probe = Clock.now()
            try trainer.runSteps(5, optimizer: optimizer, lr: 0.01)
            let perStep = max(1e-6, (Clock.now() - probe) / 5)
            let steps = max(5, Int(seconds / perStep))
            let time = try medianSeconds(repeats: repeats) { try trainer.runSteps(steps, optimizer: optimizer, lr: 0.01) }
            let stepsPerSecond = Double(steps) / time
            let (label, m, nn, k, heaviest) = largestGemm(model, batch: batch)
            // After the model's timing: the layer is rebound to buffers of its own.
            let layerSeconds = timesRaw ? heaviest.map { forwardBackwardSeconds($0, batch: batch, seconds: seconds, repeats: repeats) } : nil
            rows.append(Row(model: specText, input: "\(shape)", parameters: model.parameterCount,
                            samplesPerSecond: stepsPerSecond * Double(batch),
                            gemmGFLOPs: model.gemmFLOPsPerStep(batch: batch) * stepsPerSecond / 1e9,
                            rawSgemmGFLOPs: timesRaw ? rawSgemm(m: m, n: nn, k: k, seconds: seconds, repeats: repeats) : nil, largestGemm: label,
                            heaviestLayerGFLOPs: layerSeconds.map { 3 * 2 * Double(m) * Double(nn) * Double(k) / $0 / 1e9 },
                            torchSamplesPerSecond: torch["\(specText)@\(shape.height)x\(shape.width)x\(shape.channels)"]))
            progress("  [\(index + 1)/\(selected.count)] \(specText) \(shape): \(Int(stepsPerSecond * Double(batch))) samples/s")
        }
        return rows
    }

    /// A freshly initialised model of `spec` on 8 batches of seeded noise, its trainer and optimizer: what both training
    /// benchmarks time.
    static func benchTrainer(model specText: String, shape: FeatureShape, batch: Int, optimizer optimizerText: String, threads: Int = 1) throws
        -> (Model, Trainer, Optimizer) {
        try benchTrainer(model: try ModelSpec(parsing: specText), shape: shape, classes: 10, batch: batch, optimizer: try OptimizerSpec(parsing: optimizerText),
                         threads: threads)
    }

    static func benchTrainer(model spec: ModelSpec, shape: FeatureShape, classes: Int, batch: Int, optimizer optimizerSpec: OptimizerSpec, threads: Int,
                             batches: Int = 8) throws -> (Model, Trainer, Optimizer) {
        let model = try spec.build(input: shape, classes: classes, maxBatch: batch, threads: threads)
        model.initialize(seed: 0)
        let n = batch * batches
        let rng = CounterRNG(seed: 1, stream: .test)
        let data = try InMemoryTrainingData(inputs: (0..<(n * shape.count)).map { Float(rng.normal(UInt64($0))) },
                                            labels: (0..<n).map { Int32($0 % classes) }, shape: shape, classes: classes)
        var options = FitOptions()
        options.batch = batch
        options.evalBatch = batch
        let trainer = try Trainer(model: model, data: data, optimizer: optimizerSpec, options: options)
        return (model, trainer, Optimizer(spec: optimizerSpec, layout: model.parameterLayout))
    }

    /// One trial's training rate on this machine, in samples per second: `spec` on noise of `shape`, at `batch` on
    /// `threads` threads with `optimizer`, timed over about `seconds` after two warm-up steps (the median of three).
    /// What `--dry-run` turns a search's sample-epochs into time with.
    public static func samplesPerSecond(model spec: ModelSpec, shape: FeatureShape, classes: Int, batch: Int, optimizer: OptimizerSpec,
                                        threads: Int, seconds: Double = 0.3) throws -> Double {
        let (_, trainer, stepper) = try benchTrainer(model: spec, shape: shape, classes: max(2, classes), batch: batch, optimizer: optimizer,
                                                     threads: threads, batches: 2)
        try trainer.runSteps(2, optimizer: stepper, lr: 0.001)
        let probe = Clock.now()
        try trainer.runSteps(1, optimizer: stepper, lr: 0.001)
        let steps = max(1, Int(seconds / 3 / max(1e-6, Clock.now() - probe)))
        let time = try medianSeconds(repeats: 3) { try trainer.runSteps(steps, optimizer: stepper, lr: 0.001) }
        return Double(steps * batch) / max(1e-9, time)
    }

    /// A model's leaf layers in order, inside blocks too.
    static func leafLayers(_ layers: [Layer]) -> [Layer] {
        layers.flatMap { ($0 as? CompositeLayer).map { leafLayers($0.sublayers) } ?? [$0] }
    }

    /// The leaf layers of the benchmark models whose spec contains `only`, each with its model's spec and input.
    static func leafLayers(batch: Int, only: String?) throws -> [(model: String, layer: Layer)] {
        try cases.filter { only.map($0.0.contains) ?? true }.flatMap { spec, shape in
            leafLayers(try ModelSpec(parsing: spec).build(input: shape, classes: 10, maxBatch: batch).layers).map { ("\(spec) \(shape)", $0) }
        }
    }

    /// The forward product with the most FLOPs, inside blocks too: (label, m, n, k) of C[m×n] = A[m×k]·B[k×n], and the
    /// layer that computes it (the first of equals).
    static func largestGemm(_ model: Model, batch: Int) -> (String, Int, Int, Int, Layer?) {
        let products: [(Int, Int, Int, Layer)] = leafLayers(model.layers).compactMap { layer in
            if let linear = layer as? Linear { return (batch * linear.positions, linear.outFeatures, linear.inFeatures, layer) }
            if let conv = layer as? Conv2D {
                return (batch * conv.outputShape.height * conv.outputShape.width, conv.outChannels, conv.inChannels * conv.kernel * conv.kernel, layer)
            }
            return nil
        }
        guard let best = products.enumerated().max(by: { a, b in
            let (x, y) = (a.element.0 * a.element.1 * a.element.2, b.element.0 * b.element.1 * b.element.2)
            return x < y || (x == y && a.offset > b.offset)
        })?.element else { return ("-", 1, 1, 1, nil) }
        return ("\(best.0)×\(best.2)·\(best.2)×\(best.1)", best.0, best.1, best.2, best.3)
    }

    /// GFLOP/s of cblas_sgemm alone on C[m×n] = A[m×k]·Bᵀ (the layout the layers use).
    static func rawSgemm(m: Int, n: Int, k: Int, seconds: Double, repeats: Int) -> Double {
        let a = UnsafeMutableBufferPointer<Float>.allocate(capacity: m * k), b = UnsafeMutableBufferPointer<Float>.allocate(capacity: n * k)
        let c = UnsafeMutableBufferPointer<Float>.allocate(capacity: m * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        a.initialize(repeating: 0.5); b.initialize(repeating: 0.25); c.initialize(repeating: 0)
        func once() { BLAS.sgemm(.none, .transpose, m: m, n: n, k: k, alpha: 1, a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: k, beta: 0, c: c.baseAddress!, ldc: n) }
        for _ in 0..<3 { once() }
        let probe = Clock.now()
        for _ in 0..<5 { once() }
        let calls = max(5, Int(seconds / max(1e-7, (Clock.now() - probe) / 5)))
        let time = medianSeconds(repeats: repeats) { for _ in 0..<calls { once() } }
        return 2 * Double(m) * Double(n) * Double(k) * Double(calls) / time / 1e9
    }
}

extension TrainBenchmark {
    /// Median seconds of one forward and backward pass (every gradient, the input's too) of `layer` alone at `batch`,
    /// on seeded noise, with fresh parameters: `layer` is rebound to them.
    static func forwardBackwardSeconds(_ layer: Layer, batch: Int, seconds: Double, repeats: Int) -> Double {
        let n = layer.parameterCount
        let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(n, 1)), g = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(n, 1))
        let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: batch * layer.inputShape.count)
        let dx = UnsafeMutableBufferPointer<Float>.allocate(capacity: batch * layer.inputShape.count)
        let y = UnsafeMutableBufferPointer<Float>.allocate(capacity: batch * layer.outputShape.count)
        let dy = UnsafeMutableBufferPointer<Float>.allocate(capacity: batch * layer.outputShape.count)
        defer { for b in [p, g, x, dx, y, dy] { b.deallocate() } }
        let rng = CounterRNG(seed: 4, stream: .test)
        for i in 0..<n { p[i] = Float(rng.normal(UInt64(i))) * 0.1 }
        for i in 0..<x.count { x[i] = Float(rng.normal(UInt64(n + i))) }
        for i in 0..<dy.count { dy[i] = Float(rng.normal(UInt64(n + x.count + i))) }
        g.initialize(repeating: 0)
        layer.bind(parameters: p.baseAddress!, gradients: g.baseAddress!, maxBatch: batch)
        return WeightGradientBenchmark.time({
            layer.forward(x.baseAddress!, y.baseAddress!, batch: batch)
            layer.backward(input: x.baseAddress!, output: y.baseAddress!, gradOutput: dy.baseAddress!, gradInput: dx.baseAddress!, batch: batch)
        }, seconds: seconds, repeats: repeats)
    }
}

/// `emc bench shampoo`: time per training step (forward, backward, update) with Shampoo against SGD on the same model
/// and batch, at two refresh frequencies, one thread.
public enum ShampooBenchmark {
    public struct Row: Encodable, Sendable {
        var model: String
        var optimizer: String
        var millisecondsPerStep: Double
        var ratioToSGD: Double
    }

    public static func run(batch: Int, seconds: Double, repeats: Int, progress: (String) -> Void = { _ in }) throws -> BenchReport {
        BLAS.useOneThread()
        let shape = FeatureShape(height: 28, width: 28, channels: 1)
        var rows: [Row] = []
        for specText in ["mlp:width=256", "cnn:channels=32,layers=2"] {
            var sgd = 0.0
            for optimizerText in ["sgd:lr=0.01,momentum=0.9", "shampoo:lr=0.001,freq=10", "shampoo:lr=0.001,freq=1", "shampoo:lr=0.001,freq=10,block=64", "shampoo:lr=0.001,freq=10,block=256"] {
                let (_, trainer, optimizer) = try TrainBenchmark.benchTrainer(model: specText, shape: shape, batch: batch, optimizer: optimizerText)
                let optimizerSpec = optimizer.spec
                try trainer.runSteps(3, optimizer: optimizer, lr: optimizerSpec.lr)
                let probe = Clock.now()
                try trainer.runSteps(3, optimizer: optimizer, lr: optimizerSpec.lr)
                let perStep = max(1e-6, (Clock.now() - probe) / 3)
                // Whole multiples of the refresh frequency, so each repetition has its share of refreshes.
                let steps = max(10, Int(seconds / perStep) / 10 * 10)
                let time = try medianSeconds(repeats: repeats) { try trainer.runSteps(steps, optimizer: optimizer, lr: optimizerSpec.lr) }
                let ms = 1000 * time / Double(steps)
                if optimizerText.hasPrefix("sgd") { sgd = ms }
                rows.append(Row(model: specText, optimizer: optimizerText, millisecondsPerStep: ms, ratioToSGD: ms / sgd))
                progress("  \(specText) \(optimizerText): \(String(format: "%.2f", ms)) ms/step")
            }
        }
        return BenchReport(title: "Shampoo's step time against SGD, 28×28×1, batch \(batch), 1 thread (median of \(repeats); default block 128, graft adam)",
                           header: ["model", "optimizer", "ms/step", "× SGD"],
                           rows: rows.map { [$0.model, $0.optimizer, String(format: "%.2f", $0.millisecondsPerStep), String(format: "%.2f×", $0.ratioToSGD)] },
                           records: rows)
    }
}

/// `emc bench hessian`: what a Hessian check costs, in full passes (one forward and backward over the n samples) measured
/// in the same run, for the issue's width-32 MLP at n = 10,000 and a small CNN, single-batch and in micro-batches.
public enum HessianBenchmark {
    public struct Row: Encodable, Sendable {
        var model: String
        var samples: Int
        var mode: String
        var fullPassMilliseconds: Double
        var productMilliseconds: Double
        var checkSeconds: Double
        var steps: Int
        var fullPasses: Double
        var bound: Int
    }

    public static func run(samples: Int, steps: Int, repeats: Int, progress: (String) -> Void = { _ in }) throws -> BenchReport {
        BLAS.useOneThread()
        let shape = FeatureShape(height: 28, width: 28, channels: 1)
        let rng = CounterRNG(seed: 1, stream: .test)
        var rows: [Row] = []
        for (specText, n) in [("mlp:width=32,depth=1", samples), ("cnn:channels=8,layers=2", max(1, samples / 5))] {
            let inputs = (0..<(n * shape.count)).map { Float(rng.normal(UInt64($0))) }
            let labels = (0..<n).map { Int32(rng.int(UInt64(1 << 40 | $0), below: 10)) }
            let data = try InMemoryTrainingData(inputs: inputs, labels: labels, shape: shape, classes: 10)
            var options = FitOptions()
            options.evalBatch = 1024
            let model = try ModelSpec(parsing: specText).build(input: shape, classes: 10, maxBatch: 1024)
            model.initialize(seed: 1)
            let trainer = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: "sgd:lr=0.01"), options: options)
            let pass = try medianSeconds(repeats: repeats) { try trainer.fullPass(gradient: true) }
            let v = (0..<model.parameterCount).map { rng.normal(UInt64(1 << 50 | $0)) }
            for (mode, budget) in [("single batch", 1 << 30), ("micro-batches", 0)] {
                var check = HessianCheckOptions()
                check.steps = steps
                check.memoryBudget = budget
                let product = try medianSeconds(repeats: repeats) { _ = try trainer.hessianVectorProduct(v, memoryBudget: budget) }
                var result: HessianCheck?
                let seconds = try medianSeconds(repeats: repeats) { result = try trainer.checkHessian(check, seed: 1) }
                rows.append(Row(model: specText, samples: n, mode: mode, fullPassMilliseconds: 1000 * pass, productMilliseconds: 1000 * product,
                                checkSeconds: seconds, steps: result?.steps ?? steps, fullPasses: seconds / pass, bound: 2 * steps + 2))
                progress("  \(specText) n=\(n) \(mode): check \(String(format: "%.2f", seconds)) s")
            }
        }
        return BenchReport(title: "The Hessian check's cost, 28×28×1, random inputs and labels, 1 thread (median of \(repeats)); a full pass is one forward and backward over the n samples",
                           header: ["model", "n", "mode", "full pass ms", "H·v ms (one, with setup)", "check s", "Lanczos steps", "check in full passes", "bound 2k+2"],
                           rows: rows.map { [$0.model, "\($0.samples)", $0.mode, String(format: "%.1f", $0.fullPassMilliseconds), String(format: "%.1f", $0.productMilliseconds),
                                             String(format: "%.2f", $0.checkSeconds), "\($0.steps)", String(format: "%.1f", $0.fullPasses), "\($0.bound)"] },
                           records: rows)
    }
}

/// `emc bench gradients`: the weight-gradient product C[m×n] += Aᵀ·B (k = every output pixel of the batch) of every
/// convolution and linear layer in `emc bench train`'s models, by OpenBLAS and by emc's tall kernel, side by side.
public enum WeightGradientBenchmark {
    public struct Row: Encodable, Sendable {
        var layer: String
        var m: Int, n: Int, k: Int
        var openBLASGFLOPs: Double
        var tallGFLOPs: Double
        var chosen: String
        var relativeDifference: Double
    }

    /// The distinct (m, n, k) weight-gradient products of the models whose spec contains `only`, with a model that has it.
    static func shapes(batch: Int, only: String?) throws -> [(String, Int, Int, Int)] {
        var seen = Set<[Int]>(), found: [(String, Int, Int, Int)] = []
        for (model, layer) in try TrainBenchmark.leafLayers(batch: batch, only: only) {
            var shape: (Int, Int, Int)?
            if let linear = layer as? Linear { shape = (linear.outFeatures, linear.inFeatures, batch * linear.positions) }
            if let conv = layer as? Conv2D {
                shape = (conv.outChannels, conv.inChannels * conv.kernel * conv.kernel, batch * conv.outputShape.height * conv.outputShape.width)
            }
            if let (m, n, k) = shape, seen.insert([m, n, k]).inserted { found.append((model, m, n, k)) }
        }
        return found
    }

    public static func run(batch: Int, seconds: Double, repeats: Int, only: String?, progress: (String) -> Void = { _ in }) throws -> [Row] {
        BLAS.useOneThread()
        let products = try shapes(batch: batch, only: only)
        return products.enumerated().map { (index, product) in
            let (model, m, n, k) = product
            defer { progress("  [\(index + 1)/\(products.count)] \(m)×\(n), k = \(k) (\(model))") }
            let a = UnsafeMutableBufferPointer<Float>.allocate(capacity: k * m), b = UnsafeMutableBufferPointer<Float>.allocate(capacity: k * n)
            let c1 = UnsafeMutableBufferPointer<Float>.allocate(capacity: m * n), c2 = UnsafeMutableBufferPointer<Float>.allocate(capacity: m * n)
            defer { a.deallocate(); b.deallocate(); c1.deallocate(); c2.deallocate() }
            let rng = CounterRNG(seed: 3, stream: .test)
            for i in 0..<(k * m) { a[i] = Float(rng.normal(UInt64(i))) }
            for i in 0..<(k * n) { b[i] = Float(rng.normal(UInt64(k * m + i))) }
            c1.initialize(repeating: 0); c2.initialize(repeating: 0)
            let blas = { BLAS.sgemm(.transpose, .none, m: m, n: n, k: k, alpha: 1, a: a.baseAddress!, lda: m, b: b.baseAddress!, ldb: n,
                                    beta: 1, c: c1.baseAddress!, ldc: n) }
            let tall = { _ = emcGemmTall(m: m, n: n, k: k, a: a.baseAddress!, b: b.baseAddress!, c: c2.baseAddress!) }
            blas(); tall()
            var difference = 0.0, norm = 0.0
            for i in 0..<(m * n) { difference += Double(c1[i] - c2[i]) * Double(c1[i] - c2[i]); norm += Double(c1[i]) * Double(c1[i]) }
            let flops = 2 * Double(m) * Double(n) * Double(k)
            return Row(layer: model, m: m, n: n, k: k, openBLASGFLOPs: flops / time(blas, seconds: seconds, repeats: repeats) / 1e9,
                       tallGFLOPs: BLAS.hardwareLevel > .generic ? flops / time(tall, seconds: seconds, repeats: repeats) / 1e9 : 0,
                       chosen: BLAS.prefersTallKernel(m: m, n: n, k: k) ? "tall" : "OpenBLAS", relativeDifference: (difference / max(norm, 1e-30)).squareRoot())
        }
    }

    static func emcGemmTall(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) -> Bool {
        BLAS.accumulateTransposedProductWithTallKernel(m: m, n: n, k: k, a: a, lda: m, b: b, ldb: n, c: c, ldc: n, level: BLAS.hardwareLevel)
    }

    /// Median seconds of one call.
    static func time(_ body: () -> Void, seconds: Double, repeats: Int) -> Double {
        let probe = Clock.now()
        for _ in 0..<3 { body() }
        let calls = max(3, Int(seconds / max(1e-7, (Clock.now() - probe) / 3)))
        return medianSeconds(repeats: repeats) { for _ in 0..<calls { body() } } / Double(calls)
    }
}

/// `emc bench conv`: forward + backward (weight, bias and input gradients) of every "same"-padded convolution in
/// `emc bench train`'s models (any stride), by im2row with OpenBLAS and by the direct path, side by side.
public enum ConvolutionBenchmark {
    public struct Row: Encodable, Sendable {
        var layer: String
        var input: String
        var outChannels: Int
        var kernel: Int
        var stride: Int
        var im2rowMilliseconds: Double
        var directMilliseconds: Double?
        var chosen: String
    }

    public static func run(batch: Int, seconds: Double, repeats: Int, only: String?, progress: (String) -> Void = { _ in }) throws -> [Row] {
        BLAS.useOneThread()
        var seen = Set<[Int]>(), found: [(String, Conv2D)] = []
        for (model, layer) in try TrainBenchmark.leafLayers(batch: batch, only: only) {
            guard let conv = layer as? Conv2D, conv.kernel % 2 == 1, conv.padding == (conv.kernel - 1) / 2 else { continue }
            let key = [conv.inputShape.height, conv.inputShape.width, conv.inChannels, conv.outChannels, conv.kernel, conv.stride]
            if seen.insert(key).inserted { found.append((String(model.prefix { $0 != " " }), conv)) }
        }
        return found.enumerated().map { (index, layer) in
            let (model, conv) = layer
            defer { progress("  [\(index + 1)/\(found.count)] \(conv.inputShape) → \(conv.outChannels) channels, stride \(conv.stride) (\(model))") }
            func timed(direct: Bool) -> Double {
                let layer = Conv2D(input: conv.inputShape, outChannels: conv.outChannels, kernel: conv.kernel, stride: conv.stride,
                                   padding: conv.padding, bias: conv.hasBias, direct: direct)
                return TrainBenchmark.forwardBackwardSeconds(layer, batch: batch, seconds: seconds, repeats: repeats) * 1000
            }
            return Row(layer: model, input: "\(conv.inputShape)", outChannels: conv.outChannels, kernel: conv.kernel, stride: conv.stride,
                       im2rowMilliseconds: timed(direct: false), directMilliseconds: BLAS.hardwareLevel > .generic ? timed(direct: true) : nil,
                       chosen: conv.usesDirect ? "direct" : "im2row")
        }
    }
}
