import EMCCore
import Foundation

/// How a fit is run and judged. Every rule is recorded in the outcome with its evidence.
@dynamicMemberLookup
public struct FitOptions: Sendable {
    /// What the user set (`TrainingRules`): read and written through this value, `options.batch`, `options.budget`.
    public var rules: TrainingRules
    /// Seed of the epoch orders.
    public var seed: UInt64 = 0
    /// Micro-batch of full passes (evaluation, full gradient, full-batch GD).
    public var evalBatch: Int
    /// Loss history kept in the outcome, decimated to at most this many points.
    public var historyPoints = 100
    /// Save the trial's state every few minutes and resume from it (nil: never).
    public var checkpoint: CheckpointOptions?

    /// The trainer's options for `rules`, with the evaluation batch they imply.
    public init(_ rules: TrainingRules = TrainingRules(budget: Budget())) {
        self.rules = rules
        evalBatch = max(rules.batch, Self.minimumEvaluationBatch)
    }

    public subscript<T>(dynamicMember path: WritableKeyPath<TrainingRules, T>) -> T {
        get { rules[keyPath: path] }
        set { rules[keyPath: path] = newValue }
    }

    /// The epochs a trial on n samples may train (`Budget.epochs(samples:batch:fullBatch:)`).
    public func epochBudget(samples n: Int, fullBatch: Bool) -> Int { rules.budget.epochs(samples: n, batch: rules.batch, fullBatch: fullBatch) }

    /// How many more wrong samples than allowed a cheap count (counted during a training pass, or in training mode for
    /// batch norm) may show before the exact pass that decides a fit is run: max(2, n/200). The exact pass decides; this
    /// only saves passes that could not succeed.
    public func exactCheckSlack(_ n: Int) -> Int { max(2, n / 200) }

    /// The smallest batch of the evaluation passes (larger batches are faster).
    public static let minimumEvaluationBatch = 1024

    /// Samples allowed to be wrong for a fit: ⌊n·(1 − t)⌋, exactly (`FitOutcome.allowedWrong`).
    public func allowedWrong(_ n: Int) -> Int { FitOutcome.allowedWrong(n, threshold: rules.fitThreshold) }
}

/// The decision of one fit, with its evidence.
public struct FitOutcome: Sendable, Codable, Equatable {
    public enum Result: String, Sendable, Codable {
        /// Every sample (or the threshold's share) is classified correctly.
        case fitted
        /// The loss stopped improving at a point with a small full gradient: a minimum that does not fit.
        case convergedUnfit = "converged-unfit"
        /// Out of epochs or steps before either: inconclusive.
        case budgetExhausted = "budget-exhausted"
        /// The loss became NaN or infinite.
        case diverged
        /// It would have been converged-unfit, but the loss Hessian has a negative eigenvalue beyond the tolerance: not a
        /// minimum. Inconclusive, like budget-exhausted (`--hessian-check`).
        case saddle
    }

    public var result: Result
    public var reason: String
    public var samples: Int
    public var epochs: Int
    public var steps: Int
    public var finalLoss: Double
    public var trainAccuracy: Double
    public var wrong: Int
    public var gradientNorm: Double?
    public var lossHistory: [Double]
    public var seconds: Double
    /// For each of `FitOutcome.thresholds`, the first epoch whose wrong count was at most (1 − t)·n, as counted
    /// during that epoch's training pass (exactly, for full-batch GD); absent when never reached. With the fit
    /// epoch, it lets a report derive the EMC at lower thresholds and smaller budgets from the same trials.
    public var thresholdEpochs: [String: Int] = [:]
    /// Epochs after which the plateau schedule multiplied the learning rate by its gamma.
    public var learningRateDrops: [Int] = []
    /// Accuracy of the trained model on the test split, when the caller evaluated it (the trainer does not).
    public var testAccuracy: Double?
    /// The Hessian check at the final parameters, when `FitOptions.hessianCheck` asked for one.
    public var hessian: HessianCheck?
    /// The epoch the trial resumed from, when it went on from a checkpoint after a kill (its outcome is what an
    /// uninterrupted trial's would be; only `seconds` adds up both runs).
    public var resumedFromEpoch: Int?
    /// How a model with batch normalisation was judged (`FitOutcome.batchNormDecision`); nil for a model without.
    public var batchNorm: String?
    /// What trained the trial (set by the search's fitter; nil from a bare `Trainer`).
    public var trainer: TrainerRecord?

    /// The rule for judging a model with batch normalisation, as recorded in each trial: training normalises by each
    /// batch's statistics (a full-batch gradient, by each evaluation batch's); the fit is judged in evaluation mode, with
    /// every batch-norm layer's mean and variance recomputed over the n samples first.
    public static let batchNormDecision = "eval-recomputed"

    public var fitted: Bool { result == .fitted }

    /// The fit thresholds whose first epoch every trial records (the authors' code used 0.995).
    public static let thresholds = [0.99, 0.995, 0.999]
    /// The key of a threshold in `thresholdEpochs`.
    public static func key(_ threshold: Double) -> String { String(format: "%g", threshold) }

    /// The most samples of n that may be wrong at fit threshold t: ⌊n·(1 − t)⌋, computed exactly in integers from the
    /// decimal t stands for (its shortest form, "0.9": 9/10), never by floating point, which puts 0.9 a hair below 9/10
    /// and allowed no wrong sample at n = 10. The one rule for the fit decision and the threshold curves. Thresholds
    /// with more than 9 decimals are refused by the settings; here they fall back to rounding t to 9 decimals.
    public static func allowedWrong(_ n: Int, threshold t: Double) -> Int {
        guard n > 0, t < 1 else { return 0 }
        guard t > 0 else { return n }
        let (numerator, scale) = decimalFraction(t) ?? (Int((t * 1e9).rounded()), 1_000_000_000)
        // n·(scale − numerator) / scale without overflow: n ≤ 2⁴⁰ and scale ≤ 10⁹ can exceed 2⁶³.
        let product = n.multipliedFullWidth(by: scale - numerator)
        return scale.dividingFullWidth(product).quotient
    }

    /// t in (0, 1) as numerator / 10^k from its shortest decimal form, when that has at most 9 decimals.
    public static func decimalFraction(_ t: Double) -> (numerator: Int, scale: Int)? {
        guard t > 0 && t < 1 else { return nil }
        var text = "\(t)"
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let x = Int(text[text.index(after: e)...]) else { return nil }
            exponent = x
            text = String(text[..<e])
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int(parts[0]) else { return nil }
        let fraction = parts.count == 2 ? String(parts[1]) : ""
        guard fraction.allSatisfy(\.isNumber), let digits = Int(parts[0] + fraction) else { return nil }
        let decimals = fraction.count - exponent
        guard whole == 0 || exponent < 0, decimals >= 0, decimals <= 9 else { return nil }
        var scale = 1
        for _ in 0..<decimals { scale *= 10 }
        return (digits, scale)
    }

    public init(result: Result, reason: String, samples: Int, epochs: Int, steps: Int, finalLoss: Double, trainAccuracy: Double,
                wrong: Int, gradientNorm: Double?, lossHistory: [Double], seconds: Double) {
        self.result = result
        self.reason = reason
        self.samples = samples
        self.epochs = epochs
        self.steps = steps
        self.finalLoss = finalLoss
        self.trainAccuracy = trainAccuracy
        self.wrong = wrong
        self.gradientNorm = gradientNorm
        self.lossHistory = lossHistory
        self.seconds = seconds
    }
}

/// Progress of a fit, once per epoch.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var loss: Double
    public var wrong: Int
    public var learningRate: Double

    public init(epoch: Int, loss: Double, wrong: Int, learningRate: Double) {
        self.epoch = epoch
        self.loss = loss
        self.wrong = wrong
        self.learningRate = learningRate
    }
}

/// Trains `model` (already initialised) on `data` with `optimizer` and decides whether it fits.
public final class Trainer {
    public let model: Model
    public let data: TrainingData
    public let optimizerSpec: OptimizerSpec
    public let options: FitOptions
    /// A stand-in for a kill, for tests and fuzzers (never set by emc itself): the fit stops with an error at the start
    /// of this epoch, after its checkpoint.
    public var stopAfterEpoch: Int?
    let inputs: UnsafeMutableBufferPointer<Float>
    let labels: UnsafeMutableBufferPointer<Int32>

    /// Fills the first `indices.count` samples of the batch buffers, through the data protocol's checks.
    func loadBatch(_ indices: UnsafeBufferPointer<UInt32>) throws {
        try data.loadBatch(indices, inputs: UnsafeMutableBufferPointer(rebasing: inputs[0..<(indices.count * model.inputShape.count)]),
                           labels: UnsafeMutableBufferPointer(rebasing: labels[0..<indices.count]))
    }

    public init(model: Model, data: TrainingData, optimizer: OptimizerSpec, options: FitOptions) throws {
        guard data.shape == model.inputShape || data.shape.count == model.inputShape.count else {
            throw EMCError(.invalidArgument, "model expects inputs of \(model.inputShape), data has \(data.shape)")
        }
        guard data.classes <= model.classes else {
            throw EMCError(.invalidArgument, "data has \(data.classes) classes, the model outputs \(model.classes)")
        }
        guard options.batch <= model.maxBatch, options.evalBatch <= model.maxBatch else {
            throw EMCError(.invalidArgument, "batch \(max(options.batch, options.evalBatch)) exceeds the model's buffers (\(model.maxBatch))")
        }
        guard data.count > 0 else { throw EMCError(.invalidArgument, "no samples to train on") }
        self.model = model
        self.data = data
        self.optimizerSpec = optimizer
        self.options = options
        inputs = .allocate(capacity: model.maxBatch * model.inputShape.count)
        labels = .allocate(capacity: model.maxBatch)
    }

    deinit {
        inputs.deallocate()
        labels.deallocate()
    }

    /// One full pass in fixed order: mean loss and wrong count; with `gradient`, also accumulates the
    /// exact full-batch gradient (mean over all n) into `model.gradients` (zeroed first).
    ///
    /// A model with batch normalisation: with `gradient`, the pass normalises by each evaluation batch's statistics
    /// (training mode); without, it is the fit decision's evaluation (`FitOutcome.batchNormDecision`): one pass collects
    /// every batch-norm layer's statistics over the n samples, a second judges in evaluation mode with them, and the
    /// model returns to training mode.
    @discardableResult
    public func fullPass(gradient: Bool) throws -> (loss: Double, wrong: Int) {
        guard !gradient && model.hasBatchNorm else { return try pass(gradient: gradient) }
        defer { model.setMode(.training) }
        try recomputeNormalization()
        return try pass(gradient: false)
    }

    /// Recomputes every batch-norm layer's statistics over the n samples (in fixed order, batches of the evaluation
    /// size) and leaves the model in evaluation mode with them.
    func recomputeNormalization() throws {
        model.setMode(.collecting)
        _ = try pass(gradient: false)
        model.setMode(.evaluation)
    }

    /// Leaves a batch-norm model in evaluation mode with every batch-norm layer's statistics recomputed over this
    /// trainer's samples, as the fit decision judges it (nothing for a model without batch norm). Then `evaluateAsIs` on
    /// another trainer of the same model (a test split) measures it with those statistics; `model.setMode(.training)` ends it.
    public func prepareEvaluation() throws {
        if model.hasBatchNorm { try recomputeNormalization() }
    }

    /// Mean loss and wrong count over this trainer's samples with the model's normalisation as it stands (no statistics
    /// collected from these samples): a test split's accuracy after `prepareEvaluation` on the training samples.
    public func evaluateAsIs() throws -> (loss: Double, wrong: Int) { try pass(gradient: false) }

    /// The fit decision's count for a pass that trained (GD's gradient pass, the end of the budget): the same for a
    /// model without batch normalisation, an evaluation-mode pass for one with it.
    private func judged(_ trainingPass: (loss: Double, wrong: Int)) throws -> (loss: Double, wrong: Int) {
        model.hasBatchNorm ? try fullPass(gradient: false) : trainingPass
    }

    private func pass(gradient: Bool) throws -> (loss: Double, wrong: Int) {
        let n = data.count
        if gradient { model.zeroGradients() }
        var lossSum = 0.0, wrong = 0
        var indices = [UInt32](repeating: 0, count: options.evalBatch)
        var start = 0
        while start < n {
            let b = min(options.evalBatch, n - start)
            for k in 0..<b { indices[k] = UInt32(start + k) }
            try indices.withUnsafeBufferPointer { try loadBatch(UnsafeBufferPointer(rebasing: $0[0..<b])) }
            let logits = model.forward(inputs.baseAddress!, batch: b)
            let r = SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels.baseAddress!, batch: b, classes: model.classes,
                                                 gradient: gradient ? model.logitGradient : nil, scale: 1 / Float(n))
            if gradient { model.backward(inputs.baseAddress!, batch: b) }
            lossSum += r.lossSum
            wrong += r.wrong
            start += b
        }
        return (lossSum / Double(n), wrong)
    }

    /// L2 norm of `model.gradients`.
    public func gradientNorm() -> Double {
        var sum = 0.0
        for g in model.gradients.prefix(model.parameterCount) { sum += Double(g) * Double(g) }
        return sum.squareRoot()
    }

    /// Trains until the sample set is fitted, the loss converges short of it, the budget runs out, or the loss diverges;
    /// then, as `options.hessianCheck` asks, checks the final parameters' Hessian: a converged-unfit trial whose Hessian
    /// has a clearly negative eigenvalue becomes a `saddle`.
    public func fit(progress: ((EpochReport) -> Void)? = nil) throws -> FitOutcome {
        var outcome = try train(progress: progress)
        // The trial is decided: its checkpoint has served.
        if let path = options.checkpoint?.path { FileSystem.remove(path) }
        let mode = options.hessianCheck
        let checked = mode == .final ? outcome.result != .diverged : (mode == .converged && outcome.result == .convergedUnfit)
        guard checked else { return outcome }
        let check = try checkHessian(options.hessian, seed: options.seed)
        outcome.hessian = check
        outcome.seconds += check.seconds
        if outcome.result == .convergedUnfit && check.verdict == .saddle {
            outcome.result = .saddle
            outcome.reason += String(format: "; but the loss Hessian has λ_min = %.3g < −%g·λ_max (λ_max = %.3g): a saddle, not a minimum (inconclusive)",
                                     check.lambdaMin, check.tolerance, check.lambdaMax)
        } else if outcome.result == .convergedUnfit {
            outcome.reason += String(format: "; Hessian λ_min = %.3g ≥ −%g·λ_max (λ_max = %.3g): a minimum", check.lambdaMin, check.tolerance, check.lambdaMax)
        }
        return outcome
    }

    private func train(progress: ((EpochReport) -> Void)?) throws -> FitOutcome {
        let start = Clock.now()
        let n = data.count
        let allowed = options.allowedWrong(n)
        let optimizer = Optimizer(spec: optimizerSpec, layout: model.parameterLayout)
        let fullBatch = optimizerSpec.kind == .gd
        // The budget in epochs: the epoch budget (grown to the minimum steps), or what the step budget takes.
        let stepsPerEpoch = options.budget.stepsPerEpoch(samples: n, batch: options.batch, fullBatch: fullBatch)
        let epochBudget = options.budget.epochs(samples: n, batch: options.batch, fullBatch: fullBatch)
        // Schedules run over steps under a step budget, over epochs otherwise.
        let stepSchedule = options.budget.steps
        let lastDrop = stepSchedule.map { optimizerSpec.lastDropEpoch(totalEpochs: $0) / stepsPerEpoch } ?? optimizerSpec.lastDropEpoch(totalEpochs: epochBudget)
        let lrAtStep: (Int) -> Double = { [optimizerSpec] step in optimizerSpec.learningRate(epoch: step, totalEpochs: stepSchedule ?? 1) }

        // The loop's whole state, from this trial's checkpoint when there is one.
        var state = FitLoopState(firstConvergenceCheck: lastDrop + options.patience)
        let identity = checkpointIdentity(epochBudget: epochBudget)
        if let c = options.checkpoint, let saved = TrainingCheckpoint.read(c.path, identity: identity, epochBudget: epochBudget),
           let values = saved.parameters.values(Float.self, count: model.parameterCount), optimizer.restore(saved.optimizer) {
            model.parameters.baseAddress!.update(from: values, count: values.count)
            state = saved.loop
        }
        let firstEpoch = state.epoch, priorSeconds = state.elapsed
        var lastSave = Clock.now()
        func saveCheckpoint() throws {
            guard let c = options.checkpoint else { return }
            state.elapsed = priorSeconds + Clock.now() - start
            let saved = TrainingCheckpoint(identity: identity, loop: state, parameters: Data(copying: model.parameterValues), optimizer: optimizer.state, digest: "")
            try saved.write(to: c.path)
            lastSave = Clock.now()
        }
        func outcome(_ result: FitOutcome.Result, _ reason: String, epochs: Int, loss: Double, wrong: Int, gradientNorm: Double?) -> FitOutcome {
            if result == .fitted { state.reached(wrong, of: n, epoch: epochs) }
            var o = FitOutcome(result: result, reason: reason, samples: n, epochs: epochs, steps: state.steps, finalLoss: loss,
                               trainAccuracy: Double(n - wrong) / Double(n), wrong: wrong, gradientNorm: gradientNorm,
                               lossHistory: decimate(state.history, to: options.historyPoints), seconds: priorSeconds + Clock.now() - start)
            o.thresholdEpochs = state.thresholdEpochs
            o.learningRateDrops = state.drops
            o.resumedFromEpoch = firstEpoch > 0 ? firstEpoch : nil
            o.batchNorm = model.hasBatchNorm ? FitOutcome.batchNormDecision : nil
            return o
        }

        while state.epoch < epochBudget {
            let epoch = state.epoch
            if epoch > firstEpoch {
                if let c = options.checkpoint, Clock.now() - lastSave >= c.interval { try saveCheckpoint() }
                if let stop = stopAfterEpoch, epoch >= stop { throw EMCError(.io, "stopped after epoch \(epoch), as a kill would stop it") }
            }
            let lr = state.scale * (stepSchedule == nil ? optimizerSpec.learningRate(epoch: epoch, totalEpochs: epochBudget) : lrAtStep(state.steps))
            var epochLoss: Double, epochWrong: Int
            if fullBatch {
                // The exact gradient at the current parameters; the pass is also an exact evaluation.
                (epochLoss, epochWrong) = try fullPass(gradient: true)
                state.reached(epochWrong, of: n, epoch: epoch)
                if !epochLoss.isFinite { state.history.append(epochLoss); return outcome(.diverged, "loss became \(epochLoss) in epoch \(epoch + 1)", epochs: epoch + 1, loss: epochLoss, wrong: epochWrong, gradientNorm: nil) }
                // Every epoch near a fit, or (checking every K steps) at each multiple of K.
                let due = options.checkEvery.map { state.steps > 0 && state.steps % $0 == 0 } ?? (epochWrong <= allowed + (model.hasBatchNorm ? options.exactCheckSlack(n) : 0))
                if due {
                    let norm = gradientNorm()
                    let (loss, wrong) = try judged((epochLoss, epochWrong))
                    if wrong <= allowed {
                        state.history.append(loss)
                        return outcome(.fitted, "all but \(wrong) of \(n) samples correct (allowed \(allowed)) after \(epoch) epochs",
                                       epochs: epoch, loss: loss, wrong: wrong, gradientNorm: norm)
                    }
                }
                model.step(optimizer, lr: lr)
                state.steps += 1
            } else {
                let perStep: ((Int) -> Double)? = stepSchedule == nil ? nil : { [scale = state.scale] step in scale * lrAtStep(step) }
                let stepsBefore = state.steps
                (epochLoss, epochWrong) = try trainEpoch(epoch: epoch, optimizer: optimizer, lr: lr, steps: &state.steps, lrAtStep: perStep)
                state.reached(epochWrong, of: n, epoch: epoch + 1)
                if !epochLoss.isFinite { state.history.append(epochLoss); return outcome(.diverged, "loss became \(epochLoss) in epoch \(epoch + 1)", epochs: epoch + 1, loss: epochLoss, wrong: epochWrong, gradientNorm: nil) }
                // Cheap detection: the errors counted while training; the exact check only when few. Checking every K
                // steps instead: the exact check at the end of each epoch in which the step count reached a multiple of K.
                let due = options.checkEvery.map { stepsBefore / $0 < state.steps / $0 } ?? (epochWrong <= allowed + options.exactCheckSlack(n))
                if due {
                    let (loss, wrong) = try fullPass(gradient: false)
                    if wrong <= allowed {
                        state.history.append(loss)
                        return outcome(.fitted, "all but \(wrong) of \(n) samples correct (allowed \(allowed)) after \(epoch + 1) epochs",
                                       epochs: epoch + 1, loss: loss, wrong: wrong, gradientNorm: nil)
                    }
                }
            }
            state.history.append(epochLoss)
            state.epoch = epoch + 1
            progress?(EpochReport(epoch: epoch + 1, loss: epochLoss, wrong: epochWrong, learningRate: lr))
            if let maxSteps = options.budget.steps, state.steps >= maxSteps { break }

            // The plateau schedule drops the rate after `wait` epochs without improvement (the convergence rule waits
            // for its last drop); otherwise, the convergence rule: a plateau in the loss and a small full gradient.
            if optimizerSpec.schedule == .plateau && state.drops.count < optimizerSpec.plateauDrops {
                state.plateauStep(optimizerSpec, minImprovement: options.minImprovement, patience: options.patience)
                continue
            }
            switch state.convergenceCheck(patience: options.patience, minImprovement: options.minImprovement) {
            case .notDue: continue
            case .improving: break
            case .plateaued(let improvement):
                let pass = try fullPass(gradient: true)
                let norm = gradientNorm()
                if norm < options.gradientTolerance {
                    let (loss, wrong) = try judged(pass)
                    return outcome(.convergedUnfit, String(format: "loss plateaued (improved %.2g%% over the last %d epochs) with full gradient norm %.3g < %.3g; %d of %d samples wrong",
                                                          improvement * 100, options.patience, norm, options.gradientTolerance, wrong, n),
                                   epochs: epoch + 1, loss: loss, wrong: wrong, gradientNorm: norm)
                }
                state.plateauNote = String(format: "; the loss had plateaued but the full gradient norm was %.3g ≥ %.3g", norm, options.gradientTolerance)
            }
            state.nextConvergenceCheck = epoch + 1 + options.patience
        }
        let pass = try fullPass(gradient: true)
        let norm = gradientNorm()
        let (loss, wrong) = try judged(pass)
        let epochs = state.history.count
        if wrong <= allowed {
            return outcome(.fitted, "all but \(wrong) of \(n) samples correct at the end of the budget", epochs: epochs, loss: loss, wrong: wrong, gradientNorm: norm)
        }
        let budget = options.budget.steps.map { "\($0)-step" } ?? "\(epochBudget)-epoch"
        return outcome(.budgetExhausted, "ran out of the \(budget) budget with \(wrong) of \(n) samples wrong\(state.plateauNote): inconclusive",
                       epochs: epochs, loss: loss, wrong: wrong, gradientNorm: norm)
    }

    /// What ties a checkpoint to this trial: the model's layers, the optimizer, the samples, the seed and every rule.
    private func checkpointIdentity(epochBudget: Int) -> String {
        let o = options
        return SHA256.hex([model.summary, "\(optimizerSpec)", "n=\(data.count)", "seed=\(o.seed)", "batch=\(o.batch)", "budget=\(epochBudget)",
                           "steps=\(o.budget.steps ?? 0)", "min=\(o.budget.effectiveMinSteps)", "threshold=\(o.fitThreshold)", "patience=\(o.patience)",
                           "improvement=\(o.minImprovement)", "gradient=\(o.gradientTolerance)"].joined(separator: "\n")
                       + (o.checkEvery.map { "\ncheckevery=\($0)" } ?? ""))
    }

    /// `count` plain training steps cycling through the data in epoch order (no decisions): for benchmarks.
    public func runSteps(_ count: Int, optimizer: Optimizer, lr: Double) throws {
        var steps = 0, epoch = 0
        while steps < count {
            _ = try trainEpoch(epoch: epoch, optimizer: optimizer, lr: lr, steps: &steps, stopAt: count)
            epoch += 1
        }
    }

    /// One epoch of mini-batch training in the seeded order; returns the mean loss and the wrong count
    /// seen during the epoch (each batch judged before its own update).
    /// One pass over the data in the epoch's order; `lrAtStep` (a step budget's schedule) sets the rate per step.
    private func trainEpoch(epoch: Int, optimizer: Optimizer, lr: Double, steps: inout Int, stopAt: Int? = nil,
                            lrAtStep: ((Int) -> Double)? = nil) throws -> (Double, Int) {
        let n = data.count
        let order = data.order(epoch: epoch, seed: options.seed)
        data.beginEpoch(epoch, order: order, batchSize: options.batch)
        var lossSum = 0.0, wrong = 0
        var start = 0
        try order.withUnsafeBufferPointer { order in
            while start < n {
                let b = min(options.batch, n - start)
                try loadBatch(UnsafeBufferPointer(rebasing: order[start..<(start + b)]))
                model.zeroGradients()
                let logits = model.forward(inputs.baseAddress!, batch: b)
                let r = SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels.baseAddress!, batch: b, classes: model.classes,
                                                     gradient: model.logitGradient, scale: 1 / Float(b))
                model.backward(inputs.baseAddress!, batch: b)
                model.step(optimizer, lr: lrAtStep?(steps) ?? lr)
                steps += 1
                lossSum += r.lossSum
                wrong += r.wrong
                start += b
                if let maxSteps = stopAt ?? options.budget.steps, steps >= maxSteps { break }
            }
        }
        return (lossSum / Double(max(1, start)), wrong + (n - start))
    }
}

/// Keeps at most `points` values, evenly spaced, always including the last.
func decimate(_ values: [Double], to points: Int) -> [Double] {
    guard values.count > points, points > 1 else { return values }
    return (0..<points).map { values[$0 * (values.count - 1) / (points - 1)] }
}
