import EMCCore

/// Batch normalisation over the channels of NHWC samples, as PyTorch's `nn.BatchNorm2d(C)` (eps 1e-5, momentum 0.1),
/// or `nn.BatchNorm1d` on vectors (H = W = 1).
///
/// Each channel is normalised over the m = B·H·W values of the batch: x̂ = (x − μ)/√(σ² + ε) with the biased σ², and
/// y = γ·x̂ + β. Training also updates the running estimates as PyTorch does: μ_run ← 0.9·μ_run + 0.1·μ and
/// σ²_run ← 0.9·σ²_run + 0.1·σ²·m/(m − 1). Backward (training):
///   dγ += Σ dy·x̂,  dβ += Σ dy,  dx = γ/√(σ² + ε) · (dy − mean(dy) − x̂·mean(dy·x̂))
/// In `evaluation` mode μ and σ² are fixed (the statistics collected over a whole set, else the running ones), so the
/// layer is a per-channel affine map and dx = dy·γ/√(σ² + ε). Its R-operator is written for that mode only, the mode
/// the Hessian check runs in (docs/methods.md).
public final class BatchNorm: Layer {
    public let name = "batchnorm"
    public let inputShape: FeatureShape
    public var outputShape: FeatureShape { inputShape }
    public let channels: Int
    public static let epsilon: Float = 1e-5
    public static let momentum: Double = 0.1
    public private(set) var mode: NormalizationMode = .training
    /// PyTorch's running estimates (mean 0, variance 1 at the start).
    public private(set) var runningMean: [Float]
    public private(set) var runningVariance: [Float]
    /// The statistics `evaluation` uses.
    public private(set) var fixedMean: [Float]
    public private(set) var fixedVariance: [Float]
    private var collectedSum: [Double], collectedSquares: [Double], collectedCount = 0
    private var parameters: UnsafeMutablePointer<Float>!
    private var gradients: UnsafeMutablePointer<Float>!
    private var direction: UnsafeMutablePointer<Float>!
    private var product: UnsafeMutablePointer<Float>!
    private var normalized = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    /// 1/√(σ² + ε) per channel, of the last forward.
    private var inverseStd: [Float]

    public init(input: FeatureShape) {
        inputShape = input
        channels = input.channels
        runningMean = Array(repeating: 0, count: channels)
        runningVariance = Array(repeating: 1, count: channels)
        fixedMean = runningMean
        fixedVariance = runningVariance
        collectedSum = Array(repeating: 0, count: channels)
        collectedSquares = collectedSum
        inverseStd = Array(repeating: 1, count: channels)
    }

    deinit { normalized.deallocate() }

    public var parameterTensors: [(count: Int, fanIn: Int)] { [(channels, 1), (channels, 1)] }
    public var initializers: [ParameterInit] { [.constant(1), .constant(0)] }
    public var usesBatchStatistics: Bool { true }

    public func workspaceBytes(maxBatch: Int) -> Int? { checkedProduct([4, maxBatch, inputShape.count]) }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.parameters = parameters
        self.gradients = gradients
        normalized.deallocate()
        normalized = .allocate(capacity: maxBatch * inputShape.count)
    }

    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.direction = UnsafeMutablePointer(mutating: direction)
        self.product = product
    }

    public func setMode(_ newMode: NormalizationMode) {
        switch newMode {
        case .collecting:
            collectedSum = Array(repeating: 0, count: channels)
            collectedSquares = collectedSum
            collectedCount = 0
        case .evaluation:
            if mode == .collecting && collectedCount > 0 {
                let m = Double(collectedCount)
                for c in 0..<channels {
                    let mean = collectedSum[c] / m
                    fixedMean[c] = Float(mean)
                    fixedVariance[c] = Float(max(0, collectedSquares[c] / m - mean * mean))
                }
            } else if mode != .evaluation {
                fixedMean = runningMean
                fixedVariance = runningVariance
            }
        case .training: break
        }
        mode = newMode
    }

    /// Fixed statistics, as PyTorch's `running_mean` and `running_var` when loading a model (tests).
    public func setRunningStatistics(mean: [Float], variance: [Float]) {
        precondition(mean.count == channels && variance.count == channels)
        runningMean = mean
        runningVariance = variance
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let c = channels, m = batch * inputShape.height * inputShape.width
        var mean = [Double](repeating: 0, count: c)
        if mode == .evaluation {
            for ch in 0..<c { mean[ch] = Double(fixedMean[ch]); inverseStd[ch] = 1 / (fixedVariance[ch] + Self.epsilon).squareRoot() }
        } else {
            var squares = [Double](repeating: 0, count: c)
            for r in 0..<m {
                let x = input + r * c
                for ch in 0..<c { mean[ch] += Double(x[ch]) }
            }
            for ch in 0..<c { mean[ch] /= Double(m) }
            for r in 0..<m {
                let x = input + r * c
                for ch in 0..<c { let d = Double(x[ch]) - mean[ch]; squares[ch] += d * d }
            }
            for ch in 0..<c {
                let variance = squares[ch] / Double(m)
                inverseStd[ch] = Float(1 / (variance + Double(Self.epsilon)).squareRoot())
                let unbiased = m > 1 ? squares[ch] / Double(m - 1) : variance
                runningMean[ch] = Float((1 - Self.momentum) * Double(runningMean[ch]) + Self.momentum * mean[ch])
                runningVariance[ch] = Float((1 - Self.momentum) * Double(runningVariance[ch]) + Self.momentum * unbiased)
                if mode == .collecting {
                    collectedSum[ch] += mean[ch] * Double(m)
                    collectedSquares[ch] += squares[ch] + mean[ch] * mean[ch] * Double(m)
                }
            }
            if mode == .collecting { collectedCount += m }
        }
        let gamma = parameters!, beta = parameters! + c
        let meanF = mean.map(Float.init)
        for r in 0..<m {
            let x = input + r * c, y = output + r * c, h = normalized.baseAddress! + r * c
            for ch in 0..<c {
                let n = (x[ch] - meanF[ch]) * inverseStd[ch]
                h[ch] = n
                y[ch] = gamma[ch] * n + beta[ch]
            }
        }
    }

    /// Per channel Σ dy and Σ dy·x̂.
    private func sums(_ dy: UnsafePointer<Float>, rows m: Int) -> ([Double], [Double]) {
        let c = channels
        var sumDy = [Double](repeating: 0, count: c), sumDyH = [Double](repeating: 0, count: c)
        for r in 0..<m {
            let g = dy + r * c, h = normalized.baseAddress! + r * c
            for ch in 0..<c { sumDy[ch] += Double(g[ch]); sumDyH[ch] += Double(g[ch] * h[ch]) }
        }
        return (sumDy, sumDyH)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let c = channels, m = batch * inputShape.height * inputShape.width
        let (sumDy, sumDyH) = sums(gradOutput, rows: m)
        for ch in 0..<c { gradients[ch] += Float(sumDyH[ch]); gradients[c + ch] += Float(sumDy[ch]) }
        guard let gradInput else { return }
        let gamma = parameters!
        var scale = [Float](repeating: 0, count: c), meanDy = scale, meanDyH = scale
        for ch in 0..<c {
            scale[ch] = gamma[ch] * inverseStd[ch]
            if mode != .evaluation { meanDy[ch] = Float(sumDy[ch] / Double(m)); meanDyH[ch] = Float(sumDyH[ch] / Double(m)) }
        }
        for r in 0..<m {
            let g = gradOutput + r * c, h = normalized.baseAddress! + r * c, d = gradInput + r * c
            for ch in 0..<c { d[ch] = scale[ch] * (g[ch] - meanDy[ch] - h[ch] * meanDyH[ch]) }
        }
    }

    /// Evaluation mode: R{y} = V_γ·x̂ + γ·R{x}/σ + V_β.
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        precondition(mode == .evaluation, "batch normalisation's R-operator is written for evaluation mode")
        let c = channels, m = batch * inputShape.height * inputShape.width
        let gamma = parameters!, vGamma = direction!, vBeta = direction! + c
        for r in 0..<m {
            let h = normalized.baseAddress! + r * c, ry = rOutput + r * c
            for ch in 0..<c {
                var v = vGamma[ch] * h[ch] + vBeta[ch]
                if let rInput { v += gamma[ch] * inverseStd[ch] * rInput[r * c + ch] }
                ry[ch] = v
            }
        }
    }

    /// Evaluation mode: R{dγ} += Σ R{dy}·x̂ + dy·R{x}/σ,  R{dβ} += Σ R{dy},  R{dx} = (R{dy}·γ + dy·V_γ)/σ.
    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        precondition(mode == .evaluation, "batch normalisation's R-operator is written for evaluation mode")
        let c = channels, m = batch * inputShape.height * inputShape.width
        let gamma = parameters!, vGamma = direction!
        for r in 0..<m {
            let g = gradOutput + r * c, rg = rGradOutput + r * c, h = normalized.baseAddress! + r * c
            for ch in 0..<c {
                var dGamma = rg[ch] * h[ch]
                if let rInput { dGamma += g[ch] * rInput[r * c + ch] * inverseStd[ch] }
                product[ch] += dGamma
                product[c + ch] += rg[ch]
                if let rGradInput { rGradInput[r * c + ch] = (rg[ch] * gamma[ch] + g[ch] * vGamma[ch]) * inverseStd[ch] }
            }
        }
    }
}

/// Layer normalisation over each position's channels, as PyTorch's `nn.LayerNorm(C)` (eps 1e-5) on tokens [B, T, C]:
/// x̂ = (x − μ)/√(σ² + ε) over the C values of one position (biased σ²), y = γ·x̂ + β. Backward:
///   dγ += Σ dy·x̂,  dβ += Σ dy,  dx = (1/√(σ² + ε)) · (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),  dx̂ = dy·γ
/// (means over the position's C values).
public final class LayerNorm: Layer {
    public let name = "layernorm"
    public let inputShape: FeatureShape
    public var outputShape: FeatureShape { inputShape }
    public let channels: Int
    public static let epsilon: Float = 1e-5
    private var parameters: UnsafeMutablePointer<Float>!
    private var gradients: UnsafeMutablePointer<Float>!
    private var normalized = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var inverseStd = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    public init(input: FeatureShape) {
        inputShape = input
        channels = input.channels
    }

    deinit { normalized.deallocate(); inverseStd.deallocate() }

    public var parameterTensors: [(count: Int, fanIn: Int)] { [(channels, 1), (channels, 1)] }
    public var initializers: [ParameterInit] { [.constant(1), .constant(0)] }
    public var supportsHessian: Bool { false }

    public func workspaceBytes(maxBatch: Int) -> Int? {
        checkedProduct([4, maxBatch, inputShape.count + inputShape.height * inputShape.width])
    }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.parameters = parameters
        self.gradients = gradients
        normalized.deallocate()
        inverseStd.deallocate()
        normalized = .allocate(capacity: maxBatch * inputShape.count)
        inverseStd = .allocate(capacity: maxBatch * inputShape.height * inputShape.width)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let c = channels, gamma = parameters!, beta = parameters! + c
        for r in 0..<(batch * inputShape.height * inputShape.width) {
            let x = input + r * c, y = output + r * c, h = normalized.baseAddress! + r * c
            var mean: Float = 0
            for ch in 0..<c { mean += x[ch] }
            mean /= Float(c)
            var variance: Float = 0
            for ch in 0..<c { let d = x[ch] - mean; variance += d * d }
            let inv = 1 / (variance / Float(c) + Self.epsilon).squareRoot()
            inverseStd[r] = inv
            for ch in 0..<c {
                h[ch] = (x[ch] - mean) * inv
                y[ch] = gamma[ch] * h[ch] + beta[ch]
            }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let c = channels, gamma = parameters!
        for r in 0..<(batch * inputShape.height * inputShape.width) {
            let g = gradOutput + r * c, h = normalized.baseAddress! + r * c
            var meanG: Float = 0, meanGH: Float = 0
            for ch in 0..<c {
                gradients[ch] += g[ch] * h[ch]
                gradients[c + ch] += g[ch]
                let dh = g[ch] * gamma[ch]
                meanG += dh
                meanGH += dh * h[ch]
            }
            guard let gradInput else { continue }
            meanG /= Float(c)
            meanGH /= Float(c)
            let d = gradInput + r * c, inv = inverseStd[r]
            for ch in 0..<c { d[ch] = inv * (g[ch] * gamma[ch] - meanG - h[ch] * meanGH) }
        }
    }

    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        preconditionFailure("LayerNorm has no R-operator yet; the Hessian check refuses models with one (supportsHessian)")
    }

    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        preconditionFailure("LayerNorm has no R-operator yet; the Hessian check refuses models with one (supportsHessian)")
    }
}
