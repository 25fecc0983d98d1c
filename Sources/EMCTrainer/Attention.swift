import Foundation
import EMCCore
import CTrainerKernels

// The vision transformer's layers. Tokens are stored as NHWC samples of height 1: [B, 1, T, C], so the per-token
// linear maps are pointwise `Linear`s and LayerNorm normalises each token's C values.

/// Multi-head self-attention's core (no causal mask), after the joint q/k/v projection and before the output one, as
/// timm's `Attention`: the input holds each token's [q | k | v] (3·D values; head h's q is q[h·d ..< (h+1)·d], d = D/H),
/// and per sample and head
///   S = q·kᵀ / √d  [Q, T],  P = softmax over each row of S,  O = P·v  [Q, d]  → output[:, h·d ..< (h+1)·d],
/// for the queries of the first Q tokens: all T, or only the class token's (`classQueryOnly`, the last encoder block of
/// a class-token ViT, where nothing after the layer reads the other tokens: the output is that one token).
/// Backward: dv = Pᵀ·dO, dP = dO·vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = dS·k/√d, dk = dSᵀ·q/√d (dq = 0 for the
/// tokens whose queries are not used).
/// The products are emc's own (`emc_attention_forward` / `_backward`, product.c): each reads q, k and v in place
/// (leading dimension 3·D) and sums every element in one fused multiply-add chain in order.
public final class SelfAttention: Layer, LayerWithoutHessian {
    public let name: String
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let heads: Int
    public let tokens: Int
    /// The tokens whose queries are computed (the first `queries`): `tokens`, or 1 with `classQueryOnly`.
    public let queries: Int
    public let dim: Int
    var headDim: Int { dim / heads }
    private var probabilities = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var scratch = PartScratch()

    /// `input`: tokens of 3·D values ([q | k | v]); throws unless D divides into `heads` heads.
    public init(input: FeatureShape, heads: Int, classQueryOnly: Bool = false) throws {
        guard input.channels % 3 == 0, heads >= 1, (input.channels / 3) % heads == 0 else {
            throw EMCError(.invalidArgument, "attention: \(input.channels / 3) dimensions do not split into \(heads) heads; choose dim divisible by heads")
        }
        inputShape = input
        self.heads = heads
        tokens = input.height * input.width
        queries = classQueryOnly ? 1 : tokens
        dim = input.channels / 3
        outputShape = classQueryOnly ? .vector(dim) : FeatureShape(height: input.height, width: input.width, channels: dim)
        name = classQueryOnly ? "class-attention" : "attention"
    }

    deinit { probabilities.deallocate(); scratch.deallocate() }


    public func workspaceBytes(maxBatch: Int) -> Int? {
        checkedProduct([4, maxBatch * heads * queries + Parallel.threads * (tokens + headDim), tokens])
    }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        probabilities.deallocate()
        probabilities = .allocate(capacity: maxBatch * heads * queries * tokens)
        scratch.allocate(tokens * (tokens + headDim))
    }

    /// A sample's floats for the team's split: its probabilities, or for one query the keys and values it reads.
    private var perSample: Int { heads * max(queries * tokens, 2 * tokens * headDim) }

    private func probs(_ b: Int) -> UnsafeMutablePointer<Float> { probabilities.baseAddress! + b * heads * queries * tokens }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let t = tokens, q = queries, ld = 3 * dim, scratch = self.scratch
        // Sample by sample over the team (each sample's heads on one thread).
        Parallel.samples(batch, perSample: perSample) { samples, part in
            for b in samples {
                emc_attention_forward(BLAS.hardwareLevel.rawValue, input + b * t * ld, output + b * q * dim, probs(b), Int32(t), Int32(q),
                                      Int32(dim), Int32(heads), scratch[part])
            }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let gradInput else { return }
        let t = tokens, q = queries, ld = 3 * dim, scratch = self.scratch
        Parallel.samples(batch, perSample: perSample) { samples, part in
            for b in samples {
                emc_attention_backward(BLAS.hardwareLevel.rawValue, input + b * t * ld, probs(b), gradOutput + b * q * dim, gradInput + b * t * ld,
                                       Int32(t), Int32(q), Int32(dim), Int32(heads), scratch[part])
            }
        }
    }
}

/// The joint q/k/v projection of a class-token ViT's last encoder block, where attention reads one query
/// (`SelfAttention(classQueryOnly:)`): keys and values for every token, the query for the class token (token 0) alone.
/// Its parameters are a `Linear`'s to 3·D outputs (W [3D, D] with the query's rows first, then b [3D]), drawn alike; its
/// output is laid out as that Linear's ([q | k | v] per token), with zeros for the other tokens' queries.
/// Forward  kv = x · W_kvᵀ + b_kv (every row),  q = x₀ · W_qᵀ + b_q (each sample's class-token row x₀)
/// Backward dW_kv += dkvᵀ · x, dW_q += dqᵀ · x₀ (the class-token rows), db likewise; dx = dkv · W_kv, dx₀ += dq · W_q.
/// Products whose sums are at most `Linear.inPlaceDepth` long by `emc_product_rows` (each element one fused multiply-add
/// chain in order, split over the team anywhere), the rest by OpenBLAS, the weight gradients by `BLAS`'s rules.
public final class ClassQueryProjection: Layer, LayerWithoutHessian {
    public let name = "class-query-qkv"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let dim: Int
    public let tokens: Int
    /// Wᵀ (D × 3D) for the in-place forward.
    private var transposed = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var parameters: WeightAndBias!
    private var gradients: WeightAndBias!

    /// `input`: tokens of D values, the class token first.
    public init(input: FeatureShape) {
        inputShape = input
        dim = input.channels
        tokens = input.height * input.width
        outputShape = FeatureShape(height: input.height, width: input.width, channels: 3 * input.channels)
    }

    deinit { transposed.deallocate() }

    public var parameterTensors: [(count: Int, fanIn: Int)] { [(3 * dim * dim, dim), (3 * dim, dim)] }
    public var matrixShapes: [(rows: Int, cols: Int)?] { [(3 * dim, dim), nil] }
    private var inPlace: Bool { dim <= Linear.inPlaceDepth }

    public func workspaceBytes(maxBatch: Int) -> Int? { inPlace ? checkedProduct([4, 3, dim, dim]) : 0 }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.parameters = WeightAndBias(parameters, weights: 3 * dim * dim)
        self.gradients = WeightAndBias(gradients, weights: 3 * dim * dim)
        if inPlace {
            transposed.deallocate()
            transposed = .allocate(capacity: 3 * dim * dim)
        }
    }

    /// y[r][0..<n] += bias for rows `ld` apart.
    private static func addBias(_ y: UnsafeMutablePointer<Float>, ld: Int, rows: Int, _ bias: UnsafePointer<Float>, n: Int) {
        Parallel.ranges(rows, minimum: max(1, Parallel.minimumElements / max(1, n))) { part, _ in
            for r in part { let row = y + r * ld; for j in 0..<n { row[j] += bias[j] } }
        }
    }

    /// db[c] += Σ_r dy[r][c] for columns `columns` of rows `ld` apart, in row order (the bias and [q | k | v] share a
    /// layout), columns split over the team.
    private static func sumRows(_ db: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, ld: Int, rows: Int, columns: Range<Int>) {
        Parallel.ranges(columns.count, grain: 8, minimum: max(8, Parallel.minimumElements / max(1, rows))) { part, _ in
            emc_sum_rows_range(db, dy, rows, ld, columns.lowerBound + part.lowerBound, columns.lowerBound + part.upperBound)
        }
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let d = dim, t = tokens, rows = batch * t, w = parameters.weight, b = parameters.bias
        if inPlace {
            emc_transpose(BLAS.hardwareLevel.rawValue, transposed.baseAddress!, w, d, Int32(3 * d), Int32(d))
            let wt = UnsafePointer(transposed.baseAddress!)
            Linear.inPlaceRows(rows, n: 2 * d, depth: d, input, lda: d, wt + d, ldb: 3 * d, output + d, ldc: 3 * d, bias: b + d, accumulate: false)
            Linear.inPlaceRows(batch, n: d, depth: d, input, lda: t * d, wt, ldb: 3 * d, output, ldc: t * 3 * d, bias: b, accumulate: false)
        } else {
            BLAS.sgemm(.none, .transpose, m: rows, n: 2 * d, k: d, alpha: 1, a: input, lda: d, b: w + d * d, ldb: d, beta: 0,
                       c: output + d, ldc: 3 * d)
            Self.addBias(output + d, ld: 3 * d, rows: rows, b + d, n: 2 * d)
            BLAS.sgemm(.none, .transpose, m: batch, n: d, k: d, alpha: 1, a: input, lda: t * d, b: w, ldb: d, beta: 0,
                       c: output, ldc: t * 3 * d)
            Self.addBias(output, ld: t * 3 * d, rows: batch, b, n: d)
        }
        // The other tokens' queries: nothing reads them; zeros rather than whatever the buffer held.
        Parallel.ranges(batch, minimum: max(1, Parallel.minimumElements / max(1, t * d))) { samples, _ in
            for s in samples { for i in 1..<max(1, t) { (output + (s * t + i) * 3 * d).update(repeating: 0, count: d) } }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let d = dim, t = tokens, rows = batch * t, w = UnsafePointer(parameters.weight)
        BLAS.accumulateTransposedProduct(m: 2 * d, n: d, k: rows, a: gradOutput + d, lda: 3 * d, b: input, ldb: d,
                                         c: gradients.weight + d * d, ldc: d)
        BLAS.accumulateTransposedProduct(m: d, n: d, k: batch, a: gradOutput, lda: t * 3 * d, b: input, ldb: t * d, c: gradients.weight, ldc: d)
        Self.sumRows(gradients.bias, gradOutput, ld: 3 * d, rows: rows, columns: d..<(3 * d))
        Self.sumRows(gradients.bias, gradOutput, ld: t * 3 * d, rows: batch, columns: 0..<d)
        guard let gradInput else { return }
        if 2 * d <= Linear.inPlaceDepth {
            Linear.inPlaceRows(rows, n: d, depth: 2 * d, gradOutput + d, lda: 3 * d, w + d * d, ldb: d, gradInput, ldc: d, bias: nil, accumulate: false)
        } else {
            BLAS.sgemm(.none, .none, m: rows, n: d, k: 2 * d, alpha: 1, a: gradOutput + d, lda: 3 * d, b: w + d * d, ldb: d, beta: 0,
                       c: gradInput, ldc: d)
        }
        if inPlace {
            Linear.inPlaceRows(batch, n: d, depth: d, gradOutput, lda: t * 3 * d, w, ldb: d, gradInput, ldc: t * d, bias: nil, accumulate: true)
        } else {
            BLAS.sgemm(.none, .none, m: batch, n: d, k: d, alpha: 1, a: gradOutput, lda: t * 3 * d, b: w, ldb: d, beta: 1,
                       c: gradInput, ldc: t * d)
        }
    }
}

/// Patch embeddings to tokens: the patch grid [h, w, D] (a convolution with stride = kernel) becomes h·w tokens, after
/// a learned class token when `classToken`; each token adds its learned position embedding. Parameters: the class token
/// [D] (when present), then the position embeddings [T, D]; both start normal with standard deviation 0.02, as timm's.
public final class PatchTokens: Layer, LayerWithoutHessian {
    public let name = "tokens"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let classToken: Bool
    public let dim: Int
    private var parameters: UnsafeMutablePointer<Float>!
    private var gradients: UnsafeMutablePointer<Float>!

    public init(input: FeatureShape, classToken: Bool) {
        inputShape = input
        self.classToken = classToken
        dim = input.channels
        outputShape = FeatureShape(height: 1, width: input.height * input.width + (classToken ? 1 : 0), channels: input.channels)
    }

    public var parameterTensors: [(count: Int, fanIn: Int)] { (classToken ? [(dim, dim)] : []) + [(outputShape.count, dim)] }
    public var initializers: [ParameterInit] { parameterTensors.map { _ in .normal(std: 0.02) } }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.parameters = parameters
        self.gradients = gradients
    }

    private var lead: Int { classToken ? dim : 0 }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let parameters = self.parameters!, position = parameters + lead, n = outputShape.count, first = lead, m = inputShape.count
        let classToken = self.classToken, dim = self.dim
        Parallel.samples(batch, perSample: n) { samples, _ in
            for b in samples {
                let y = output + b * n, x = input + b * m
                if classToken { for j in 0..<dim { y[j] = parameters[j] + position[j] } }
                for j in 0..<m { y[first + j] = x[j] + position[first + j] }
            }
        }
    }

    /// The embeddings' gradients sum over the batch, each element in sample order, split by elements; the input
    /// gradient by samples.
    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let gradients = self.gradients!, position = gradients + lead, n = outputShape.count, first = lead, m = inputShape.count
        Parallel.ranges(n, grain: 16, minimum: max(16, Parallel.minimumElements / max(1, batch))) { elements, _ in
            for b in 0..<batch {
                let g = gradOutput + b * n
                for j in elements { position[j] += g[j] }
            }
        }
        if classToken { for b in 0..<batch { let g = gradOutput + b * n; for j in 0..<dim { gradients[j] += g[j] } } }
        guard let gradInput else { return }
        Parallel.samples(batch, perSample: m) { samples, _ in
            for b in samples { (gradInput + b * m).update(from: gradOutput + b * n + first, count: m) }
        }
    }
}

/// The transformer's head input: the class token (`classToken`), or the mean of all tokens.
public final class TokenPool: LinearParameterFreeLayer {
    public let name: String
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let classToken: Bool

    public init(input: FeatureShape, classToken: Bool) {
        inputShape = input
        self.classToken = classToken
        name = classToken ? "class-token" : "mean-pool"
        outputShape = .vector(input.channels)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let c = inputShape.channels, t = inputShape.height * inputShape.width
        for b in 0..<batch {
            let x = input + b * inputShape.count, y = output + b * c
            if classToken { y.update(from: x, count: c); continue }
            y.update(repeating: 0, count: c)
            for i in 0..<t { for j in 0..<c { y[j] += x[i * c + j] } }
            for j in 0..<c { y[j] /= Float(t) }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let gradInput else { return }
        let c = inputShape.channels, t = inputShape.height * inputShape.width
        gradInput.update(repeating: 0, count: batch * inputShape.count)
        for b in 0..<batch {
            let g = gradOutput + b * c, d = gradInput + b * inputShape.count
            if classToken { d.update(from: g, count: c); continue }
            for i in 0..<t { for j in 0..<c { d[i * c + j] = g[j] / Float(t) } }
        }
    }
}
