import EMCCore
import CTrainerKernels
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// 2-D convolution over NHWC samples, as PyTorch's `nn.Conv2d` (cross-correlation, zero padding).
///
/// Shapes: x [B, H, W, Cin], W [Cout, K, K, Cin], b [Cout], y [B, Ho, Wo, Cout] with
/// Ho = (H + 2P − K) / S + 1. Each output pixel's K×K×Cin patch is copied into a row (im2row), so
///   rows [B·Ho·Wo, K·K·Cin],  y = rows · Wᵀ + b        (one sgemm for the whole batch)
///   dW += dyᵀ · rows,  db += Σ dy,  drows = dy · W,  dx = row2im(drows) (scatter-add)
/// In NHWC the patch's Cin values are contiguous, so im2row copies runs of Cin floats. The R-operator is the same
/// products on (rows, R{rows}) and (W, V_W): see `rForward` and `rBackward`.
///
/// A "same"-padded convolution with few channels (`usesDirect`) skips im2row in training: the input is copied once
/// into zero-padded images (read in place when there is no padding), whose patches are overlapping rows that
/// `emc_conv_direct_dense` (forward; at stride 1 also the input gradient, with the flipped kernel) and the tall kernel
/// (weight gradient) read in place. At 8–32 channels im2row's rows are 9× the input (2.25× at stride 2) and the layer
/// was bound by writing and reading them (docs/benchmarks.md, "Direct convolutions"). A strided layer's input gradient
/// is S² stride-1 convolutions of the output gradient, one per phase of the input positions (`emc_conv_transposed`).
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
    /// The direct path's buffers: the padded input, the padded output gradient, the weights as [ky][kx][ci][co] and
    /// flipped as [ky][kx][co][ci] (see `usesDirect`). Its outputs go straight into the dense output and input gradient.
    /// (`padded`, `paddedGradient` and `directScratch` hold one buffer per thread of the team the layer was bound under.)
    private var padded = PartScratch()
    private var paddedGradient = PartScratch()
    private var weightsByTap = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var flippedWeights = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    /// The kernel's packed weights for outputs of at most 8 channels (`emc_conv_direct_scratch`), forward or backward.
    private var directScratch = PartScratch()
    /// The weight gradient's runs (`emc_gemm_tall_runs`), element offsets of output row r = (b, oy) of the batch: in the
    /// dense output gradient r·Wo·Cout, in the padded input (b·Hp + S·oy)·Wp·Cin.
    private var outputRuns = UnsafeMutableBufferPointer<Int>(start: nil, count: 0)
    private var gridRuns = UnsafeMutableBufferPointer<Int>(start: nil, count: 0)
    private var scratchCount: Int {
        max(emc_conv_direct_scratch(Int32(outChannels), Int32(kernel), Int32(inChannels)),
            emc_conv_direct_scratch(Int32(inChannels), Int32(kernel), Int32(outChannels)),
            emc_conv_transposed_scratch(Int32(inChannels), Int32(kernel), Int32(outChannels)))
    }
    /// Whether training skips im2row (`emc_conv_direct_dense`): an odd kernel with "same" padding (any stride), a CPU
    /// with AVX2 or AVX-512, `prefersDirect`, and not turned off by `EMC_DIRECT_CONV=0`.
    public let usesDirect: Bool
    /// The channel counts where the direct path was faster than im2row on the layers of `emc bench conv`
    /// (docs/benchmarks.md): at most 64 channels, a first layer of 1–3 channels widening past 16 included (with passes
    /// of a few images the direct path is 1.2–1.7× faster there than im2row, and cnn:channels=32 trains 5–9% faster).
    public static func prefersDirect(inChannels: Int, outChannels: Int) -> Bool {
        max(inChannels, outChannels) <= 64
    }
    static let directEnabled: Bool = {
        if let value = getenv("EMC_DIRECT_CONV"), String(cString: value) == "0" { return false }
        return true
    }()

    /// `direct`: nil chooses by the rule of `usesDirect`; false keeps im2row; true takes the direct path wherever it
    /// applies, whatever the channel count (tests and `emc bench conv` compare the two).
    /// `passBytes`: see the property (tests set it small to split a batch into many passes).
    public init(input: FeatureShape, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
                direct: Bool? = nil, passBytes: Int = 128 << 10) {
        self.passBytes = passBytes
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
        let applies = BLAS.hardwareLevel > .generic && stride >= 1 && kernel % 2 == 1 && padding == (kernel - 1) / 2 && input.height > 0 && input.width > 0
        usesDirect = applies && (direct ?? (Self.directEnabled && Self.prefersDirect(inChannels: input.channels, outChannels: outChannels)))
    }

    deinit {
        rows.deallocate()
        gradRows.deallocate()
        rRows.deallocate()
        for buffer in [weightsByTap, flippedWeights] { buffer.deallocate() }
        for buffer in [padded, paddedGradient, directScratch] { buffer.deallocate() }
        outputRuns.deallocate()
        gridRuns.deallocate()
    }

    // The padded grid: images of (H + K − 1) × (W + K − 1) positions one after the other (the kernels read nothing
    // outside them).
    private var paddedHeight: Int { inputShape.height + kernel - 1 }
    private var paddedWidth: Int { inputShape.width + kernel - 1 }
    private func gridPositions(_ batch: Int) -> Int { batch * paddedHeight * paddedWidth }
    /// A strided layer's output-gradient grid (`emc_conv_transposed`): dy at offset ⌈K/S⌉ − 1, and zero rows and columns
    /// up to the furthest output row and column an input position reaches.
    private var transposedOffset: Int { (kernel + stride - 1) / stride - 1 }
    private var transposedHeight: Int {
        transposedOffset + max(outputShape.height, (inputShape.height - 1 + padding) / stride + 1)
    }
    private var transposedWidth: Int {
        transposedOffset + max(outputShape.width, (inputShape.width - 1 + padding) / stride + 1)
    }
    /// Floats per image of the output-gradient grid the input gradient reads: padded as the input at stride 1, by
    /// phases otherwise.
    private var gradientGridImage: Int {
        (stride == 1 ? paddedHeight * paddedWidth : transposedHeight * transposedWidth) * outChannels
    }
    /// Whether a strided layer's output gradient is its own grid (a 1×1 kernel: no offset, no extra rows or columns).
    private var gradientIsGrid: Bool {
        stride > 1 && transposedOffset == 0 && transposedHeight == outputShape.height && transposedWidth == outputShape.width
    }
    /// Images per pass of the direct path: the padded grids hold this many images, about `passBytes` (128 KiB), so that
    /// a pass writes them into the cache and reads them back from it (the whole batch's grids went out to memory and back:
    /// resnet:width=0.5 +12%).
    private var chunkImages: Int {
        let image = 4 * max(paddedHeight * paddedWidth * inChannels, gradientGridImage)
        return max(1, passBytes / max(1, image))
    }
    /// The direct path's bytes of padded grid per pass (`chunkImages`); the results do not depend on it.
    public let passBytes: Int
    /// The forward's geometry: the padded input to the output, at the layer's stride.
    private var gridShape: emc_grid_shape {
        emc_grid_shape(paddedHeight: paddedHeight, paddedWidth: paddedWidth, height: outputShape.height,
                       width: outputShape.width, stride: stride)
    }

    public var parameterTensors: [(count: Int, fanIn: Int)] { [(outChannels * patch, patch)] + (hasBias ? [(outChannels, patch)] : []) }
    public var matrixShapes: [(rows: Int, cols: Int)?] { [(outChannels, patch)] + (hasBias ? [nil] : []) }

    public func workspaceBytes(maxBatch: Int) -> Int? {
        // im2row's rows and their gradient. The direct path allocates them only when the R-operator is bound, but they are
        // counted anyway: `Model.hessianBytes` adds half of this for R{rows}, so the Hessian check's estimate stays true.
        guard let rows = checkedProduct([2, 4, maxBatch, outputShape.height, outputShape.width, patch]) else { return nil }
        guard usesDirect else { return rows }
        // Plus the padded input and output gradient, the kernels' packed weights and the weight gradient's runs.
        let images = min(maxBatch, chunkImages)
        guard let input = checkedProduct([4, gridPositions(images), inChannels]), let gradient = checkedProduct([4, images, gradientGridImage])
        else { return nil }
        let direct = Parallel.threads * (input + gradient + 4 * scratchCount) + 16 * maxBatch * outputShape.height
        let (sum, overflow) = rows.addingReportingOverflow(direct)
        return overflow ? nil : sum
    }

    private func rowCount(_ maxBatch: Int) -> Int { maxBatch * outputShape.height * outputShape.width * patch }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.parameters = WeightAndBias(parameters, weights: outChannels * patch)
        self.gradients = WeightAndBias(gradients, weights: outChannels * patch)
        rows.deallocate()
        gradRows.deallocate()
        for buffer in [weightsByTap, flippedWeights] { buffer.deallocate() }
        outputRuns.deallocate()
        gridRuns.deallocate()
        if usesDirect {
            // im2row's rows only if the R-operator is bound (`bindDirection`).
            rows = UnsafeMutableBufferPointer(start: nil, count: 0)
            gradRows = UnsafeMutableBufferPointer(start: nil, count: 0)
            let images = min(maxBatch, chunkImages)
            // Zeroed once: only the images' interiors are ever written, so the borders stay zero. Without padding the
            // input is read in place, and a 1×1 strided layer's output gradient too.
            padded.allocate(padding > 0 ? gridPositions(images) * inChannels : 0)
            paddedGradient.allocate(gradientIsGrid ? 0 : images * gradientGridImage)
            weightsByTap = .allocate(capacity: outChannels * patch)
            flippedWeights = .allocate(capacity: outChannels * patch)
            directScratch.allocate(max(1, scratchCount))
            let ho = outputShape.height
            outputRuns = .allocate(capacity: images * ho)
            gridRuns = .allocate(capacity: images * ho)
            for r in 0..<(images * ho) {
                outputRuns[r] = r * outputShape.width * outChannels
                gridRuns[r] = ((r / ho) * paddedHeight + stride * (r % ho)) * paddedWidth * inChannels
            }
        } else {
            rows = .allocate(capacity: rowCount(maxBatch))
            gradRows = .allocate(capacity: rowCount(maxBatch))
        }
    }

    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.direction = WeightAndBias(direction, weights: outChannels * patch)
        self.product = WeightAndBias(product, weights: outChannels * patch)
        rRows.deallocate()
        rRows = .allocate(capacity: rowCount(maxBatch))
        if usesDirect && rows.baseAddress == nil {
            rows = .allocate(capacity: rowCount(maxBatch))
            gradRows = .allocate(capacity: rowCount(maxBatch))
        }
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
        if usesDirect { directForward(input, output, batch: batch); return }
        im2row(input, into: rows.baseAddress!, batch: batch)
        if hasBias { Parallel.addBias(output, parameters.bias, rows: pixels(batch), columns: outChannels) }
        addProduct(rows.baseAddress!, parameters.weight, into: output, beta: hasBias ? 1 : 0, batch: batch)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        if usesDirect { directBackward(input: input, gradOutput: gradOutput, gradInput: gradInput, batch: batch); return }
        // rows still hold this batch's patches from forward.
        addWeightGradient(gradOutput, rows.baseAddress!, into: gradients.weight, batch: batch)
        if hasBias { Parallel.sumRows(gradients.bias, gradOutput, rows: pixels(batch), columns: outChannels) }
        guard let gradInput else { return }
        rowGradient(gradOutput, parameters.weight, beta: 0, batch: batch)
        row2im(gradInput, batch: batch)
    }

    /// R{rows} = im2row(R{x});  R{y} = R{rows}·Wᵀ + rows·V_Wᵀ + V_b.
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        // The direct path's forward wrote no rows; the R-operator works on them.
        if usesDirect { im2row(input, into: rows.baseAddress!, batch: batch) }
        if hasBias { Parallel.addBias(rOutput, direction.bias, rows: pixels(batch), columns: outChannels) }
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
        if hasBias { Parallel.sumRows(product.bias, rGradOutput, rows: pixels(batch), columns: outChannels) }
        guard let rGradInput else { return }
        rowGradient(rGradOutput, parameters.weight, beta: 0, batch: batch)
        rowGradient(gradOutput, direction.weight, beta: 1, batch: batch)
        row2im(rGradInput, batch: batch)
    }

    /// Copies `count`-channel images of h × w into grid images of gh × gw at offset (p, p), whose borders stay zero.
    private func pad(_ from: UnsafePointer<Float>, into to: UnsafeMutablePointer<Float>, channels count: Int, batch: Int,
                     height h: Int, width w: Int, gridHeight gh: Int, gridWidth gw: Int, offset p: Int) {
        for b in 0..<batch {
            for y in 0..<h {
                (to + ((b * gh + y + p) * gw + p) * count).update(from: from + ((b * h + y) * w) * count, count: w * count)
            }
        }
    }

    /// The input (or, at stride 1, the output gradient) into the interiors of the padded grid.
    private func pad(_ from: UnsafePointer<Float>, into to: UnsafeMutablePointer<Float>, channels count: Int, batch: Int) {
        pad(from, into: to, channels: count, batch: batch, height: inputShape.height, width: inputShape.width,
            gridHeight: paddedHeight, gridWidth: paddedWidth, offset: padding)
    }

    /// The padded input of `count` images from `first` on, the direct path reads: the input itself when there is no
    /// padding, else part `part`'s grid. Backward pads its pass's images again for the weight gradient: a copy that stays
    /// in the cache costs less than keeping the whole batch's grid, which is what sent it out to memory.
    private func paddedInput(_ input: UnsafePointer<Float>, first: Int, count: Int, part: Int) -> UnsafePointer<Float> {
        let images = input + first * inputShape.count
        if padding == 0 { return images }
        pad(images, into: padded[part], channels: inChannels, batch: count)
        return UnsafePointer(padded[part])
    }

    /// Calls `body(first, count)` for the images of `images` in passes of `chunkImages`.
    private func inPasses(_ images: Range<Int>, _ body: (Int, Int) -> Void) {
        let chunk = chunkImages
        for first in Swift.stride(from: images.lowerBound, to: images.upperBound, by: chunk) { body(first, min(chunk, images.upperBound - first)) }
    }

    /// Whether the direct path's weight gradient takes the pairs kernel and so splits by columns of the kernel rows
    /// (kernel × input channels of them) rather than by output channels.
    public var directGradientSplitsColumns: Bool {
        emc_conv_weight_gradient_pairs(BLAS.hardwareLevel.rawValue, Int32(outChannels), Int32(kernel), Int32(inChannels)) != 0
    }

    /// The direct path's parts split over images: at least `Parallel.minimumMultiplyAdds` of the forward's each.
    private var minimumImagesPerPart: Int { max(1, Parallel.minimumMultiplyAdds / max(1, outputShape.count * patch)) }

    private func directForward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let k = kernel, cin = inChannels, cout = outChannels, weight = parameters.weight, taps = weightsByTap.baseAddress!
        // W [co][ky][kx][ci] → [ky][kx][ci][co].
        for co in 0..<cout { for t in 0..<patch { taps[t * cout + co] = weight[co * patch + t] } }
        let grid = gridShape, bias = hasBias ? UnsafePointer(parameters.bias) : nil, scratch = directScratch
        // Image by image over the team: each output is computed from its own image alone.
        Parallel.ranges(batch, minimum: minimumImagesPerPart) { images, part in
            var grid = grid
            inPasses(images) { first, count in
                KernelLevel.ran(emc_conv_direct_dense(BLAS.hardwareLevel.rawValue, count, Int32(cout), Int32(k), Int32(cin), &grid,
                                                      paddedInput(input, first: first, count: count, part: part), taps,
                                                      output + first * outputShape.count, bias, scratch[part]), "emc_conv_direct_dense")
            }
        }
    }

    private func directBackward(input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>, gradInput: UnsafeMutablePointer<Float>?,
                                batch: Int) {
        let k = kernel, cin = inChannels, cout = outChannels, columns = k * cin, parts = Parallel.threads
        let byColumns = parts > 1 && directGradientSplitsColumns && columns >= parts
        // The bias's sums: where they take emc_sum_rows's general path (each channel's sum in row order), the weight
        // gradient's kernel adds them, in its pass over dy where it can (channels in lanes); 16-lane sums, and a weight
        // gradient split by columns (every part has every channel), sum apart.
        let biasInPass = hasBias && !Parallel.sumsInLanes(cout) && !byColumns
        if hasBias && !biasInPass { Parallel.sumRows(gradients.bias, gradOutput, rows: pixels(batch), columns: cout) }
        if gradInput != nil && stride == 1 {
            // dx = the padded dy convolved with the flipped kernel: w′[ky][kx][co][ci] = W[co][K−1−ky][K−1−kx][ci].
            let weight = parameters.weight, flipped = flippedWeights.baseAddress!
            for ky in 0..<k {
                for kx in 0..<k {
                    for co in 0..<cout {
                        for ci in 0..<cin {
                            flipped[((ky * k + kx) * cout + co) * cin + ci] = weight[co * patch + ((k - 1 - ky) * k + (k - 1 - kx)) * cin + ci]
                        }
                    }
                }
            }
        }
        guard parts > 1, batch >= 2 * minimumImagesPerPart else {
            // Pass by pass (the weight gradient's chains continue from pass to pass, so the bits do not depend on the
            // passes), the padded input made once per pass for the weight gradient.
            inPasses(0..<batch) { first, count in
                weightGradientPass(input, gradOutput, first: first, count: count, channels: 0..<cout, columns: 0..<columns,
                                   bias: biasInPass, part: 0)
                if let gradInput { inputGradientPass(gradOutput, gradInput, first: first, count: count, part: 0) }
            }
            return
        }
        // Over the team: each thread the weight gradient of its output channels (every image, in order: each chain whole)
        // and the input gradient of its images. Where the pairs kernel computes the weight gradient (up to 8 channels,
        // whose lanes share one vector, so fewer channels take as long), each thread takes columns of the kernel rows.
        Parallel.parts(parts) { part in
            let channels = byColumns ? 0..<cout : (cout * part / parts)..<(cout * (part + 1) / parts)
            let partColumns = byColumns ? (columns * part / parts)..<(columns * (part + 1) / parts) : 0..<columns
            if !channels.isEmpty {
                inPasses(0..<batch) { first, count in
                    weightGradientPass(input, gradOutput, first: first, count: count, channels: channels, columns: partColumns,
                                       bias: biasInPass, part: part)
                }
            }
            guard let gradInput else { return }
            inPasses((batch * part / parts)..<(batch * (part + 1) / parts)) { first, count in
                inputGradientPass(gradOutput, gradInput, first: first, count: count, part: part)
            }
        }
    }

    /// dW[co][ky][kx][ci] += Σ_q dy[q][co] · x[(S·oy + ky)·Wp·C + (S·ox + kx)·C + ci] over the outputs q = (oy, ox) of
    /// `count` images from `first` on, for the output channels `channels` and the columns kx·C + ci in `columns` of each
    /// kernel row: one output row at a time (dy read dense, x in the padded grid, S·C apart); with `bias`, also the bias's
    /// sums of those channels.
    private func weightGradientPass(_ input: UnsafePointer<Float>, _ gradOutput: UnsafePointer<Float>, first: Int, count: Int,
                                    channels: Range<Int>, columns: Range<Int>, bias: Bool, part: Int) {
        let dy = gradOutput + first * outputShape.count
        KernelLevel.ran(emc_conv_weight_gradient_columns(BLAS.hardwareLevel.rawValue, Int32(channels.count), Int32(kernel), Int32(inChannels),
                                                         Int32(columns.lowerBound), Int32(columns.upperBound),
                                                         count * outputShape.height, outputShape.width, dy + channels.lowerBound, outChannels,
                                                         outputRuns.baseAddress!, paddedInput(input, first: first, count: count, part: part),
                                                         stride * inChannels, gridRuns.baseAddress!, paddedWidth * inChannels,
                                                         gradients.weight + channels.lowerBound * patch,
                                                         bias ? gradients.bias + channels.lowerBound : nil), "emc_conv_weight_gradient")
    }

    /// The input gradient of `count` images from `first` on.
    private func inputGradientPass(_ gradOutput: UnsafePointer<Float>, _ gradInput: UnsafeMutablePointer<Float>, first: Int, count: Int,
                                   part: Int) {
        let k = kernel, cin = inChannels, cout = outChannels
        let dy = gradOutput + first * outputShape.count, dx = gradInput + first * inputShape.count
        if stride > 1 {
            // By phases (emc_conv_transposed): dy into its grid, then one stride-1 convolution per phase.
            let gh = transposedHeight, gw = transposedWidth
            if !gradientIsGrid {
                pad(dy, into: paddedGradient[part], channels: cout, batch: count, height: outputShape.height,
                    width: outputShape.width, gridHeight: gh, gridWidth: gw, offset: transposedOffset)
            }
            KernelLevel.ran(emc_conv_transposed(BLAS.hardwareLevel.rawValue, count, Int32(cin), Int32(k), Int32(cout), Int32(stride), Int32(padding),
                                                inputShape.height, inputShape.width, gradientIsGrid ? dy : UnsafePointer(paddedGradient[part]),
                                                gh, gw, parameters.weight, dx, directScratch[part]), "emc_conv_transposed")
            return
        }
        // dy into the padded grid, shifted by the padding: the input gradient's padded input.
        pad(dy, into: paddedGradient[part], channels: cout, batch: count)
        var grid = emc_grid_shape(paddedHeight: paddedHeight, paddedWidth: paddedWidth, height: inputShape.height,
                                  width: inputShape.width, stride: 1)
        KernelLevel.ran(emc_conv_direct_dense(BLAS.hardwareLevel.rawValue, count, Int32(cin), Int32(k), Int32(cout), &grid,
                                              paddedGradient[part], flippedWeights.baseAddress!, dx, nil, directScratch[part]), "emc_conv_direct_dense")
    }

    /// rows[(b, oy, ox), (ky, kx, c)] = x[b, oy·S − P + ky, ox·S − P + kx, c], zero outside the image.
    private func im2row(_ input: UnsafePointer<Float>, into rows: UnsafeMutablePointer<Float>, batch: Int) {
        let perImage = outputShape.height * outputShape.width * patch
        Parallel.samples(batch, perSample: perImage) { images, _ in
            emc_im2row(rows + images.lowerBound * perImage, input + images.lowerBound * inputShape.count, Int32(images.count),
                       Int32(inputShape.height), Int32(inputShape.width), Int32(inChannels),
                       Int32(kernel), Int32(stride), Int32(padding), Int32(outputShape.height), Int32(outputShape.width))
        }
    }

    /// The adjoint of im2row: dx[b, iy, ix, c] = Σ over patches that copied it of gradRows.
    private func row2im(_ gradInput: UnsafeMutablePointer<Float>, batch: Int) {
        let perImage = outputShape.height * outputShape.width * patch, gradRows = gradRows.baseAddress!
        Parallel.samples(batch, perSample: perImage) { images, _ in
            emc_row2im(gradInput + images.lowerBound * inputShape.count, gradRows + images.lowerBound * perImage, Int32(images.count),
                       Int32(inputShape.height), Int32(inputShape.width), Int32(inChannels),
                       Int32(kernel), Int32(stride), Int32(padding), Int32(outputShape.height), Int32(outputShape.width))
        }
    }
}
