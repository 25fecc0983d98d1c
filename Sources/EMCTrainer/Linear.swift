import EMCCore
import CTrainerKernels

/// Fully connected layer, y = x Wᵀ + b, as PyTorch's `nn.Linear`.
///
/// Shapes: x [B, in], W [out, in], b [out], y [B, out].
/// Forward  y  = x · Wᵀ + b           (sgemm NoTrans×Trans)
/// Backward dW += dyᵀ · x, db += Σ_B dy (sgemm Trans×NoTrans)
///          dx  = dy · W               (sgemm NoTrans×NoTrans)
public final class Linear: Layer {
    public let name = "linear"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    let inFeatures: Int
    let outFeatures: Int
    private var weight: UnsafeMutablePointer<Float>!
    private var bias: UnsafeMutablePointer<Float>!
    private var gradWeight: UnsafeMutablePointer<Float>!
    private var gradBias: UnsafeMutablePointer<Float>!

    public init(input: FeatureShape, outputs: Int) {
        inputShape = input
        inFeatures = input.count
        outFeatures = outputs
        outputShape = .vector(outputs)
    }

    public var parameterTensors: [(count: Int, fanIn: Int)] { [(outFeatures * inFeatures, inFeatures), (outFeatures, inFeatures)] }
    public var matrixShapes: [(rows: Int, cols: Int)?] { [(outFeatures, inFeatures), nil] }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        weight = parameters
        bias = parameters + outFeatures * inFeatures
        gradWeight = gradients
        gradBias = gradients + outFeatures * inFeatures
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        // Bias first, then accumulate the product onto it (beta = 1).
        emc_add_bias(output, bias, batch, outFeatures)
        BLAS.sgemm(.none, .transpose, m: batch, n: outFeatures, k: inFeatures, alpha: 1, a: input, lda: inFeatures,
                   b: weight, ldb: inFeatures, beta: 1, c: output, ldc: outFeatures)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        BLAS.sgemm(.transpose, .none, m: outFeatures, n: inFeatures, k: batch, alpha: 1, a: gradOutput, lda: outFeatures,
                   b: input, ldb: inFeatures, beta: 1, c: gradWeight, ldc: inFeatures)
        emc_sum_rows(gradBias, gradOutput, batch, outFeatures)
        if let gradInput {
            BLAS.sgemm(.none, .none, m: batch, n: inFeatures, k: outFeatures, alpha: 1, a: gradOutput, lda: outFeatures,
                       b: weight, ldb: inFeatures, beta: 0, c: gradInput, ldc: inFeatures)
        }
    }
}
