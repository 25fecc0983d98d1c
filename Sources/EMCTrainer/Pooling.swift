import EMCCore
import CTrainerKernels

/// Max pooling over K×K windows with stride S (no padding), as `nn.MaxPool2d(K, S)`: floor division,
/// ties go to the first maximum. Forward records each output's source index for backward.
public final class MaxPool2D: Layer {
    public let name = "maxpool"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let kernel: Int, stride: Int
    private var argmax: UnsafeMutableBufferPointer<Int32>

    public init(input: FeatureShape, kernel: Int = 2, stride: Int? = nil) {
        inputShape = input
        self.kernel = kernel
        self.stride = stride ?? kernel
        outputShape = FeatureShape(height: (input.height - kernel) / self.stride + 1, width: (input.width - kernel) / self.stride + 1,
                                   channels: input.channels)
        argmax = UnsafeMutableBufferPointer(start: nil, count: 0)
    }

    deinit { argmax.deallocate() }

    public func workspaceBytes(maxBatch: Int) -> Int? { checkedProduct([4, maxBatch, outputShape.count]) }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        argmax.deallocate()
        argmax = .allocate(capacity: maxBatch * outputShape.count)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let argmax = argmax.baseAddress!, inCount = inputShape.count, outCount = outputShape.count
        Parallel.samples(batch, perSample: inCount) { images, _ in
            let first = images.lowerBound
            emc_maxpool_forward(output + first * outCount, argmax + first * outCount, input + first * inCount, Int32(images.count),
                                Int32(inputShape.height), Int32(inputShape.width), Int32(inputShape.channels), Int32(kernel), Int32(stride),
                                Int32(outputShape.height), Int32(outputShape.width))
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let gradInput else { return }
        let argmax = argmax.baseAddress!, inCount = inputShape.count, outCount = outputShape.count
        Parallel.samples(batch, perSample: inCount) { images, _ in
            let first = images.lowerBound
            emc_maxpool_backward_windows(gradInput + first * inCount, argmax + first * outCount, gradOutput + first * outCount,
                                         Int32(images.count), Int32(inputShape.height), Int32(inputShape.width), Int32(inputShape.channels),
                                         Int32(kernel), Int32(stride), Int32(outputShape.height), Int32(outputShape.width))
        }
    }

    /// Piecewise linear: R{y} takes R{x} at forward's argmax, and R{dx} routes R{dy} back to it.
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        let inCount = inputShape.count, outCount = outputShape.count
        for b in 0..<batch {
            let a = argmax.baseAddress! + b * outCount, r = rOutput + b * outCount
            if let rInput {
                let x = rInput + b * inCount
                for j in 0..<outCount { r[j] = x[Int(a[j])] }
            } else {
                r.update(repeating: 0, count: outCount)
            }
        }
    }

    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        backward(input: input, output: output, gradOutput: rGradOutput, gradInput: rGradInput, batch: batch)
    }
}

/// Average pooling over K×K windows with stride S, as `nn.AvgPool2d(K, S)`.
public final class AvgPool2D: LinearParameterFreeLayer {
    public let name = "avgpool"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let kernel: Int, stride: Int

    public init(input: FeatureShape, kernel: Int = 2, stride: Int? = nil) {
        inputShape = input
        self.kernel = kernel
        self.stride = stride ?? kernel
        outputShape = FeatureShape(height: (input.height - kernel) / self.stride + 1, width: (input.width - kernel) / self.stride + 1,
                                   channels: input.channels)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let h = inputShape.height, w = inputShape.width, c = inputShape.channels
        let scale = 1 / Float(kernel * kernel)
        var o = 0
        for b in 0..<batch {
            for oy in 0..<outputShape.height {
                for ox in 0..<outputShape.width {
                    for ch in 0..<c {
                        var sum: Float = 0
                        for ky in 0..<kernel { for kx in 0..<kernel { sum += input[((b * h + oy * stride + ky) * w + ox * stride + kx) * c + ch] } }
                        output[o] = sum * scale
                        o += 1
                    }
                }
            }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let gradInput else { return }
        let h = inputShape.height, w = inputShape.width, c = inputShape.channels
        let scale = 1 / Float(kernel * kernel)
        gradInput.update(repeating: 0, count: batch * inputShape.count)
        var o = 0
        for b in 0..<batch {
            for oy in 0..<outputShape.height {
                for ox in 0..<outputShape.width {
                    for ch in 0..<c {
                        let g = gradOutput[o] * scale
                        for ky in 0..<kernel { for kx in 0..<kernel { gradInput[((b * h + oy * stride + ky) * w + ox * stride + kx) * c + ch] += g } }
                        o += 1
                    }
                }
            }
        }
    }
}

/// Mean over all positions of each channel: [B, H, W, C] → [B, C], as `nn.AdaptiveAvgPool2d(1)` + flatten.
public final class GlobalAvgPool: LinearParameterFreeLayer {
    public let name = "globalavgpool"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape

    public init(input: FeatureShape) {
        inputShape = input
        outputShape = .vector(input.channels)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let positions = inputShape.height * inputShape.width, c = inputShape.channels
        let scale = 1 / Float(positions)
        // Sample by sample over the team: each sample's sums are its own.
        Parallel.samples(batch, perSample: inputShape.count) { samples, _ in
            for b in samples {
                let out = output + b * c
                out.update(repeating: 0, count: c)
                for p in 0..<positions { let row = input + (b * positions + p) * c; for ch in 0..<c { out[ch] += row[ch] } }
                for ch in 0..<c { out[ch] *= scale }
            }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let gradInput else { return }
        let positions = inputShape.height * inputShape.width, c = inputShape.channels
        let scale = 1 / Float(positions)
        Parallel.samples(batch, perSample: inputShape.count) { samples, _ in
            for b in samples {
                for p in 0..<positions {
                    let row = gradInput + (b * positions + p) * c
                    for ch in 0..<c { row[ch] = gradOutput[b * c + ch] * scale }
                }
            }
        }
    }
}

/// Reinterprets [B, H, W, C] as [B, H·W·C]: no data moves.
public final class Flatten: LinearParameterFreeLayer {
    public let name = "flatten"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape

    public init(input: FeatureShape) {
        inputShape = input
        outputShape = .vector(input.count)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        output.update(from: input, count: batch * inputShape.count)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        gradInput?.update(from: gradOutput, count: batch * inputShape.count)
    }
}
