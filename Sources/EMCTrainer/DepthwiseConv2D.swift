import EMCCore

/// Depthwise 2-D convolution over NHWC samples, as PyTorch's `nn.Conv2d(C, C, K, stride: S, padding: P, groups: C)`:
/// each channel is convolved with its own K×K filter (the MBConv blocks of EfficientNet).
///
/// Shapes: x [B, H, W, C], W [C, K, K] (PyTorch's [C, 1, K, K]), b [C], y [B, Ho, Wo, C] with Ho = (H + 2P − K) / S + 1.
///   y[b, o, c]  = b[c] + Σ_k W[c, k] · x[b, i(o, k), c]          (i(o, k): the input pixel under tap k of output pixel o)
///   dW[c, k]   += Σ_{b, o} dy[b, o, c] · x[b, i(o, k), c],  db[c] += Σ dy[·, ·, c]
///   dx[b, i, c] = Σ_{o, k: i(o, k) = i} dy[b, o, c] · W[c, k]
/// The loops run over channels innermost, where NHWC keeps them contiguous.
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

    public init(input: FeatureShape, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) {
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
    }

    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.direction = WeightAndBias(direction, weights: channels * kernel * kernel)
        self.product = WeightAndBias(product, weights: channels * kernel * kernel)
    }

    /// Calls `body(outputPixel, inputPixel, tap)` for every tap that falls inside the image, sample by sample.
    @inline(__always)
    private func forEachTap(batch: Int, _ body: (Int, Int, Int) -> Void) {
        let h = inputShape.height, w = inputShape.width, ho = outputShape.height, wo = outputShape.width
        for b in 0..<batch {
            for oy in 0..<ho {
                for ox in 0..<wo {
                    let o = (b * ho + oy) * wo + ox
                    for ky in 0..<kernel {
                        let iy = oy * stride - padding + ky
                        guard iy >= 0 && iy < h else { continue }
                        for kx in 0..<kernel {
                            let ix = ox * stride - padding + kx
                            guard ix >= 0 && ix < w else { continue }
                            body(o, (b * h + iy) * w + ix, ky * kernel + kx)
                        }
                    }
                }
            }
        }
    }

    /// out += conv(x, filters) (no bias).
    private func convolve(_ x: UnsafePointer<Float>, _ filters: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int) {
        let c = channels, taps = kernel * kernel
        forEachTap(batch: batch) { o, i, t in
            let y = out + o * c, xi = x + i * c
            for ch in 0..<c { y[ch] += filters[ch * taps + t] * xi[ch] }
        }
    }

    /// dFilters += Σ dy · x over every tap, dBias += Σ dy.
    private func filterGradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, into dFilters: UnsafeMutablePointer<Float>, batch: Int) {
        let c = channels, taps = kernel * kernel
        forEachTap(batch: batch) { o, i, t in
            let g = dy + o * c, xi = x + i * c
            for ch in 0..<c { dFilters[ch * taps + t] += g[ch] * xi[ch] }
        }
    }

    /// dx += the adjoint of `convolve`.
    private func inputGradient(_ dy: UnsafePointer<Float>, _ filters: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, batch: Int) {
        let c = channels, taps = kernel * kernel
        forEachTap(batch: batch) { o, i, t in
            let g = dy + o * c, d = dx + i * c
            for ch in 0..<c { d[ch] += g[ch] * filters[ch * taps + t] }
        }
    }

    private func sumChannels(_ dy: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int) {
        let c = channels
        guard hasBias else { return }
        for p in 0..<(batch * outputShape.height * outputShape.width) { for ch in 0..<c { out[ch] += dy[p * c + ch] } }
    }

    /// Every output pixel's channels set to the bias (zero without one).
    private func fillBias(_ out: UnsafeMutablePointer<Float>, _ values: UnsafePointer<Float>, batch: Int) {
        let c = channels
        guard hasBias else { out.update(repeating: 0, count: batch * outputShape.count); return }
        for p in 0..<(batch * outputShape.height * outputShape.width) { (out + p * c).update(from: values, count: c) }
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
        gradInput.update(repeating: 0, count: batch * inputShape.count)
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
