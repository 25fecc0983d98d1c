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
    public let inFeatures: Int
    public let outFeatures: Int
    private var weight: UnsafeMutablePointer<Float>!
    private var bias: UnsafeMutablePointer<Float>!
    private var gradWeight: UnsafeMutablePointer<Float>!
    private var gradBias: UnsafeMutablePointer<Float>!
    // The R-operator's direction (V_W, V_b) and product slices.
    private var directionWeight: UnsafePointer<Float>!
    private var directionBias: UnsafePointer<Float>!
    private var productWeight: UnsafeMutablePointer<Float>!
    private var productBias: UnsafeMutablePointer<Float>!

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

    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        directionWeight = direction
        directionBias = direction + outFeatures * inFeatures
        productWeight = product
        productBias = product + outFeatures * inFeatures
    }

    /// R{y} = R{x}·Wᵀ + x·V_Wᵀ + V_b.
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        emc_add_bias(rOutput, directionBias, batch, outFeatures)
        BLAS.sgemm(.none, .transpose, m: batch, n: outFeatures, k: inFeatures, alpha: 1, a: input, lda: inFeatures,
                   b: directionWeight, ldb: inFeatures, beta: 1, c: rOutput, ldc: outFeatures)
        if let rInput {
            BLAS.sgemm(.none, .transpose, m: batch, n: outFeatures, k: inFeatures, alpha: 1, a: rInput, lda: inFeatures,
                       b: weight, ldb: inFeatures, beta: 1, c: rOutput, ldc: outFeatures)
        }
    }

    /// R{dW} += R{dy}ᵀ·x + dyᵀ·R{x},  R{db} += Σ_B R{dy},  R{dx} = R{dy}·W + dy·V_W.
    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        BLAS.sgemm(.transpose, .none, m: outFeatures, n: inFeatures, k: batch, alpha: 1, a: rGradOutput, lda: outFeatures,
                   b: input, ldb: inFeatures, beta: 1, c: productWeight, ldc: inFeatures)
        if let rInput {
            BLAS.sgemm(.transpose, .none, m: outFeatures, n: inFeatures, k: batch, alpha: 1, a: gradOutput, lda: outFeatures,
                       b: rInput, ldb: inFeatures, beta: 1, c: productWeight, ldc: inFeatures)
        }
        emc_sum_rows(productBias, rGradOutput, batch, outFeatures)
        if let rGradInput {
            BLAS.sgemm(.none, .none, m: batch, n: inFeatures, k: outFeatures, alpha: 1, a: rGradOutput, lda: outFeatures,
                       b: weight, ldb: inFeatures, beta: 0, c: rGradInput, ldc: inFeatures)
            BLAS.sgemm(.none, .none, m: batch, n: inFeatures, k: outFeatures, alpha: 1, a: gradOutput, lda: outFeatures,
                       b: directionWeight, ldb: inFeatures, beta: 1, c: rGradInput, ldc: inFeatures)
        }
    }
}
