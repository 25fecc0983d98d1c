import EMCCore
import EMCTrainer
import Foundation
import Testing

/// A Double reference of a model built from the trainer's layers, written straight from each layer's definition, and
/// the mean softmax cross-entropy over a batch. It also reports how close the point is to a kink (a ReLU input near 0,
/// a max-pool window with a near-tie), where second differences are meaningless.
struct DoubleReference {
    let layers: [Layer]
    let inputs: [Double]
    let labels: [Int]
    let batch: Int

    func loss(_ theta: [Double]) -> (loss: Double, kinkMargin: Double) {
        let (x, margin) = forward(theta, offset: 0)
        let classes = layers.last!.outputShape.count
        var total = 0.0
        for s in 0..<batch {
            let z = Array(x[(s * classes)..<((s + 1) * classes)])
            let m = z.max()!
            total += log(z.map { exp($0 - m) }.reduce(0, +)) + m - z[labels[s]]
        }
        return (total / Double(batch), margin)
    }

    /// The layers' output for `inputs`, with this chain's parameters at `offset` in θ, and the smallest distance of a
    /// ReLU input or max-pool tie from its kink. Batch norm is in evaluation mode, with the layer's fixed statistics.
    func forward(_ theta: [Double], offset start: Int) -> (y: [Double], kinkMargin: Double) {
        var x = inputs
        var offset = start
        var margin = Double.infinity
        for layer in layers {
            let inS = layer.inputShape, outS = layer.outputShape
            var y = [Double](repeating: 0, count: batch * outS.count)
            switch layer {
            case let l as Linear:
                let w = offset, b = offset + l.outFeatures * l.inFeatures
                for s in 0..<batch {
                    for o in 0..<l.outFeatures {
                        var sum = l.hasBias ? theta[b + o] : 0
                        for i in 0..<l.inFeatures { sum += theta[w + o * l.inFeatures + i] * x[s * l.inFeatures + i] }
                        y[s * l.outFeatures + o] = sum
                    }
                }
            case let c as Conv2D:
                let patch = c.kernel * c.kernel * c.inChannels
                let w = offset, b = offset + c.outChannels * patch
                for s in 0..<batch {
                    for oy in 0..<outS.height { for ox in 0..<outS.width { for co in 0..<c.outChannels {
                        var sum = c.hasBias ? theta[b + co] : 0
                        for ky in 0..<c.kernel { for kx in 0..<c.kernel {
                            let iy = oy * c.stride - c.padding + ky, ix = ox * c.stride - c.padding + kx
                            guard iy >= 0, iy < inS.height, ix >= 0, ix < inS.width else { continue }
                            for ci in 0..<c.inChannels {
                                sum += theta[w + ((co * c.kernel + ky) * c.kernel + kx) * c.inChannels + ci]
                                    * x[((s * inS.height + iy) * inS.width + ix) * inS.channels + ci]
                            }
                        } }
                        y[((s * outS.height + oy) * outS.width + ox) * outS.channels + co] = sum
                    } } }
                }
            case let d as DepthwiseConv2D:
                let taps = d.kernel * d.kernel
                let w = offset, b = offset + d.channels * taps
                for s in 0..<batch {
                    for oy in 0..<outS.height { for ox in 0..<outS.width { for ch in 0..<d.channels {
                        var sum = d.hasBias ? theta[b + ch] : 0
                        for ky in 0..<d.kernel { for kx in 0..<d.kernel {
                            let iy = oy * d.stride - d.padding + ky, ix = ox * d.stride - d.padding + kx
                            guard iy >= 0, iy < inS.height, ix >= 0, ix < inS.width else { continue }
                            sum += theta[w + ch * taps + ky * d.kernel + kx] * x[((s * inS.height + iy) * inS.width + ix) * inS.channels + ch]
                        } }
                        y[((s * outS.height + oy) * outS.width + ox) * outS.channels + ch] = sum
                    } } }
                }
            case let a as Activation:
                for i in x.indices {
                    let v = x[i]
                    switch a.kind {
                    case .relu: y[i] = max(v, 0); margin = min(margin, abs(v))
                    case .leakyRelu: y[i] = v > 0 ? v : 0.01 * v; margin = min(margin, abs(v))
                    case .tanh: y[i] = Foundation.tanh(v)
                    case .sigmoid: y[i] = 1 / (1 + exp(-v))
                    case .gelu: y[i] = 0.5 * v * (1 + erf(v / 2.0.squareRoot()))
                    case .silu: y[i] = v / (1 + exp(-v))
                    case .identity: y[i] = v
                    }
                }
            case let p as MaxPool2D:
                forEachWindow(kernel: p.kernel, stride: p.stride, inS, outS, x) { at, values in
                    let sorted = values.sorted(by: >)
                    margin = min(margin, sorted[0] - sorted[1])
                    y[at] = sorted[0]
                }
            case let p as AvgPool2D:
                forEachWindow(kernel: p.kernel, stride: p.stride, inS, outS, x) { at, values in y[at] = values.reduce(0, +) / Double(values.count) }
            case is GlobalAvgPool:
                let positions = inS.height * inS.width
                for s in 0..<batch { for p in 0..<positions { for ch in 0..<inS.channels {
                    y[s * inS.channels + ch] += x[(s * positions + p) * inS.channels + ch] / Double(positions)
                } } }
            case is Flatten:
                y = x
            case let bn as BatchNorm:
                let c = bn.channels
                for r in 0..<(batch * inS.height * inS.width) { for ch in 0..<c {
                    let sd = (Double(bn.fixedVariance[ch]) + Double(BatchNorm.epsilon)).squareRoot()
                    let v = theta[offset + ch] * (x[r * c + ch] - Double(bn.fixedMean[ch])) / sd + theta[offset + c + ch]
                    if bn.relu { margin = min(margin, abs(v)) }
                    y[r * c + ch] = bn.relu ? max(0, v) : v
                } }
            case let r as Residual:
                let main = DoubleReference(layers: r.mainPath, inputs: x, labels: labels, batch: batch).forward(theta, offset: offset)
                var side = (y: x, kinkMargin: Double.infinity)
                if !r.shortcutPath.isEmpty {
                    let mainCount = r.mainPath.reduce(0) { $0 + $1.parameterCount }
                    side = DoubleReference(layers: r.shortcutPath, inputs: x, labels: labels, batch: batch).forward(theta, offset: offset + mainCount)
                }
                y = zip(main.y, side.y).map { $0 + $1 }
                margin = min(margin, main.kinkMargin, side.kinkMargin)
            case let a as ShortcutA:
                for s in 0..<batch { for oy in 0..<outS.height { for ox in 0..<outS.width { for ch in 0..<inS.channels {
                    y[((s * outS.height + oy) * outS.width + ox) * outS.channels + a.padBefore + ch] =
                        x[((s * inS.height + oy * a.stride) * inS.width + ox * a.stride) * inS.channels + ch]
                } } } }
            default:
                Issue.record("no Double reference for \(layer.name)")
            }
            offset += layer.parameterCount
            x = y
        }
        return (x, margin)
    }

    /// Each pooling window's input values, with the index of its output, over the whole batch.
    func forEachWindow(kernel: Int, stride: Int, _ inS: FeatureShape, _ outS: FeatureShape, _ x: [Double], _ body: (Int, [Double]) -> Void) {
        for s in 0..<batch { for oy in 0..<outS.height { for ox in 0..<outS.width { for ch in 0..<outS.channels {
            var values: [Double] = []
            for ky in 0..<kernel { for kx in 0..<kernel {
                values.append(x[((s * inS.height + oy * stride + ky) * inS.width + ox * stride + kx) * inS.channels + ch])
            } }
            body(((s * outS.height + oy) * outS.width + ox) * outS.channels + ch, values)
        } } } }
    }

    /// H·v by mixed central differences along e_i and v (4 losses per coordinate; for models too large for `hessian`).
    func hessianVector(at theta: [Double], _ v: [Double], h: Double = 1e-4) -> [Double] {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let u = v.map { $0 / norm }
        func f(_ a: Double, _ i: Int, _ b: Double) -> Double {
            var t = zip(theta, u).map { $0 + b * $1 }
            t[i] += a
            return loss(t).loss
        }
        return theta.indices.map { i in
            (f(h, i, h) - f(h, i, -h) - f(-h, i, h) + f(-h, i, -h)) / (4 * h * h) * norm
        }
    }

    /// The dense Hessian by central second differences of the Double loss (step h in each coordinate pair).
    func hessian(at theta: [Double], h: Double = 1e-4) -> [[Double]] {
        let p = theta.count
        var hess = [[Double]](repeating: [Double](repeating: 0, count: p), count: p)
        var t = theta
        func f() -> Double { loss(t).loss }
        for i in 0..<p {
            for j in i..<p {
                let value: Double
                if i == j {
                    let f0 = f()
                    t[i] = theta[i] + h; let up = f()
                    t[i] = theta[i] - h; let down = f()
                    t[i] = theta[i]
                    value = (up - 2 * f0 + down) / (h * h)
                } else {
                    t[i] = theta[i] + h; t[j] = theta[j] + h; let pp = f()
                    t[j] = theta[j] - h; let pm = f()
                    t[i] = theta[i] - h; let mm = f()
                    t[j] = theta[j] + h; let mp = f()
                    t[i] = theta[i]; t[j] = theta[j]
                    value = (pp - pm - mp + mm) / (4 * h * h)
                }
                hess[i][j] = value
                hess[j][i] = value
            }
        }
        return hess
    }
}

func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    let diff = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
    return diff / max(1e-300, b.map { $0 * $0 }.reduce(0, +).squareRoot())
}

@Suite("Hessian-vector products and the Hessian check")
struct HessianTests {
    /// A tiny model on a few random samples, at a point at least `margin` from any kink (seeds tried in turn).
    static func tinyProblem(_ spec: String, shape: FeatureShape, batch: Int = 6, classes: Int = 3, margin: Double = 0.005)
        throws -> (Trainer, DoubleReference, [Double])
    {
        try tinyProblem(shape: shape, batch: batch, classes: classes, margin: margin) {
            try ModelSpec(parsing: spec).build(input: shape, classes: classes, maxBatch: 4)
        }
    }

    static func tinyProblem(shape: FeatureShape, batch: Int = 6, classes: Int = 3, margin: Double = 0.005,
                            build: () throws -> Model) throws -> (Trainer, DoubleReference, [Double])
    {
        for seed in UInt64(1)...50 {
            let rng = CounterRNG(seed: seed, stream: .test)
            let inputs = (0..<(batch * shape.count)).map { Float(rng.uniform(UInt64($0)) * 2 - 1) }
            let labels = (0..<batch).map { Int32($0 % classes) }
            let data = try InMemoryTrainingData(inputs: inputs, labels: labels, shape: shape, classes: classes)
            let model = try build()
            model.initialize(seed: seed)
            var options = FitOptions()
            options.batch = 4
            options.evalBatch = 4  // micro-batches of 4 over 6 samples: the products must add up across them
            let trainer = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: "sgd:lr=0.1"), options: options)
            let reference = DoubleReference(layers: model.layers, inputs: inputs.map(Double.init), labels: labels.map(Int.init), batch: batch)
            let theta = model.parameterValues.map(Double.init)
            // Batch norm's products use statistics recomputed over the samples: the margin is measured at those.
            if model.hasBatchNorm { _ = try trainer.hessianVectorProduct([Double](repeating: 0, count: theta.count)) }
            if reference.loss(theta).kinkMargin >= margin { return (trainer, reference, theta) }
        }
        throw EMCError(.invalidArgument, "no seed put the model away from its kinks")
    }

    @Test("exact Hessian-vector products match a dense Double Hessian, single-batch and in micro-batches",
          arguments: [
            ("mlp:width=5,depth=1,act=tanh", FeatureShape.vector(4)),
            ("mlp:width=4,depth=2,act=gelu", FeatureShape.vector(3)),
            ("mlp:width=5,depth=2,act=sigmoid", FeatureShape.vector(3)),
            ("mlp:width=6,depth=2", FeatureShape.vector(4)),
            ("mlp:width=5,depth=1,act=leaky_relu", FeatureShape.vector(4)),
            ("mlp:width=5,depth=2,act=silu", FeatureShape.vector(3)),
            ("cnn:channels=2,layers=1,fc=0", FeatureShape(height: 4, width: 4, channels: 1)),
            ("cnn:channels=2,layers=2,fc=3,act=tanh", FeatureShape(height: 4, width: 4, channels: 2)),
            ("cnn:channels=2,layers=1,fc=3,act=gelu", FeatureShape(height: 4, width: 4, channels: 1)),
          ])
    func matchesDense(spec: String, shape: FeatureShape) throws {
        try check(try Self.tinyProblem(spec, shape: shape), spec)
    }

    @Test("the same through a depthwise convolution, strided, padded convolutions, average pooling, global average pooling and flatten")
    func otherLayers() throws {
        let shape = FeatureShape(height: 5, width: 5, channels: 2)
        try check(try Self.tinyProblem(shape: shape) {
            let c1 = Conv2D(input: shape, outChannels: 2, kernel: 3, stride: 2, padding: 1)
            let a1 = Activation(.tanh, input: c1.outputShape)
            let d1 = DepthwiseConv2D(input: a1.outputShape, kernel: 3, padding: 1)
            let s1 = Activation(.silu, input: d1.outputShape)
            let p1 = AvgPool2D(input: s1.outputShape, kernel: 2, stride: 1)
            let c2 = Conv2D(input: p1.outputShape, outChannels: 3, kernel: 1)
            let a2 = Activation(.gelu, input: c2.outputShape)
            let g = GlobalAvgPool(input: a2.outputShape)
            let f = Flatten(input: g.outputShape)
            let out = Linear(input: f.outputShape, outputs: 3)
            return Model(layers: [c1, a1, d1, s1, p1, c2, a2, g, f, out], maxBatch: 4)
        }, "conv/dwconv/silu/avgpool/globalavgpool")
    }

    func check(_ problem: (Trainer, DoubleReference, [Double]), _ spec: String, dense: Bool = true) throws {
        let (trainer, reference, theta) = problem
        let hess = dense ? reference.hessian(at: theta) : []
        let rng = CounterRNG(seed: 9, stream: .test)
        for trial in 0..<3 {
            let v = (0..<theta.count).map { rng.normal(UInt64(trial * 10_000 + $0)) }
            let expected = dense ? hess.map { row in zip(row, v).map { $0 * $1 }.reduce(0, +) } : reference.hessianVector(at: theta, v)
            let single = try trainer.hessianVectorProduct(v)
            let micro = try trainer.hessianVectorProduct(v, memoryBudget: 0)
            #expect(relativeError(single, expected) <= 1e-3, "\(spec): single-batch relative error \(relativeError(single, expected))")
            #expect(relativeError(micro, expected) <= 1e-3, "\(spec): micro-batch relative error \(relativeError(micro, expected))")
        }
        // The model is left as it was: parameters untouched, buffers back to their batch size.
        #expect(trainer.model.parameterValues.map(Double.init) == theta)
        #expect(trainer.model.maxBatch == 4)
    }

    @Test("the same through residual blocks with batch norm in evaluation mode (statistics recomputed over the samples)",
          arguments: ["resnet:width=0.125,blocks=1,stages=2,shortcut=a,act=tanh", "resnet:width=0.125,blocks=1,stages=2,shortcut=projection,act=tanh"])
    func residualBatchNorm(spec: String) throws {
        // tinyProblem has run one product, which recomputed the statistics; the reference reads them from the layers.
        let problem = try Self.tinyProblem(spec, shape: FeatureShape(height: 4, width: 4, channels: 1), classes: 2)
        try check(problem, spec, dense: false)
    }

    /// A ResNet with ReLU puts exact zeros into its tiny test models (dead channels convolved), where second differences
    /// are meaningless; a convolution, batch norm with a fused ReLU and a linear head has no such ties.
    @Test("the same through batch norm with a fused ReLU (evaluation mode)")
    func fusedBatchNormReLU() throws {
        let shape = FeatureShape(height: 3, width: 3, channels: 2), inner = FeatureShape(height: 3, width: 3, channels: 3)
        let problem = try Self.tinyProblem(shape: shape) {
            Model(layers: [Conv2D(input: shape, outChannels: 3, kernel: 3, padding: 1), BatchNorm(input: inner, relu: true),
                           Linear(input: inner, outputs: 3)], maxBatch: 4)
        }
        try check(problem, "conv, batchnorm+relu, linear", dense: false)
    }

    @Test("the check's λ_min and λ_max match the dense Hessian's extreme eigenvalues")
    func extremes() throws {
        let (trainer, reference, theta) = try Self.tinyProblem("mlp:width=5,depth=1,act=tanh", shape: .vector(4))
        let hess = reference.hessian(at: theta)
        // The dense spectrum, by Lanczos run to the full dimension (exact with full re-orthogonalisation).
        let dense = try Lanczos.run(dimension: theta.count, steps: theta.count, seed: 3) { v in
            hess.map { row in zip(row, v).map { $0 * $1 }.reduce(0, +) }
        }
        var options = HessianCheckOptions()
        options.steps = theta.count
        let check = try trainer.checkHessian(options, seed: 1)
        #expect(abs(check.lambdaMax - dense.lambdaMax) <= 1e-3 * abs(dense.lambdaMax), "λmax \(check.lambdaMax) vs \(dense.lambdaMax)")
        #expect(abs(check.lambdaMin - dense.lambdaMin) <= 1e-3 * abs(dense.lambdaMax), "λmin \(check.lambdaMin) vs \(dense.lambdaMin)")
        #expect(check.products == check.steps && check.samples == 6)
    }
}

@Suite("The Hessian check in the fit decision")
struct HessianDecisionTests {
    /// 8 points in 2-D, labels by the sign of x₀, balanced: at θ = 0 a two-layer linear network has a zero gradient
    /// (every product through W₁ and W₂ vanishes, and balanced labels zero the output bias's gradient) and its Hessian
    /// couples W₁ and W₂ with both signs: a saddle by construction.
    static func saddleData() throws -> InMemoryTrainingData {
        let xs: [Float] = [1, 0.5, 0.8, -0.3, 0.6, 0.9, 0.2, -0.7, -1, 0.4, -0.6, -0.2, -0.9, 0.8, -0.3, 0.1]
        let labels: [Int32] = (0..<8).map { xs[2 * $0] > 0 ? 1 : 0 }
        return try InMemoryTrainingData(inputs: xs, labels: labels, shape: .vector(2), classes: 2)
    }

    static func trainer(_ spec: String, data: InMemoryTrainingData, optimizer: String, epochs: Int, seed: UInt64 = 1,
                        configure: (inout FitOptions) -> Void = { _ in }) throws -> Trainer {
        let model = try ModelSpec(parsing: spec).build(input: data.shape, classes: data.classes, maxBatch: 64)
        model.initialize(seed: seed)
        var options = FitOptions()
        options.batch = data.count
        options.evalBatch = 64
        options.budget.epochs = epochs
        options.patience = 5
        options.hessianCheck = .converged
        configure(&options)
        return try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: optimizer), options: options)
    }

    @Test("a constructed saddle (a linear network at θ = 0) is reported as a saddle, not converged-unfit")
    func constructedSaddle() throws {
        let data = try Self.saddleData()
        let t = try Self.trainer("mlp:width=2,depth=1,act=identity", data: data, optimizer: "gd:lr=0.1", epochs: 200)
        t.model.parameters.update(repeating: 0)
        let outcome = try t.fit()
        #expect(outcome.result == .saddle, "\(outcome.result): \(outcome.reason)")
        #expect(!outcome.fitted)
        let h = try #require(outcome.hessian)
        #expect(h.verdict == .saddle && h.lambdaMin < -1e-3 * h.lambdaMax && h.lambdaMax > 0, "λ \(h.lambdaMin) … \(h.lambdaMax)")
        // Without the check, the same trial is converged-unfit: the check is what tells them apart.
        let unchecked = try Self.trainer("mlp:width=2,depth=1,act=identity", data: data, optimizer: "gd:lr=0.1", epochs: 200) { $0.hessianCheck = .off }
        unchecked.model.parameters.update(repeating: 0)
        let plain = try unchecked.fit()
        #expect(plain.result == .convergedUnfit && plain.hessian == nil, "\(plain.result): \(plain.reason)")
    }

    @Test("a trained, then perturbed, minimum is a minimum; `final` checks fitted trials without changing them")
    func perturbedMinimum() throws {
        // A tanh network trained to a minimum on data it cannot fit (each input twice, once per class: the best it can do
        // is p = ½ everywhere, reached at finite parameters), then nudged: still a minimum.
        var xs: [Float] = [], labels: [Int32] = []
        let rng = CounterRNG(seed: 4, stream: .test)
        for i in 0..<12 {
            let x = [Float(rng.uniform(UInt64(2 * i)) * 2 - 1), Float(rng.uniform(UInt64(2 * i + 1)) * 2 - 1)]
            xs += x + x
            labels += [0, 1]
        }
        let data = try InMemoryTrainingData(inputs: xs, labels: labels, shape: .vector(2), classes: 2)
        let t = try Self.trainer("mlp:width=8,depth=1,act=tanh", data: data, optimizer: "gd:lr=0.5", epochs: 20_000) {
            $0.patience = 50
            $0.gradientTolerance = 1e-4
        }
        let outcome = try t.fit()
        #expect(outcome.result == .convergedUnfit, "\(outcome.result): \(outcome.reason)")
        let h = try #require(outcome.hessian)
        #expect(h.verdict == .minimum && h.lambdaMax > 0, "λ \(h.lambdaMin) … \(h.lambdaMax)")
        let noise = CounterRNG(seed: 8, stream: .test)
        for i in 0..<t.model.parameterCount { t.model.parameters[i] += Float(noise.normal(UInt64(i))) * 1e-4 }
        let nudged = try t.checkHessian(seed: 2)
        #expect(nudged.verdict == .minimum, "λ \(nudged.lambdaMin) … \(nudged.lambdaMax)")

        let fitting = try randomData(n: 16, d: 4, classes: 2, seed: 2)
        let f = try Self.trainer("mlp:width=16,depth=1", data: fitting, optimizer: "adam:lr=0.05", epochs: 500) { $0.hessianCheck = .final }
        let fitted = try f.fit()
        #expect(fitted.result == .fitted && fitted.hessian != nil, "\(fitted.result): \(fitted.reason)")
    }
}
