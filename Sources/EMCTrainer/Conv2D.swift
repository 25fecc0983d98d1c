import EMCCore
import CTrainerKernels

/// 2-D convolution over NHWC samples, as PyTorch's `nn.Conv2d` (cross-correlation, zero padding).
///
/// Shapes: x [B, H, W, Cin], W [Cout, K, K, Cin], b [Cout], y [B, Ho, Wo, Cout] with
/// Ho = (H + 2P − K) / S + 1. Each output pixel's K×K×Cin patch is copied into a row (im2row), so
///   rows [B·Ho·Wo, K·K·Cin],  y = rows · Wᵀ + b        (one sgemm for the whole batch)
///   dW += dyᵀ · rows,  db += Σ dy,  drows = dy · W,  dx = row2im(drows) (scatter-add)
/// In NHWC the patch's Cin values are contiguous, so im2row copies runs of Cin floats. The R-operator is the same
/// products on (rows, R{rows}) and (W, V_W): see `rForward` and `rBackward`.
public final class Conv2D: Layer {
    public let name = "conv"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let kernel: Int, stride: Int, padding: Int
    public let inChannels: Int, outChannels: Int
    public let hasBias: Bool
    var patch: Int { kernel * kernel * inChannels }
    private var parameters: WeightAndBias!
    private var gradients: WeightAndBias!
    private var rows: UnsafeMutableBufferPointer<Float>
    private var gradRows: UnsafeMutableBufferPointer<Float>
    // The R-operator's direction and product slices, and R{rows} (allocated by `bindDirection` only).
    private var direction: WeightAndBias!
    private var product: WeightAndBias!
    private var rRows = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    public init(input: FeatureShape, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        inputShape = input
        hasBias = bias
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

    public var parameterTensors: [(count: Int, fanIn: Int)] { [(outChannels * patch, patch)] + (hasBias ? [(outChannels, patch)] : []) }
    public var matrixShapes: [(rows: Int, cols: Int)?] { [(outChannels, patch)] + (hasBias ? [nil] : []) }

    public func workspaceBytes(maxBatch: Int) -> Int? {
        checkedProduct([2, 4, maxBatch, outputShape.height, outputShape.width, patch])  // rows and their gradient
    }

    private func rowCount(_ maxBatch: Int) -> Int { maxBatch * outputShape.height * outputShape.width * patch }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.parameters = WeightAndBias(parameters, weights: outChannels * patch)
        self.gradients = WeightAndBias(gradients, weights: outChannels * patch)
        rows.deallocate()
        gradRows.deallocate()
        rows = .allocate(capacity: rowCount(maxBatch))
        gradRows = .allocate(capacity: rowCount(maxBatch))
    }

    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.direction = WeightAndBias(direction, weights: outChannels * patch)
        self.product = WeightAndBias(product, weights: outChannels * patch)
        rRows.deallocate()
        rRows = .allocate(capacity: rowCount(maxBatch))
    }

    private func pixels(_ batch: Int) -> Int { batch * outputShape.height * outputShape.width }

    /// out = rows · Wᵀ (beta 0) or out += rows · Wᵀ (beta 1).
    private func addProduct(_ rows: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, beta: Float = 1, batch: Int) {
        BLAS.sgemm(.none, .transpose, m: pixels(batch), n: outChannels, k: patch, alpha: 1, a: rows, lda: patch,
                   b: weight, ldb: patch, beta: beta, c: out, ldc: outChannels)
    }

    /// dW += dyᵀ · rows.
    private func addWeightGradient(_ dy: UnsafePointer<Float>, _ rows: UnsafePointer<Float>, into dW: UnsafeMutablePointer<Float>, batch: Int) {
        BLAS.accumulateTransposedProduct(m: outChannels, n: patch, k: pixels(batch), a: dy, lda: outChannels,
                                         b: rows, ldb: patch, c: dW, ldc: patch)
    }

    /// gradRows = dy · W (beta 0) or gradRows += dy · W (beta 1).
    private func rowGradient(_ dy: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, beta: Float, batch: Int) {
        BLAS.sgemm(.none, .none, m: pixels(batch), n: patch, k: outChannels, alpha: 1, a: dy, lda: outChannels,
                   b: weight, ldb: patch, beta: beta, c: gradRows.baseAddress!, ldc: patch)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        im2row(input, into: rows.baseAddress!, batch: batch)
        if hasBias { emc_add_bias(output, parameters.bias, pixels(batch), outChannels) }
        addProduct(rows.baseAddress!, parameters.weight, into: output, beta: hasBias ? 1 : 0, batch: batch)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        // rows still hold this batch's patches from forward.
        addWeightGradient(gradOutput, rows.baseAddress!, into: gradients.weight, batch: batch)
        if hasBias { emc_sum_rows(gradients.bias, gradOutput, pixels(batch), outChannels) }
        guard let gradInput else { return }
        rowGradient(gradOutput, parameters.weight, beta: 0, batch: batch)
        row2im(gradInput, batch: batch)
    }

    /// R{rows} = im2row(R{x});  R{y} = R{rows}·Wᵀ + rows·V_Wᵀ + V_b.
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        if hasBias { emc_add_bias(rOutput, direction.bias, pixels(batch), outChannels) }
        addProduct(rows.baseAddress!, direction.weight, into: rOutput, beta: hasBias ? 1 : 0, batch: batch)
        guard let rInput else { return }
        im2row(rInput, into: rRows.baseAddress!, batch: batch)
        addProduct(rRows.baseAddress!, parameters.weight, into: rOutput, batch: batch)
    }

    /// R{dW} += R{dy}ᵀ·rows + dyᵀ·R{rows},  R{db} += Σ R{dy},  R{dx} = row2im(R{dy}·W + dy·V_W).
    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        addWeightGradient(rGradOutput, rows.baseAddress!, into: product.weight, batch: batch)
        if rInput != nil { addWeightGradient(gradOutput, rRows.baseAddress!, into: product.weight, batch: batch) }
        if hasBias { emc_sum_rows(product.bias, rGradOutput, pixels(batch), outChannels) }
        guard let rGradInput else { return }
        rowGradient(rGradOutput, parameters.weight, beta: 0, batch: batch)
        rowGradient(gradOutput, direction.weight, beta: 1, batch: batch)
        row2im(rGradInput, batch: batch)
    }

    /// rows[(b, oy, ox), (ky, kx, c)] = x[b, oy·S − P + ky, ox·S − P + kx, c], zero outside the image.
    private func im2row(_ input: UnsafePointer<Float>, into rows: UnsafeMutablePointer<Float>, batch: Int) {
        emc_im2row(rows, input, Int32(batch), Int32(inputShape.height), Int32(inputShape.width), Int32(inChannels),
                   Int32(kernel), Int32(stride), Int32(padding), Int32(outputShape.height), Int32(outputShape.width))
    }

    /// The adjoint of im2row: dx[b, iy, ix, c] = Σ over patches that copied it of gradRows.
    private func row2im(_ gradInput: UnsafeMutablePointer<Float>, batch: Int) {
        emc_row2im(gradInput, gradRows.baseAddress!, Int32(batch), Int32(inputShape.height), Int32(inputShape.width), Int32(inChannels),
                   Int32(kernel), Int32(stride), Int32(padding), Int32(outputShape.height), Int32(outputShape.width))
    }
}
