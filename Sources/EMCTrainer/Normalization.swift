import EMCCore
import CTrainerKernels

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
///
/// With `relu` the ReLU that follows is fused into the same passes: y = max(0, γ·x̂ + β), and backward zeroes dy where
/// y was not positive, the mask recomputed from x (norm.c). The same function and parameters as the two layers, two
/// passes over the activations fewer in forward and three in backward (docs/benchmarks.md).
public final class BatchNorm: Layer {
    public var name: String { relu ? "batchnorm+relu" : "batchnorm" }
    public let inputShape: FeatureShape
    public var outputShape: FeatureShape { inputShape }
    public let channels: Int
    /// Whether a ReLU is fused after the normalisation.
    public let relu: Bool
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
    /// Per-channel scratch, allocated once: sums and sums of squares (Double), then the mean, 1/√(σ² + ε) of the last
    /// forward (kept for backward and the R-operator, which recompute x̂ from the input rather than store it: a pass of
    /// memory traffic less, and it is traffic that bounds this layer), and backward's two means (Float).
    private let sums: UnsafeMutablePointer<Double>
    /// Samples per micro-batch of the per-channel sums (`MicroBatchSums`: split over a team by samples, as the layers
    /// around it are), or nil: each channel's sums over the whole batch in row order (split over a team by channels, each
    /// thread reading a strided share of every row, half of it written by another core). A batch of one micro-batch
    /// takes the whole-batch path: the same sums.
    public let microBatch: Int?
    private var partials = MicroBatchSums<Double>()
    private let perChannel: UnsafeMutablePointer<Float>
    private var inverseStd: UnsafeMutablePointer<Float> { perChannel + channels }

    public init(input: FeatureShape, relu: Bool = false, microBatch: Int? = nil) {
        precondition(microBatch.map { $0 > 0 } ?? true, "a micro-batch holds at least one sample")
        self.microBatch = microBatch
        inputShape = input
        channels = input.channels
        self.relu = relu
        runningMean = Array(repeating: 0, count: channels)
        runningVariance = Array(repeating: 1, count: channels)
        fixedMean = runningMean
        fixedVariance = runningVariance
        collectedSum = Array(repeating: 0, count: channels)
        collectedSquares = collectedSum
        sums = .allocate(capacity: 2 * channels)
        perChannel = .allocate(capacity: 4 * channels)
        perChannel.initialize(repeating: 1, count: 4 * channels)
    }

    deinit {
        sums.deallocate()
        partials.deallocate()
        perChannel.deallocate()
    }

    public var parameterTensors: [(count: Int, fanIn: Int)] { [(channels, 1), (channels, 1)] }
    public var initializers: [ParameterInit] { [.constant(1), .constant(0)] }
    public var usesBatchStatistics: Bool { true }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.parameters = parameters
        self.gradients = gradients
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
        let mean = perChannel, inverseStd = self.inverseStd
        if mode == .evaluation {
            for ch in 0..<c { mean[ch] = fixedMean[ch]; inverseStd[ch] = 1 / (fixedVariance[ch] + Self.epsilon).squareRoot() }
        } else {
            // One pass: Σx and Σx² in double, variance = Σx²/m − mean² (clamped at 0).
            let sum = sums, squares = sums + c
            sum.update(repeating: 0, count: 2 * c)
            if let samples = microBatch, batch > samples {
                microBatchSums(batch: batch, samples: samples, into: sums) { partial, start, rows in
                    emc_channel_moments(partial, partial + c, input + start * c, rows, c)
                }
            } else if splitsChannels(rows: m) {
                Parallel.ranges(c, grain: 8, minimum: Self.minimumChannelsPerPart) { ch, _ in emc_channel_moments_range(sum, squares, input, m, c, ch.lowerBound, ch.upperBound) }
            } else {
                emc_channel_moments(sum, squares, input, m, c)
            }
            for ch in 0..<c {
                let batchMean = sum[ch] / Double(m)
                let variance = max(0, squares[ch] / Double(m) - batchMean * batchMean)
                mean[ch] = Float(batchMean)
                inverseStd[ch] = Float(1 / (variance + Double(Self.epsilon)).squareRoot())
                let unbiased = m > 1 ? variance * Double(m) / Double(m - 1) : variance
                runningMean[ch] = Float((1 - Self.momentum) * Double(runningMean[ch]) + Self.momentum * batchMean)
                runningVariance[ch] = Float((1 - Self.momentum) * Double(runningVariance[ch]) + Self.momentum * unbiased)
                if mode == .collecting {
                    collectedSum[ch] += sum[ch]
                    collectedSquares[ch] += squares[ch]
                }
            }
            if mode == .collecting { collectedCount += m }
        }
        let gamma = parameters!, relu = self.relu ? Int32(1) : 0
        Parallel.ranges(m, minimum: max(1, Parallel.minimumElements / c)) { rows, _ in
            let start = rows.lowerBound * c
            emc_batchnorm_apply(output + start, input + start, mean, inverseStd, gamma, gamma + c, rows.count, c, relu)
        }
    }

    /// Whether the per-channel sums split over the team by channels: with more than one thread, at least
    /// `minimumChannelsPerPart` channels a thread, and channel counts whose sums a part can reproduce. Below 16 channels
    /// dividing 16 the kernels' 16 lanes hold several partial sums of one channel, an order no split keeps; at 16 each lane
    /// is one channel's sum in row order from zero, the general path's order, so a split keeps the bits.
    private func splitsChannels(rows: Int) -> Bool {
        Parallel.threads > 1 && (channels == 16 || !Parallel.sumsInLanes(channels)) && channels >= 2 * Self.minimumChannelsPerPart
            && rows * channels >= 2 * Parallel.minimumElements
    }

    static let minimumChannelsPerPart = 8

    /// out[0..<2c] = the per-channel pair of sums over the batch by micro-batches of `samples` samples (`MicroBatchSums`):
    /// `body(partial, first row, rows)` adds a micro-batch's rows into the pair at `partial`.
    private func microBatchSums(batch: Int, samples: Int, into out: UnsafeMutablePointer<Double>,
                                _ body: (UnsafeMutablePointer<Double>, Int, Int) -> Void) {
        let perSample = inputShape.height * inputShape.width
        let total = partials.sum(batch: batch, samples: samples, width: 2 * channels, perSample: perSample * channels) { partial, chosen in
            body(partial, chosen.lowerBound * perSample, chosen.count * perSample)
        }
        out.update(from: total, count: 2 * channels)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let c = channels, m = batch * inputShape.height * inputShape.width
        // Per channel Σ dy and Σ dy·x̂, x̂ recomputed from x and the last forward's statistics.
        let sumDy = sums, sumDyH = sums + c, mean = perChannel
        sumDy.update(repeating: 0, count: 2 * c)
        let gammaBeta = parameters!, reluFlag = relu ? Int32(1) : 0, inverse = inverseStd
        if let samples = microBatch, batch > samples {
            microBatchSums(batch: batch, samples: samples, into: sums) { partial, start, rows in
                emc_channel_gradient_sums(partial, partial + c, gradOutput + start * c, input + start * c, mean, inverse, gammaBeta,
                                          gammaBeta + c, rows, c, reluFlag)
            }
        } else if splitsChannels(rows: m) {
            Parallel.ranges(c, grain: 8, minimum: Self.minimumChannelsPerPart) { ch, _ in
                emc_channel_gradient_sums_range(sumDy, sumDyH, gradOutput, input, mean, inverse, gammaBeta, gammaBeta + c, m, c,
                                                ch.lowerBound, ch.upperBound, reluFlag)
            }
        } else {
            emc_channel_gradient_sums(sumDy, sumDyH, gradOutput, input, mean, inverse, gammaBeta, gammaBeta + c, m, c, reluFlag)
        }
        for ch in 0..<c { gradients[ch] += Float(sumDyH[ch]); gradients[c + ch] += Float(sumDy[ch]) }
        guard let gradInput else { return }
        let gamma = parameters!, inverseStd = self.inverseStd, meanDy = perChannel + 2 * c, meanDyH = perChannel + 3 * c
        // Evaluation mode normalises by fixed statistics: no batch terms.
        let training = mode != .evaluation
        for ch in 0..<c {
            meanDy[ch] = training ? Float(sumDy[ch] / Double(m)) : 0
            meanDyH[ch] = training ? Float(sumDyH[ch] / Double(m)) : 0
        }
        Parallel.ranges(m, minimum: max(1, Parallel.minimumElements / c)) { rows, _ in
            let start = rows.lowerBound * c
            emc_batchnorm_input_gradient(gradInput + start, gradOutput + start, input + start, mean, inverseStd, gamma, gamma + c,
                                         meanDy, meanDyH, rows.count, c, reluFlag)
        }
    }

    /// Evaluation mode: R{y} = V_γ·x̂ + γ·R{x}/σ + V_β (times the ReLU's mask y > 0 when fused).
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        precondition(mode == .evaluation, "batch normalisation's R-operator is written for evaluation mode")
        let c = channels, m = batch * inputShape.height * inputShape.width
        let gamma = parameters!, vGamma = direction!, vBeta = direction! + c, mean = perChannel
        for r in 0..<m {
            let x = input + r * c, ry = rOutput + r * c
            for ch in 0..<c {
                var v = vGamma[ch] * ((x[ch] - mean[ch]) * inverseStd[ch]) + vBeta[ch]
                if let rInput { v += gamma[ch] * inverseStd[ch] * rInput[r * c + ch] }
                ry[ch] = relu && !(output[r * c + ch] > 0) ? 0 : v
            }
        }
    }

    /// Evaluation mode: R{dγ} += Σ R{dy}·x̂ + dy·R{x}/σ,  R{dβ} += Σ R{dy},  R{dx} = (R{dy}·γ + dy·V_γ)/σ. A fused ReLU
    /// masks dy and R{dy} by y > 0 first (its second derivative is zero).
    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        precondition(mode == .evaluation, "batch normalisation's R-operator is written for evaluation mode")
        let c = channels, m = batch * inputShape.height * inputShape.width
        let gamma = parameters!, vGamma = direction!, mean = perChannel
        for r in 0..<m {
            let gradient = gradOutput + r * c, rGradient = rGradOutput + r * c, x = input + r * c, y = output + r * c
            for ch in 0..<c {
                let open = !relu || y[ch] > 0
                let g = open ? gradient[ch] : 0, rg = open ? rGradient[ch] : 0
                var dGamma = rg * ((x[ch] - mean[ch]) * inverseStd[ch])
                if let rInput { dGamma += g * rInput[r * c + ch] * inverseStd[ch] }
                product[ch] += dGamma
                product[c + ch] += rg
                if let rGradInput { rGradInput[r * c + ch] = (rg * gamma[ch] + g * vGamma[ch]) * inverseStd[ch] }
            }
        }
    }
}

/// Layer normalisation over each position's channels, as PyTorch's `nn.LayerNorm(C)` (eps 1e-5) on tokens [B, T, C]:
/// x̂ = (x − μ)/√(σ² + ε) over the C values of one position (biased σ²), y = γ·x̂ + β. Backward:
///   dγ += Σ dy·x̂,  dβ += Σ dy,  dx = (1/√(σ² + ε)) · (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),  dx̂ = dy·γ
/// (means over the position's C values). The loops are `emc_layernorm_forward` and `_backward` (norm.c): each position's
/// sums run in 16 fixed lanes, so they vectorise and give the same bits at every instruction set.
public final class LayerNorm: Layer, LayerWithoutHessian {
    public let name = "layernorm"
    public let inputShape: FeatureShape
    public var outputShape: FeatureShape { inputShape }
    public let channels: Int
    public static let epsilon: Float = 1e-5
    private var parameters: UnsafeMutablePointer<Float>!
    private var gradients: UnsafeMutablePointer<Float>!
    private var normalized = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var inverseStd = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var scratch = PartScratch()

    public init(input: FeatureShape) {
        inputShape = input
        channels = input.channels
    }

    deinit { normalized.deallocate(); inverseStd.deallocate(); scratch.deallocate() }

    public var parameterTensors: [(count: Int, fanIn: Int)] { [(channels, 1), (channels, 1)] }
    public var initializers: [ParameterInit] { [.constant(1), .constant(0)] }

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
        scratch.allocate(channels)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let c = channels, h = normalized.baseAddress!, istd = inverseStd.baseAddress!, gamma = parameters!
        Parallel.ranges(batch * inputShape.height * inputShape.width, minimum: max(1, Parallel.minimumElements / c)) { rows, _ in
            let start = rows.lowerBound * c
            emc_layernorm_forward(output + start, h + start, istd + rows.lowerBound, input + start, gamma, gamma + c, rows.count, c,
                                  Self.epsilon)
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let c = channels, rows = batch * inputShape.height * inputShape.width
        let h = normalized.baseAddress!, istd = inverseStd.baseAddress!, gamma = parameters!, dgamma = gradients!, scratch = self.scratch
        guard Parallel.threads > 1, rows * c >= 2 * Parallel.minimumElements else {
            emc_layernorm_backward(gradInput, dgamma, dgamma + c, scratch[0], gradOutput, h, istd, gamma, rows, c)
            return
        }
        // Each thread: the parameters' sums for its channels (over every row, in order) and the input gradient of its rows.
        let parts = Parallel.threads
        Parallel.parts(parts) { part in
            let c0 = c * part / parts, c1 = c * (part + 1) / parts
            emc_layernorm_parameter_gradient(dgamma, dgamma + c, gradOutput, h, rows, c, c0, c1)
            guard let gradInput else { return }
            let r0 = rows * part / parts, r1 = rows * (part + 1) / parts
            emc_layernorm_input_gradient(gradInput + r0 * c, scratch[part], gradOutput + r0 * c, h + r0 * c, istd + r0, gamma, r1 - r0, c)
        }
    }
}
