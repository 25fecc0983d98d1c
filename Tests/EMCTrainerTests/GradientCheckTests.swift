import Foundation
import EMCCore
import EMCTrainer
import Testing

/// Checks a layer's backward against central finite differences of the scalar f = Σ w·y for a fixed
/// random w: dy = w, so backward must give df/dθ and df/dx.
func gradientCheck(_ layer: Layer, batch: Int = 2, seed: UInt64 = 1, inputScale: Float = 1, eps: Float = 1e-2,
                   file: String = #fileID, line: Int = #line) {
    let rng = CounterRNG(seed: seed, stream: .test)
    let inCount = batch * layer.inputShape.count, outCount = batch * layer.outputShape.count
    let params = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, layer.parameterCount))
    let grads = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, layer.parameterCount))
    defer { params.deallocate(); grads.deallocate() }
    for i in 0..<layer.parameterCount { params[i] = rng.uniform(UInt64(i)) - 0.5 }
    grads.initialize(repeating: 0)
    layer.bind(parameters: params.baseAddress!, gradients: grads.baseAddress!, maxBatch: batch)
    var x = (0..<inCount).map { (rng.uniform(UInt64(100_000 + $0)) * 2 - 1) * inputScale }
    let w = (0..<outCount).map { rng.uniform(UInt64(200_000 + $0)) - 0.5 }
    var y = [Float](repeating: 0, count: outCount)
    var gx = [Float](repeating: 0, count: inCount)

    func f() -> Double {
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, $0.baseAddress!, batch: batch) } }
        return zip(w, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    _ = f()
    x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { yp in w.withUnsafeBufferPointer { wp in gx.withUnsafeMutableBufferPointer { gp in
        layer.backward(input: xp.baseAddress!, output: yp.baseAddress!, gradOutput: wp.baseAddress!, gradInput: gp.baseAddress!, batch: batch)
    } } } }
    func close(_ analytic: Float, _ numeric: Double) -> Bool {
        abs(Double(analytic) - numeric) <= 2e-2 * max(1e-1, abs(numeric), Double(abs(analytic)))
    }
    for i in 0..<layer.parameterCount {
        let saved = params[i]
        params[i] = saved + eps; let up = f()
        params[i] = saved - eps; let down = f()
        params[i] = saved
        let numeric = (up - down) / Double(2 * eps)
        #expect(close(grads[i], numeric), "\(layer.name) parameter \(i): backward \(grads[i]), numeric \(numeric) (seed \(seed))",
                sourceLocation: SourceLocation(fileID: file, filePath: file, line: line, column: 1))
    }
    for i in 0..<inCount {
        let saved = x[i]
        x[i] = saved + eps; let up = f()
        x[i] = saved - eps; let down = f()
        x[i] = saved
        let numeric = (up - down) / Double(2 * eps)
        #expect(close(gx[i], numeric), "\(layer.name) input \(i): backward \(gx[i]), numeric \(numeric) (seed \(seed))",
                sourceLocation: SourceLocation(fileID: file, filePath: file, line: line, column: 1))
    }
}

@Suite("Finite-difference gradient checks")
struct GradientCheckTests {
    @Test("Linear") func linear() { gradientCheck(Linear(input: .vector(5), outputs: 4), batch: 3) }

    @Test("Linear on an image input (flattened NHWC)") func linearImage() {
        gradientCheck(Linear(input: FeatureShape(height: 2, width: 3, channels: 2), outputs: 3))
    }

    @Test("Conv2D 3×3, stride 1, padding 1, and 5×5 padding 2: the direct path and im2row") func conv() {
        let direct = Conv2D(input: FeatureShape(height: 5, width: 4, channels: 2), outChannels: 3, kernel: 3, stride: 1, padding: 1)
        #expect(direct.usesDirect == (BLAS.hardwareLevel > .generic))
        gradientCheck(direct)
        gradientCheck(Conv2D(input: FeatureShape(height: 5, width: 4, channels: 2), outChannels: 3, kernel: 3, stride: 1, padding: 1, direct: false))
        gradientCheck(Conv2D(input: FeatureShape(height: 6, width: 7, channels: 3), outChannels: 17, kernel: 5, stride: 1, padding: 2, bias: false))
    }

    @Test("Conv2D with stride 2 and padding 2, and a 1×1 and a 2×2 kernel") func convStride() {
        gradientCheck(Conv2D(input: FeatureShape(height: 6, width: 5, channels: 3), outChannels: 2, kernel: 3, stride: 2, padding: 2))
        gradientCheck(Conv2D(input: FeatureShape(height: 4, width: 4, channels: 3), outChannels: 2, kernel: 1))
        gradientCheck(Conv2D(input: FeatureShape(height: 5, width: 5, channels: 1), outChannels: 2, kernel: 2, stride: 2))
    }

    @Test("DepthwiseConv2D: 3×3 padded, strided 2 with padding 2, and 1×1") func depthwise() {
        gradientCheck(DepthwiseConv2D(input: FeatureShape(height: 5, width: 4, channels: 3), kernel: 3, padding: 1))
        gradientCheck(DepthwiseConv2D(input: FeatureShape(height: 6, width: 5, channels: 2), kernel: 3, stride: 2, padding: 2))
        gradientCheck(DepthwiseConv2D(input: FeatureShape(height: 3, width: 3, channels: 4), kernel: 1))
    }

    @Test("MaxPool2D, AvgPool2D, GlobalAvgPool, Flatten") func pooling() {
        // A small step keeps max-pool's winner from changing (it is piecewise linear: no curvature error).
        gradientCheck(MaxPool2D(input: FeatureShape(height: 4, width: 6, channels: 2)), eps: 1e-4)
        gradientCheck(MaxPool2D(input: FeatureShape(height: 5, width: 5, channels: 1), kernel: 3, stride: 2), eps: 1e-4)
        // Channel counts in multiples of 4 take the SSE2 path.
        gradientCheck(MaxPool2D(input: FeatureShape(height: 4, width: 6, channels: 8)), eps: 1e-4)
        gradientCheck(MaxPool2D(input: FeatureShape(height: 5, width: 5, channels: 4), kernel: 3, stride: 2), eps: 1e-4)
        gradientCheck(AvgPool2D(input: FeatureShape(height: 4, width: 4, channels: 3)))
        gradientCheck(GlobalAvgPool(input: FeatureShape(height: 3, width: 2, channels: 4)))
        gradientCheck(Flatten(input: FeatureShape(height: 2, width: 2, channels: 2)))
    }

    @Test("Linear pointwise (a 1×1 convolution or a per-token linear), and layers without bias") func pointwiseAndNoBias() {
        gradientCheck(Linear(input: FeatureShape(height: 2, width: 3, channels: 4), outputs: 3, pointwise: true))
        gradientCheck(Linear(input: FeatureShape(height: 1, width: 3, channels: 2), outputs: 5, pointwise: true, bias: false))
        gradientCheck(Linear(input: .vector(5), outputs: 3, bias: false))
        gradientCheck(Conv2D(input: FeatureShape(height: 4, width: 4, channels: 2), outChannels: 3, kernel: 3, padding: 1, bias: false))
        gradientCheck(DepthwiseConv2D(input: FeatureShape(height: 4, width: 3, channels: 3), kernel: 3, padding: 1, bias: false))
    }

    @Test("BatchNorm: batch statistics (training and collecting) and fixed statistics (evaluation)") func batchNorm() {
        gradientCheck(BatchNorm(input: FeatureShape(height: 3, width: 2, channels: 3)), batch: 2)
        gradientCheck(BatchNorm(input: .vector(4)), batch: 5)
        let collecting = BatchNorm(input: FeatureShape(height: 2, width: 2, channels: 2))
        collecting.setMode(.collecting)
        gradientCheck(collecting, batch: 3)
        let evaluation = BatchNorm(input: FeatureShape(height: 2, width: 3, channels: 3))
        evaluation.setRunningStatistics(mean: [0.1, -0.2, 0.3], variance: [0.5, 2, 1.5])
        evaluation.setMode(.evaluation)
        gradientCheck(evaluation, batch: 2)
    }

    @Test("LayerNorm over each token's channels") func layerNorm() {
        gradientCheck(LayerNorm(input: FeatureShape(height: 1, width: 3, channels: 5)), batch: 2)
    }

    @Test("residual blocks: identity, projection and option-A shortcuts; squeeze-and-excitation") func blocks() throws {
        let shape = FeatureShape(height: 4, width: 4, channels: 2)
        let identity = try Residual(main: [Conv2D(input: shape, outChannels: 2, kernel: 3, padding: 1, bias: false), BatchNorm(input: shape),
                                           Activation(.tanh, input: shape), Conv2D(input: shape, outChannels: 2, kernel: 3, padding: 1)])
        gradientCheck(identity)
        let down = FeatureShape(height: 2, width: 2, channels: 4)
        let main: () -> [Layer] = { [Conv2D(input: shape, outChannels: 4, kernel: 3, stride: 2, padding: 1), Activation(.tanh, input: down)] }
        gradientCheck(try Residual(main: main(), shortcut: [Conv2D(input: shape, outChannels: 4, kernel: 1, stride: 2, bias: false), BatchNorm(input: down)]))
        gradientCheck(try Residual(main: main(), shortcut: [try ShortcutA(input: shape, outChannels: 4, stride: 2)]))
        gradientCheck(try ShortcutA(input: FeatureShape(height: 5, width: 3, channels: 2), outChannels: 6, stride: 2))
        gradientCheck(SqueezeExcite(input: FeatureShape(height: 3, width: 2, channels: 4), squeezed: 2), batch: 2)
        #expect(throws: EMCError.self) { try ShortcutA(input: shape, outChannels: 5, stride: 2) }
        #expect(throws: EMCError.self) { try Residual(main: main()) }  // 2×2×4 out cannot add to a 4×4×2 identity
    }

    @Test("self-attention, patch tokens and token pooling") func attention() throws {
        gradientCheck(try SelfAttention(input: FeatureShape(height: 1, width: 4, channels: 3 * 6), heads: 2), batch: 2, inputScale: 2)
        gradientCheck(try SelfAttention(input: FeatureShape(height: 1, width: 3, channels: 3 * 4), heads: 1), batch: 1, inputScale: 2)
        gradientCheck(try SelfAttention(input: FeatureShape(height: 1, width: 4, channels: 3 * 6), heads: 2, classQueryOnly: true), batch: 2, inputScale: 2)
        #expect(throws: EMCError.self) { try SelfAttention(input: FeatureShape(height: 1, width: 3, channels: 3 * 5), heads: 2) }
        for cls in [true, false] {
            gradientCheck(PatchTokens(input: FeatureShape(height: 2, width: 2, channels: 3), classToken: cls))
            gradientCheck(TokenPool(input: FeatureShape(height: 1, width: 4, channels: 3), classToken: cls))
        }
    }

    @Test("activations", arguments: ActivationKind.allCases)
    func activation(kind: ActivationKind) {
        gradientCheck(Activation(kind, input: .vector(40)), inputScale: 3)
    }

    @Test("softmax cross-entropy: gradient, loss and wrong count")
    func loss() {
        let rng = CounterRNG(seed: 4, stream: .test)
        let batch = 3, classes = 5
        var z = (0..<(batch * classes)).map { rng.uniform(UInt64($0)) * 4 - 2 }
        let y: [Int32] = [0, 3, 4]
        var grad = [Float](repeating: 0, count: z.count)
        func loss() -> Double {
            z.withUnsafeBufferPointer { zp in y.withUnsafeBufferPointer { yp in
                SoftmaxCrossEntropy.evaluate(logits: zp.baseAddress!, labels: yp.baseAddress!, batch: batch, classes: classes,
                                             gradient: nil, scale: 0).lossSum / Double(batch)
            } }
        }
        z.withUnsafeBufferPointer { zp in y.withUnsafeBufferPointer { yp in grad.withUnsafeMutableBufferPointer { gp in
            _ = SoftmaxCrossEntropy.evaluate(logits: zp.baseAddress!, labels: yp.baseAddress!, batch: batch, classes: classes,
                                             gradient: gp.baseAddress!, scale: 1 / Float(batch))
        } } }
        for i in 0..<z.count {
            let saved = z[i]
            z[i] = saved + 1e-2; let up = loss()
            z[i] = saved - 1e-2; let down = loss()
            z[i] = saved
            let numeric = (up - down) / 2e-2
            #expect(abs(Double(grad[i]) - numeric) < 1e-3, "logit \(i): \(grad[i]) vs \(numeric)")
        }
        // Uniform logits: loss log K for every sample, and ties count as wrong unless the label is class 0.
        let flat = [Float](repeating: 0, count: 2 * 4)
        let r = flat.withUnsafeBufferPointer { f in [Int32(0), 2].withUnsafeBufferPointer { l in
            SoftmaxCrossEntropy.evaluate(logits: f.baseAddress!, labels: l.baseAddress!, batch: 2, classes: 4, gradient: nil, scale: 0)
        } }
        #expect(abs(r.lossSum - 2 * log(4.0)) < 1e-6)
        #expect(r.wrong == 1)
    }

    @Test("Conv2D forward equals a direct convolution")
    func convForward() {
        let shape = FeatureShape(height: 5, width: 6, channels: 2)
        let conv = Conv2D(input: shape, outChannels: 3, kernel: 3, stride: 2, padding: 1)
        let rng = CounterRNG(seed: 8, stream: .test)
        let params = (0..<conv.parameterCount).map { rng.uniform(UInt64($0)) - 0.5 }
        var p = params, g = [Float](repeating: 0, count: params.count)
        let x = (0..<shape.count).map { rng.uniform(UInt64(1000 + $0)) }
        var y = [Float](repeating: 0, count: conv.outputShape.count)
        p.withUnsafeMutableBufferPointer { pp in g.withUnsafeMutableBufferPointer { gp in
            conv.bind(parameters: pp.baseAddress!, gradients: gp.baseAddress!, maxBatch: 1)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { conv.forward(xp.baseAddress!, $0.baseAddress!, batch: 1) } }
        } }
        let o = conv.outputShape
        for oy in 0..<o.height { for ox in 0..<o.width { for co in 0..<3 {
            var sum = params[3 * 18 + co]  // bias after the 3×(3·3·2) weights
            for ky in 0..<3 { for kx in 0..<3 { for ci in 0..<2 {
                let iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx
                guard iy >= 0, iy < 5, ix >= 0, ix < 6 else { continue }
                sum += params[co * 18 + (ky * 3 + kx) * 2 + ci] * x[(iy * 6 + ix) * 2 + ci]
            } } }
            #expect(abs(y[(oy * o.width + ox) * 3 + co] - sum) < 1e-5)
        } } }
    }
}

@Suite("Layer order")
struct LayerOrderTests {
    @Test("batch norm with a fused ReLU gives the bits of batch norm then ReLU: logits and every gradient, training and evaluation",
          arguments: [3, 8, 16])
    func fusedBatchNormReLU(channels: Int) throws {
        let shape = FeatureShape(height: 4, width: 4, channels: 2), inner = FeatureShape(height: 4, width: 4, channels: channels)
        let rng = CounterRNG(seed: 31, stream: .test)
        let x = (0..<(5 * shape.count)).map { rng.uniform(UInt64($0)) * 2 - 1 }
        func run(_ normalization: [Layer], mode: NormalizationMode) -> (logits: [Float], gradients: [Float]) {
            let layers = [Conv2D(input: shape, outChannels: channels, kernel: 3, padding: 1)] + normalization + [Linear(input: inner, outputs: 3)]
            let model = Model(layers: layers, maxBatch: 5)
            for i in 0..<model.parameterCount { model.parameters[i] = rng.uniform(UInt64(1 << 20 | i)) - 0.5 }
            model.setMode(mode == .evaluation ? .collecting : mode)
            if mode == .evaluation {
                _ = x.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: 5) }
                model.setMode(.evaluation)
            }
            model.zeroGradients()
            let logits = x.withUnsafeBufferPointer { xp in
                let out = model.forward(xp.baseAddress!, batch: 5)
                let copy = Array(UnsafeBufferPointer(start: out, count: 15))
                for i in 0..<15 { model.logitGradient[i] = Float(i % 4) - 1.5 }
                model.backward(xp.baseAddress!, batch: 5)
                return copy
            }
            return (logits, model.parameterValues.indices.map { model.gradients[$0] })
        }
        for mode in [NormalizationMode.training, .evaluation] {
            let fused = run([BatchNorm(input: inner, relu: true)], mode: mode)
            let separate = run([BatchNorm(input: inner), Activation(.relu, input: inner)], mode: mode)
            #expect(fused.logits.map(\.bitPattern) == separate.logits.map(\.bitPattern), "logits, \(channels) channels, \(mode)")
            #expect(fused.gradients.map(\.bitPattern) == separate.gradients.map(\.bitPattern), "gradients, \(channels) channels, \(mode)")
            #expect(fused.gradients.contains { $0 != 0 })
        }
    }

    @Test("pooling before a monotonic activation gives the same outputs and gradients as after it", arguments: [ActivationKind.relu, .tanh, .leakyRelu])
    func poolActivationCommute(kind: ActivationKind) throws {
        let shape = FeatureShape(height: 4, width: 4, channels: 3)
        let rng = CounterRNG(seed: 12, stream: .test)
        let x = (0..<(2 * shape.count)).map { rng.uniform(UInt64($0)) * 2 - 1 }
        let pooled = FeatureShape(height: 2, width: 2, channels: 3)
        let dy = (0..<(2 * pooled.count)).map { rng.uniform(UInt64(500 + $0)) - 0.5 }
        func run(_ layers: [Layer]) -> (y: [Float], dx: [Float]) {
            let model = Model(layers: layers + [Linear(input: pooled, outputs: 2)], maxBatch: 2)
            var y = [Float](repeating: 0, count: dy.count), dx = [Float](repeating: 0, count: x.count)
            var a = [Float](repeating: 0, count: x.count)
            x.withUnsafeBufferPointer { xp in
                layers[0].forward(xp.baseAddress!, &a, batch: 2)
                a.withUnsafeBufferPointer { ap in layers[1].forward(ap.baseAddress!, &y, batch: 2) }
                var da = [Float](repeating: 0, count: a.count)
                a.withUnsafeBufferPointer { ap in y.withUnsafeBufferPointer { yp in dy.withUnsafeBufferPointer { dyp in
                    layers[1].backward(input: ap.baseAddress!, output: yp.baseAddress!, gradOutput: dyp.baseAddress!, gradInput: &da, batch: 2)
                } } }
                a.withUnsafeBufferPointer { ap in da.withUnsafeBufferPointer { dap in
                    layers[0].backward(input: xp.baseAddress!, output: ap.baseAddress!, gradOutput: dap.baseAddress!, gradInput: &dx, batch: 2)
                } }
            }
            _ = model
            return (y, dx)
        }
        let actFirst = run([Activation(kind, input: shape), MaxPool2D(input: shape)])
        let poolFirst = run([MaxPool2D(input: shape), Activation(kind, input: pooled)])
        for i in 0..<actFirst.y.count { #expect(abs(actFirst.y[i] - poolFirst.y[i]) < 1e-6) }
        for i in 0..<actFirst.dx.count { #expect(abs(actFirst.dx[i] - poolFirst.dx[i]) < 1e-6) }
    }
}
