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

    private func probs(_ b: Int) -> UnsafeMutablePointer<Float> { probabilities.baseAddress! + b * heads * queries * tokens }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let t = tokens, q = queries, ld = 3 * dim, scratch = self.scratch
        // Sample by sample over the team (each sample's heads on one thread).
        Parallel.samples(batch, perSample: heads * q * t) { samples, part in
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
        Parallel.samples(batch, perSample: heads * q * t) { samples, part in
            for b in samples {
                emc_attention_backward(BLAS.hardwareLevel.rawValue, input + b * t * ld, probs(b), gradOutput + b * q * dim, gradInput + b * t * ld,
                                       Int32(t), Int32(q), Int32(dim), Int32(heads), scratch[part])
            }
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
        let position = parameters + lead, n = outputShape.count, first = lead
        for b in 0..<batch {
            let y = output + b * n, x = input + b * inputShape.count
            if classToken { for j in 0..<dim { y[j] = parameters[j] + position[j] } }
            for j in 0..<inputShape.count { y[first + j] = x[j] + position[first + j] }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let position = gradients + lead, n = outputShape.count, first = lead
        for b in 0..<batch {
            let g = gradOutput + b * n
            for j in 0..<n { position[j] += g[j] }
            if classToken { for j in 0..<dim { gradients[j] += g[j] } }
            gradInput?.advanced(by: b * inputShape.count).update(from: g + first, count: inputShape.count)
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
