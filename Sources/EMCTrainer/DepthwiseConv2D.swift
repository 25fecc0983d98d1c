import EMCCore
import CTrainerKernels

/// Depthwise 2-D convolution over NHWC samples, as PyTorch's `nn.Conv2d(C, C, K, stride: S, padding: P, groups: C)`:
/// each channel is convolved with its own K×K filter (the MBConv blocks of EfficientNet).
///
/// Shapes: x [B, H, W, C], W [C, K, K] (PyTorch's [C, 1, K, K]), b [C], y [B, Ho, Wo, C] with Ho = (H + 2P − K) / S + 1.
///   y[b, o, c]  = b[c] + Σ_k W[c, k] · x[b, i(o, k), c]          (i(o, k): the input pixel under tap k of output pixel o)
///   dW[c, k]   += Σ_{b, o} dy[b, o, c] · x[b, i(o, k), c],  db[c] += Σ dy[·, ·, c]
///   dx[b, i, c] = Σ_{o, k: i(o, k) = i} dy[b, o, c] · W[c, k]
/// The loops (Sources/CTrainerKernels/depthwise.c) run over channels innermost, where NHWC keeps them contiguous, with
/// the filters transposed to tap-major [K·K, C] at each call.
public final class DepthwiseConv2D: Layer {
    public let name = "dwconv"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let kernel: Int, stride: Int, padding: Int
    public var channels: Int { inputShape.channels }
    public let hasBias: Bool
    private var parameters: WeightAndBias!
    private var gradients: WeightAndBias!
    private var direction: WeightAndBias!
    private var product: WeightAndBias!
    /// The filters and a gradient in the kernels' tap-major layout [K·K, C].
    private var tapMajorFilters = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var tapMajorGradient = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    /// Samples per micro-batch of the filter gradient's sums (`MicroBatchSums`, split over a team by samples), or nil:
    /// each filter tap's sum over the whole batch in order (split over a team by channels or taps). A batch of one
    /// micro-batch takes the whole-batch path: the same sums.
    public let microBatch: Int?
    private var partials = MicroBatchSums<Float>()

    public init(input: FeatureShape, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true, microBatch: Int? = nil) {
        precondition(microBatch.map { $0 > 0 } ?? true, "a micro-batch holds at least one sample")
        self.microBatch = microBatch
        inputShape = input
        hasBias = bias
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        let ho = (input.height + 2 * padding - kernel) / stride + 1
        let wo = (input.width + 2 * padding - kernel) / stride + 1
        outputShape = FeatureShape(height: max(0, ho), width: max(0, wo), channels: input.channels)
    }

    /// PyTorch's fan-in of a grouped convolution: K·K·(C / groups) = K·K.
    public var parameterTensors: [(count: Int, fanIn: Int)] {
        [(channels * kernel * kernel, kernel * kernel)] + (hasBias ? [(channels, kernel * kernel)] : [])
    }
    public var matrixShapes: [(rows: Int, cols: Int)?] { [(channels, kernel * kernel)] + (hasBias ? [nil] : []) }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.parameters = WeightAndBias(parameters, weights: channels * kernel * kernel)
        self.gradients = WeightAndBias(gradients, weights: channels * kernel * kernel)
        for buffer in [tapMajorFilters, tapMajorGradient] { buffer.deallocate() }
        tapMajorFilters = .allocate(capacity: channels * kernel * kernel)
        tapMajorGradient = .allocate(capacity: channels * kernel * kernel)
    }

    deinit {
        for buffer in [tapMajorFilters, tapMajorGradient] { buffer.deallocate() }
        partials.deallocate()
    }

    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.direction = WeightAndBias(direction, weights: channels * kernel * kernel)
        self.product = WeightAndBias(product, weights: channels * kernel * kernel)
    }

    /// `filters` [C, K·K] into `tapMajor` [K·K, C], the kernels' layout.
    private func tapMajor(_ filters: UnsafePointer<Float>) -> UnsafePointer<Float> {
        let c = channels, taps = kernel * kernel, t = tapMajorFilters.baseAddress!
        for ch in 0..<c { for tap in 0..<taps { t[tap * c + ch] = filters[ch * taps + tap] } }
        return UnsafePointer(t)
    }

    private var shapeArguments: (Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32) {
        (Int32(inputShape.height), Int32(inputShape.width), Int32(channels), Int32(kernel), Int32(stride), Int32(padding),
         Int32(outputShape.height), Int32(outputShape.width))
    }

    /// out += conv(x, filters) (no bias).
    private func convolve(_ x: UnsafePointer<Float>, _ filters: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int) {
        let (h, w, c, k, s, p, ho, wo) = shapeArguments
        let taps = tapMajor(filters), inCount = inputShape.count, outCount = outputShape.count
        // Image by image over the team.
        Parallel.samples(batch, perSample: outCount * kernel * kernel) { images, _ in
            emc_depthwise_forward(out + images.lowerBound * outCount, x + images.lowerBound * inCount, taps, Int32(images.count),
                                  h, w, c, k, s, p, ho, wo)
        }
    }

    /// dFilters += Σ dy · x over every tap (accumulated tap-major, in place of dFilters' own order).
    private func filterGradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, into dFilters: UnsafeMutablePointer<Float>, batch: Int) {
        let (h, w, c, k, s, p, ho, wo) = shapeArguments
        let channels = channels, taps = kernel * kernel, t = tapMajorGradient.baseAddress!
        for ch in 0..<channels { for tap in 0..<taps { t[tap * channels + ch] = dFilters[ch * taps + tap] } }
        if let samples = microBatch, batch > samples {
            let inCount = inputShape.count, outCount = outputShape.count
            let total = partials.sum(batch: batch, samples: samples, width: taps * channels, perSample: outCount * taps) { partial, images in
                emc_depthwise_filter_gradient(partial, dy + images.lowerBound * outCount, x + images.lowerBound * inCount,
                                              Int32(images.count), h, w, c, k, s, p, ho, wo)
            }
            for i in 0..<(taps * channels) { t[i] += total[i] }
        } else if Parallel.threads > 1 && channels >= 64 && batch * outputShape.count * taps >= 2 * Parallel.minimumElements {
            // Channels over the team, at least 32 a thread (each thread walks every position): each channel's sums over
            // the batch whole and in order.
            Parallel.ranges(channels, grain: 8, minimum: 32) { chosen, _ in
                emc_depthwise_filter_gradient_range(t, dy, x, Int32(batch), h, w, c, k, s, p, ho, wo,
                                                    Int32(chosen.lowerBound), Int32(chosen.upperBound))
            }
        } else if Parallel.threads > 1 && batch * outputShape.count * taps >= 2 * Parallel.minimumElements {
            // Fewer channels: taps over the team (each thread walks every position for its taps), each tap's sums whole
            // and in order.
            Parallel.ranges(taps) { chosen, _ in
                emc_depthwise_filter_gradient_taps(t, dy, x, Int32(batch), h, w, c, k, s, p, ho, wo, Int32(chosen.lowerBound),
                                                   Int32(chosen.upperBound))
            }
        } else {
            emc_depthwise_filter_gradient(t, dy, x, Int32(batch), h, w, c, k, s, p, ho, wo)
        }
        for ch in 0..<channels { for tap in 0..<taps { dFilters[ch * taps + tap] = t[tap * channels + ch] } }
    }

    /// dx += the adjoint of `convolve`.
    private func inputGradient(_ dy: UnsafePointer<Float>, _ filters: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, batch: Int) {
        let (h, w, c, k, s, p, ho, wo) = shapeArguments
        let taps = tapMajor(filters), inCount = inputShape.count, outCount = outputShape.count
        Parallel.samples(batch, perSample: outCount * kernel * kernel) { images, _ in
            emc_depthwise_input_gradient(dx + images.lowerBound * inCount, dy + images.lowerBound * outCount, taps, Int32(images.count),
                                         h, w, c, k, s, p, ho, wo)
        }
    }

    private func sumChannels(_ dy: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int) {
        guard hasBias else { return }
        Parallel.sumRows(out, dy, rows: batch * outputShape.height * outputShape.width, columns: channels)
    }

    /// Every output pixel's channels set to the bias (zero without one).
    private func fillBias(_ out: UnsafeMutablePointer<Float>, _ values: UnsafePointer<Float>, batch: Int) {
        guard hasBias else { Parallel.zero(out, count: batch * outputShape.count); return }
        Parallel.addBias(out, values, rows: batch * outputShape.height * outputShape.width, columns: channels)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        fillBias(output, parameters.bias, batch: batch)
        convolve(input, parameters.weight, into: output, batch: batch)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        filterGradient(gradOutput, input, into: gradients.weight, batch: batch)
        sumChannels(gradOutput, into: gradients.bias, batch: batch)
        guard let gradInput else { return }
        Parallel.zero(gradInput, count: batch * inputShape.count)
        inputGradient(gradOutput, parameters.weight, into: gradInput, batch: batch)
    }

    /// R{y} = conv(R{x}, W) + conv(x, V_W) + V_b.
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        fillBias(rOutput, direction.bias, batch: batch)
        convolve(input, direction.weight, into: rOutput, batch: batch)
        if let rInput { convolve(rInput, parameters.weight, into: rOutput, batch: batch) }
    }

    /// R{dW} += Σ R{dy}·x + dy·R{x},  R{db} += Σ R{dy},  R{dx} = adjoint(R{dy}, W) + adjoint(dy, V_W).
    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        filterGradient(rGradOutput, input, into: product.weight, batch: batch)
        if let rInput { filterGradient(gradOutput, rInput, into: product.weight, batch: batch) }
        sumChannels(rGradOutput, into: product.bias, batch: batch)
        guard let rGradInput else { return }
        rGradInput.update(repeating: 0, count: batch * inputShape.count)
        inputGradient(rGradOutput, parameters.weight, into: rGradInput, batch: batch)
        inputGradient(gradOutput, direction.weight, into: rGradInput, batch: batch)
    }
}
