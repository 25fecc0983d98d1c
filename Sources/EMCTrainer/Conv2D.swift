import EMCCore
import CTrainerKernels

/// 2-D convolution over NHWC samples, as PyTorch's `nn.Conv2d` (cross-correlation, zero padding).
///
/// Shapes: x [B, H, W, Cin], W [Cout, K, K, Cin], b [Cout], y [B, Ho, Wo, Cout] with
/// Ho = (H + 2P − K) / S + 1. Each output pixel's K×K×Cin patch is copied into a row (im2row), so
///   rows [B·Ho·Wo, K·K·Cin],  y = rows · Wᵀ + b        (one sgemm for the whole batch)
///   dW += dyᵀ · rows,  db += Σ dy,  drows = dy · W,  dx = row2im(drows) (scatter-add)
/// In NHWC the patch's Cin values are contiguous, so im2row copies runs of Cin floats.
public final class Conv2D: Layer {
    public let name = "conv"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let kernel: Int, stride: Int, padding: Int
    public let inChannels: Int, outChannels: Int
    var patch: Int { kernel * kernel * inChannels }
    private var weight: UnsafeMutablePointer<Float>!
    private var bias: UnsafeMutablePointer<Float>!
    private var gradWeight: UnsafeMutablePointer<Float>!
    private var gradBias: UnsafeMutablePointer<Float>!
    private var rows: UnsafeMutableBufferPointer<Float>
    private var gradRows: UnsafeMutableBufferPointer<Float>
    // The R-operator's direction and product slices, and R{rows} (allocated by `bindDirection` only).
    private var directionWeight: UnsafePointer<Float>!
    private var directionBias: UnsafePointer<Float>!
    private var productWeight: UnsafeMutablePointer<Float>!
    private var productBias: UnsafeMutablePointer<Float>!
    private var rRows = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    public init(input: FeatureShape, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        inputShape = input
        inChannels = input.channels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        let ho = (input.height + 2 * padding - kernel) / stride + 1
        let wo = (input.width + 2 * padding - kernel) / stride + 1
        outputShape = FeatureShape(height: max(0, ho), width: max(0, wo), channels: outChannels)
        rows = UnsafeMutableBufferPointer(start: nil, count: 0)
        gradRows = UnsafeMutableBufferPointer(start: nil, count: 0)
    }

    deinit {
        rows.deallocate()
        gradRows.deallocate()
        rRows.deallocate()
    }

    public var parameterTensors: [(count: Int, fanIn: Int)] { [(outChannels * patch, patch), (outChannels, patch)] }
    public var matrixShapes: [(rows: Int, cols: Int)?] { [(outChannels, patch), nil] }

    public func workspaceBytes(maxBatch: Int) -> Int? {
        checkedProduct([2, 4, maxBatch, outputShape.height, outputShape.width, patch])  // rows and their gradient
    }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        weight = parameters
        bias = parameters + outChannels * patch
        gradWeight = gradients
        gradBias = gradients + outChannels * patch
        let size = maxBatch * outputShape.height * outputShape.width * patch
        rows.deallocate()
        gradRows.deallocate()
        rows = .allocate(capacity: size)
        gradRows = .allocate(capacity: size)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        im2row(input, batch: batch)
        let pixels = batch * outputShape.height * outputShape.width
        emc_add_bias(output, bias, pixels, outChannels)
        BLAS.sgemm(.none, .transpose, m: pixels, n: outChannels, k: patch, alpha: 1, a: rows.baseAddress!, lda: patch,
                   b: weight, ldb: patch, beta: 1, c: output, ldc: outChannels)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let pixels = batch * outputShape.height * outputShape.width
        // rows still hold this batch's patches from forward.
        BLAS.sgemm(.transpose, .none, m: outChannels, n: patch, k: pixels, alpha: 1, a: gradOutput, lda: outChannels,
                   b: rows.baseAddress!, ldb: patch, beta: 1, c: gradWeight, ldc: patch)
        emc_sum_rows(gradBias, gradOutput, pixels, outChannels)
        guard let gradInput else { return }
        BLAS.sgemm(.none, .none, m: pixels, n: patch, k: outChannels, alpha: 1, a: gradOutput, lda: outChannels,
                   b: weight, ldb: patch, beta: 0, c: gradRows.baseAddress!, ldc: patch)
        row2im(gradInput, batch: batch)
    }

    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        directionWeight = direction
        directionBias = direction + outChannels * patch
        productWeight = product
        productBias = product + outChannels * patch
        rRows.deallocate()
        rRows = .allocate(capacity: maxBatch * outputShape.height * outputShape.width * patch)
    }

    /// R{rows} = im2row(R{x});  R{y} = R{rows}·Wᵀ + rows·V_Wᵀ + V_b.
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        let pixels = batch * outputShape.height * outputShape.width
        emc_add_bias(rOutput, directionBias, pixels, outChannels)
        BLAS.sgemm(.none, .transpose, m: pixels, n: outChannels, k: patch, alpha: 1, a: rows.baseAddress!, lda: patch,
                   b: directionWeight, ldb: patch, beta: 1, c: rOutput, ldc: outChannels)
        guard let rInput else { return }
        emc_im2row(rRows.baseAddress!, rInput, Int32(batch), Int32(inputShape.height), Int32(inputShape.width), Int32(inChannels),
                   Int32(kernel), Int32(stride), Int32(padding), Int32(outputShape.height), Int32(outputShape.width))
        BLAS.sgemm(.none, .transpose, m: pixels, n: outChannels, k: patch, alpha: 1, a: rRows.baseAddress!, lda: patch,
                   b: weight, ldb: patch, beta: 1, c: rOutput, ldc: outChannels)
    }

    /// R{dW} += R{dy}ᵀ·rows + dyᵀ·R{rows},  R{db} += Σ R{dy},  R{dx} = row2im(R{dy}·W + dy·V_W).
    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let pixels = batch * outputShape.height * outputShape.width
        BLAS.sgemm(.transpose, .none, m: outChannels, n: patch, k: pixels, alpha: 1, a: rGradOutput, lda: outChannels,
                   b: rows.baseAddress!, ldb: patch, beta: 1, c: productWeight, ldc: patch)
        if rInput != nil {
            BLAS.sgemm(.transpose, .none, m: outChannels, n: patch, k: pixels, alpha: 1, a: gradOutput, lda: outChannels,
                       b: rRows.baseAddress!, ldb: patch, beta: 1, c: productWeight, ldc: patch)
        }
        emc_sum_rows(productBias, rGradOutput, pixels, outChannels)
        guard let rGradInput else { return }
        BLAS.sgemm(.none, .none, m: pixels, n: patch, k: outChannels, alpha: 1, a: rGradOutput, lda: outChannels,
                   b: weight, ldb: patch, beta: 0, c: gradRows.baseAddress!, ldc: patch)
        BLAS.sgemm(.none, .none, m: pixels, n: patch, k: outChannels, alpha: 1, a: gradOutput, lda: outChannels,
                   b: directionWeight, ldb: patch, beta: 1, c: gradRows.baseAddress!, ldc: patch)
        row2im(rGradInput, batch: batch)
    }

    /// rows[(b, oy, ox), (ky, kx, c)] = x[b, oy·S − P + ky, ox·S − P + kx, c], zero outside the image.
    private func im2row(_ input: UnsafePointer<Float>, batch: Int) {
        emc_im2row(rows.baseAddress!, input, Int32(batch), Int32(inputShape.height), Int32(inputShape.width), Int32(inChannels),
                   Int32(kernel), Int32(stride), Int32(padding), Int32(outputShape.height), Int32(outputShape.width))
    }

    /// The adjoint of im2row: dx[b, iy, ix, c] = Σ over patches that copied it of drows.
    private func row2im(_ gradInput: UnsafeMutablePointer<Float>, batch: Int) {
        emc_row2im(gradInput, gradRows.baseAddress!, Int32(batch), Int32(inputShape.height), Int32(inputShape.width), Int32(inChannels),
                   Int32(kernel), Int32(stride), Int32(padding), Int32(outputShape.height), Int32(outputShape.width))
    }
}
