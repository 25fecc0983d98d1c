import CTrainerKernels
import EMCCore
import EMCTrainer
import Testing

/// The in-place products (product.c: self-attention's, and the ViT's token-wise linear maps') promise one fused
/// multiply-add chain per element, in order, whatever tile or vector lane the element falls in. The reference below
/// computes exactly that, one element at a time, and must match the layers bit for bit at a ViT's sizes (65 tokens, 16
/// values a head, 64–256 features: whole tiles) and at sizes that leave partial tiles and masked vectors.
@Suite("Self-attention's and the token-wise maps' own products")
struct InPlaceProductTests {
    /// Σ_k a(k)·b(k) as fma(a, b, acc) from acc = 0, k in order, times alpha.
    private func chain(_ depth: Int, alpha: Float, _ a: (Int) -> Float, _ b: (Int) -> Float) -> Float {
        var acc: Float = 0
        for k in 0..<depth { acc = acc.addingProduct(a(k), b(k)) }
        return alpha * acc
    }

    @Test("forward and backward equal the in-order fused multiply-add chains bit for bit, for every token's query and for the class token's alone",
          arguments: [(65, 64, 4), (17, 36, 3), (5, 10, 1)], [false, true])
    func matchesChains(shape: (tokens: Int, dim: Int, heads: Int), classQueryOnly: Bool) throws {
        let (t, dim, heads) = shape, d = dim / heads, batch = 3, ld = 3 * dim
        let layer = try SelfAttention(input: FeatureShape(height: 1, width: t, channels: ld), heads: heads, classQueryOnly: classQueryOnly)
        let r = classQueryOnly ? 1 : t  // the tokens whose queries are computed
        #expect(layer.outputShape.count == r * dim)
        var unused: [Float] = [0]
        unused.withUnsafeMutableBufferPointer { layer.bind(parameters: $0.baseAddress!, gradients: $0.baseAddress!, maxBatch: batch) }
        let rng = CounterRNG(seed: 7, stream: .test)
        let x = (0..<(batch * t * ld)).map { rng.uniform(UInt64($0)) * 4 - 2 }
        let dy = (0..<(batch * r * dim)).map { rng.uniform(UInt64(1 << 30 | $0)) - 0.5 }
        // dx starts as garbage: the backward writes every element, the unused queries' gradients as zeros.
        var y = [Float](repeating: 0, count: batch * r * dim), dx = [Float](repeating: .nan, count: batch * t * ld)
        layer.forward(x, &y, batch: batch)
        layer.backward(input: x, output: y, gradOutput: dy, gradInput: &dx, batch: batch)

        let scale = 1 / Float(d).squareRoot()
        var expectY = [Float](repeating: 0, count: y.count), expectDX = [Float](repeating: 0, count: dx.count)
        for b in 0..<batch {
            for h in 0..<heads {
                func q(_ i: Int, _ c: Int) -> Float { x[(b * t + i) * ld + h * d + c] }
                func k(_ i: Int, _ c: Int) -> Float { x[(b * t + i) * ld + dim + h * d + c] }
                func v(_ i: Int, _ c: Int) -> Float { x[(b * t + i) * ld + 2 * dim + h * d + c] }
                func dO(_ i: Int, _ c: Int) -> Float { dy[(b * r + i) * dim + h * d + c] }
                var p = [Float](repeating: 0, count: r * t), ds = p
                for i in 0..<r { for j in 0..<t { p[i * t + j] = chain(d, alpha: scale, { q(i, $0) }, { k(j, $0) }) } }
                emc_softmax_rows(&p, r, t)
                for i in 0..<r { for c in 0..<d {
                    expectY[(b * r + i) * dim + h * d + c] = chain(t, alpha: 1, { p[i * t + $0] }, { v($0, c) })
                } }
                for i in 0..<r { for j in 0..<t { ds[i * t + j] = chain(d, alpha: 1, { dO(i, $0) }, { v(j, $0) }) } }
                emc_softmax_backward_rows(&ds, p, r, t)
                for i in 0..<t { for c in 0..<d {
                    let row = (b * t + i) * ld + h * d + c
                    expectDX[row] = i < r ? chain(t, alpha: scale, { ds[i * t + $0] }, { k($0, c) }) : 0
                    expectDX[row + dim] = chain(r, alpha: scale, { ds[$0 * t + i] }, { q($0, c) })
                    expectDX[row + 2 * dim] = chain(r, alpha: 1, { p[$0 * t + i] }, { dO($0, c) })
                } }
            }
        }
        #expect(y.map(\.bitPattern) == expectY.map(\.bitPattern))
        #expect(dx.map(\.bitPattern) == expectDX.map(\.bitPattern))

        // The scalar path (machines without AVX2, KernelLevel.generic) gives the same bits.
        var scalarY = [Float](repeating: 0, count: y.count), scalarDX = [Float](repeating: 0, count: dx.count)
        var probabilities = [Float](repeating: 0, count: heads * r * t), scratch = [Float](repeating: 0, count: t * (t + d))
        for b in 0..<batch {
            x.withUnsafeBufferPointer { xp in dy.withUnsafeBufferPointer { dyp in
                scalarY.withUnsafeMutableBufferPointer { yp in scalarDX.withUnsafeMutableBufferPointer { dxp in
                    emc_attention_forward(KernelLevel.generic.rawValue, xp.baseAddress! + b * t * ld, yp.baseAddress! + b * r * dim,
                                          &probabilities, Int32(t), Int32(r), Int32(dim), Int32(heads), &scratch)
                    emc_attention_backward(KernelLevel.generic.rawValue, xp.baseAddress! + b * t * ld, probabilities,
                                           dyp.baseAddress! + b * r * dim, dxp.baseAddress! + b * t * ld, Int32(t), Int32(r), Int32(dim),
                                           Int32(heads), &scratch)
                } }
            } }
        }
        #expect(scalarY.map(\.bitPattern) == y.map(\.bitPattern))
        #expect(scalarDX.map(\.bitPattern) == dx.map(\.bitPattern))
    }

    @Test("a token-wise linear map's forward and input gradient equal the in-order chains bit for bit; its gradients check",
          arguments: [(64, 48), (13, 21), (40, 64)])
    func linearMatchesChains(shape: (inputs: Int, outputs: Int)) throws {
        let (nIn, nOut) = shape, positions = 7, batch = 3, rows = batch * positions
        let layer = Linear(input: FeatureShape(height: 1, width: positions, channels: nIn), outputs: nOut, pointwise: true,
                           inPlaceProducts: true)
        let rng = CounterRNG(seed: 11, stream: .test)
        var parameters = (0..<layer.parameterCount).map { rng.uniform(UInt64($0)) - 0.5 }
        var gradients = [Float](repeating: 0, count: layer.parameterCount)
        parameters.withUnsafeMutableBufferPointer { p in gradients.withUnsafeMutableBufferPointer { g in
            layer.bind(parameters: p.baseAddress!, gradients: g.baseAddress!, maxBatch: batch)
        } }
        let x = (0..<(rows * nIn)).map { rng.uniform(UInt64(1 << 20 | $0)) * 2 - 1 }
        let dy = (0..<(rows * nOut)).map { rng.uniform(UInt64(1 << 30 | $0)) - 0.5 }
        var y = [Float](repeating: 0, count: rows * nOut), dx = [Float](repeating: 0, count: rows * nIn)
        layer.forward(x, &y, batch: batch)
        layer.backward(input: x, output: y, gradOutput: dy, gradInput: &dx, batch: batch)
        let weight = Array(parameters[0..<(nIn * nOut)]), bias = Array(parameters[(nIn * nOut)...])
        var expectY = y, expectDX = dx
        for r in 0..<rows {
            for o in 0..<nOut { expectY[r * nOut + o] = chain(nIn, alpha: 1, { x[r * nIn + $0] }, { weight[o * nIn + $0] }) + bias[o] }
            for i in 0..<nIn { expectDX[r * nIn + i] = chain(nOut, alpha: 1, { dy[r * nOut + $0] }, { weight[$0 * nIn + i] }) }
        }
        #expect(y.map(\.bitPattern) == expectY.map(\.bitPattern))
        #expect(dx.map(\.bitPattern) == expectDX.map(\.bitPattern))
        var scalarDX = dx
        emc_product_rows(KernelLevel.generic.rawValue, Int32(rows), Int32(nIn), Int32(nOut), dy, nOut, weight, nIn, &scalarDX, nIn, nil, 0)
        #expect(scalarDX.map(\.bitPattern) == dx.map(\.bitPattern), "the scalar path gives the same bits")
        if nIn * nOut < 1_000 {  // finite differences over every weight: the small shape only
            gradientCheck(Linear(input: FeatureShape(height: 1, width: 3, channels: nIn), outputs: nOut, pointwise: true, inPlaceProducts: true))
        }
    }

    @Test("a class-token block's q/k/v projection gives a Linear's keys and values for every token and its query for the class token; its gradients match and check",
          arguments: [8, 40, 72])
    func classQueryProjection(dim: Int) throws {
        let t = 5, batch = 3, rows = batch * t, d = dim
        let shape = FeatureShape(height: 1, width: t, channels: d)
        let layer = ClassQueryProjection(input: shape)
        let linear = Linear(input: shape, outputs: 3 * d, pointwise: true, inPlaceProducts: true)
        #expect(layer.parameterTensors.map(\.count) == linear.parameterTensors.map(\.count))
        #expect(layer.parameterTensors.map(\.fanIn) == linear.parameterTensors.map(\.fanIn))
        let rng = CounterRNG(seed: 5, stream: .test)
        var parameters = (0..<layer.parameterCount).map { rng.uniform(UInt64($0)) - 0.5 }
        var gradients = [Float](repeating: 0, count: layer.parameterCount), linearGradients = gradients
        parameters.withUnsafeMutableBufferPointer { p in
            gradients.withUnsafeMutableBufferPointer { layer.bind(parameters: p.baseAddress!, gradients: $0.baseAddress!, maxBatch: batch) }
            linearGradients.withUnsafeMutableBufferPointer { linear.bind(parameters: p.baseAddress!, gradients: $0.baseAddress!, maxBatch: batch) }
        }
        let x = (0..<(rows * d)).map { rng.uniform(UInt64(1 << 20 | $0)) * 2 - 1 }
        // The gradient attention gives: zero for the queries of every token but the class token.
        let dy = (0..<(rows * 3 * d)).map { i -> Float in
            let (row, column) = i.quotientAndRemainder(dividingBy: 3 * d)
            return row % t != 0 && column < d ? 0 : rng.uniform(UInt64(1 << 30 | i)) - 0.5
        }
        var y = [Float](repeating: .nan, count: rows * 3 * d), expectY = y
        var dx = [Float](repeating: .nan, count: rows * d), expectDX = dx
        layer.forward(x, &y, batch: batch)
        linear.forward(x, &expectY, batch: batch)
        layer.backward(input: x, output: y, gradOutput: dy, gradInput: &dx, batch: batch)
        linear.backward(input: x, output: expectY, gradOutput: dy, gradInput: &expectDX, batch: batch)
        for r in 0..<rows {
            for o in 0..<(3 * d) {
                let (got, want) = (y[r * 3 * d + o], expectY[r * 3 * d + o])
                if r % t != 0 && o < d {
                    #expect(got == 0, "row \(r), output \(o): the other tokens' queries are zeros")
                } else if d <= Linear.inPlaceDepth {
                    #expect(got.bitPattern == want.bitPattern, "row \(r), output \(o): the in-place chain, as the Linear computes it")
                } else {
                    #expect(abs(got - want) <= 1e-5 * max(1, abs(want)), "row \(r), output \(o): \(got) against \(want)")
                }
            }
        }
        for (i, (got, want)) in zip(dx, expectDX).enumerated() {
            #expect(abs(got - want) <= 1e-5 * max(1, abs(want)), "input gradient \(i): \(got) against \(want)")
        }
        for (i, (got, want)) in zip(gradients, linearGradients).enumerated() {
            #expect(abs(got - want) <= 1e-5 * max(1, abs(want)), "parameter gradient \(i): \(got) against \(want)")
        }
        if d <= 8 { gradientCheck(ClassQueryProjection(input: FeatureShape(height: 1, width: 3, channels: d))) }
    }
}
