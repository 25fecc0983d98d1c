import EMCCore
import Foundation

/// How long a trial may train: an epoch budget that grows at small n to a minimum of optimizer steps, or a step budget.
///
/// The epoch budget stays part of a step budget's value (and of the configuration key) as it always was, so a log keeps
/// its keys; it does not limit a trial then.
public struct Budget: Sendable, Hashable, CustomStringConvertible {
    /// Epochs per trial (and the horizon of cosine and step schedules).
    public var epochs: Int
    /// With an epoch budget, at least this many optimizer steps whatever n is (0: off): 300 epochs of 8 samples would
    /// otherwise be 300 steps. Not in force under a step budget.
    public var minSteps: Int
    /// A step budget instead (optimizer steps per trial; schedules then run over steps). Compare optimizers at equal steps.
    public var steps: Int?

    public init(epochs: Int = 300, minSteps: Int = 0, steps: Int? = nil) {
        self.epochs = epochs
        self.minSteps = minSteps
        self.steps = steps
    }

    /// The minimum of steps in force: none under a step budget.
    public var effectiveMinSteps: Int { steps == nil ? minSteps : 0 }

    /// Optimizer steps in one epoch over n samples (full-batch GD makes one).
    public func stepsPerEpoch(samples n: Int, batch: Int, fullBatch: Bool) -> Int { fullBatch ? 1 : max(1, (n + batch - 1) / batch) }

    /// The epochs a trial on n samples may train: the epoch budget grown to the minimum steps, or what the step budget takes.
    public func epochs(samples n: Int, batch: Int, fullBatch: Bool) -> Int {
        let perEpoch = stepsPerEpoch(samples: n, batch: batch, fullBatch: fullBatch)
        if let steps { return (steps + perEpoch - 1) / perEpoch }
        return max(epochs, (effectiveMinSteps + perEpoch - 1) / perEpoch)
    }

    /// The budget in words, as records and reports write it: "5000 steps", "300 epochs, at least 2000 steps", "300 epochs".
    public var description: String {
        if let steps { return "\(steps) steps" }
        return minSteps > 0 ? "\(epochs) epochs, at least \(minSteps) steps" : "\(epochs) epochs"
    }

    /// Reads `description` back (a record's or a report row's budget).
    public init(parsing text: String) throws {
        func number(_ s: Substring, _ unit: String) -> Int? {
            let words = s.split(separator: " ")
            guard words.count == 2, words[1] == unit else { return nil }
            return Int(words[0])
        }
        let parts = text.split(separator: ",", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces)[...] }
        if parts.count == 1, let steps = number(parts[0], "steps") {
            self.init(steps: steps)
        } else if let epochs = number(parts[0], "epochs") {
            guard parts.count == 2 else { self.init(epochs: epochs); return }
            guard parts[1].hasPrefix("at least "), let minSteps = number(parts[1].dropFirst("at least ".count), "steps") else {
                throw EMCError(.format, "a budget reads \"N steps\", \"N epochs\" or \"N epochs, at least M steps\", not \"\(text)\"")
            }
            self.init(epochs: epochs, minSteps: minSteps)
        } else {
            throw EMCError(.format, "a budget reads \"N steps\", \"N epochs\" or \"N epochs, at least M steps\", not \"\(text)\"")
        }
    }

    /// Whether trials end after a number of optimizer steps (equal steps: compare optimizers).
    public var isSteps: Bool { steps != nil }
}

/// How one trial trains and is judged, as a user sets it: the batch, the budget, the fit threshold, the convergence
/// rule and the Hessian check. The one declaration of these settings and their defaults: the search's settings hold
/// it, the command line's options take their defaults from it, the trainer's `FitOptions` wraps it.
///
/// Codable as flat keys (batch, epochs, steps, minSteps, fitThreshold, patience, minImprovement, gradientTolerance,
/// hessianCheck, hessianSteps, hessianTolerance), the form settings files and sweep tasks have always had.
public struct TrainingRules: Sendable, Hashable, Codable {
    public var batch = 128
    public var budget = Budget(epochs: 300, minSteps: 2000)
    /// Fraction of samples that must be classified correctly (1.0: all; the authors' code used 0.995). Kept as the
    /// decimal written: `FitOutcome.allowedWrong` compares in integers.
    public var fitThreshold = 1.0
    /// Convergence: the best epoch loss of the last `patience` epochs improved on the best before them by less than
    /// `minImprovement` (relative), and the full-batch gradient norm is below `gradientTolerance`: a minimum that does not fit.
    public var patience = 20
    public var minImprovement = 1e-3
    public var gradientTolerance = 1e-3
    /// Whether trials have their loss Hessian checked, and how (Lanczos steps, tolerance): see `HessianCheckMode`.
    public var hessianCheck = HessianCheckMode.off
    public var hessian = HessianCheckOptions()
    /// Check the fit every K optimizer steps instead of every epoch (the authors' protocol: K = 10,000): an exact pass
    /// over the n samples at the end of each epoch in which the step count reaches a multiple of K (full-batch GD: at each
    /// multiple), and at the end of the budget. nil: emc's rule, every epoch whose training-pass count is near a fit.
    public var checkEvery: Int?

    public init() {}

    /// The largest budget, patience or count a setting or record may hold (2³¹): beyond it the epoch budget's arithmetic
    /// would overflow.
    public static let countLimit = 1 << 31

    /// The rules with `budget`.
    public init(budget: Budget) { self.budget = budget }

    /// Every range check, each error naming its setting.
    public func check() throws {
        func bad(_ what: String) -> EMCError { EMCError(.invalidArgument, what) }
        guard (1...(1 << 20)).contains(batch) else { throw bad("the batch size must be between 1 and 1048576, not \(batch)") }
        let limit = Self.countLimit
        guard (1...limit).contains(budget.epochs) else { throw bad("the epoch budget must be between 1 and \(limit), not \(budget.epochs)") }
        if let steps = budget.steps { guard (1...limit).contains(steps) else { throw bad("the step budget must be between 1 and \(limit), not \(steps)") } }
        guard (0...limit).contains(budget.minSteps) else { throw bad("the minimum number of steps must be between 0 and \(limit), not \(budget.minSteps)") }
        guard (1...limit).contains(patience) else { throw bad("the patience must be between 1 and \(limit), not \(patience)") }
        guard fitThreshold > 0 && fitThreshold <= 1 else { throw bad("the fit threshold must be in (0, 1], not \(fitThreshold)") }
        guard fitThreshold == 1 || FitOutcome.decimalFraction(fitThreshold) != nil else {
            throw bad("the fit threshold \(fitThreshold) has more than 9 decimals; give it as a decimal such as 0.995")
        }
        guard minImprovement.isFinite, minImprovement >= 0 else { throw bad("the minimum improvement must be a finite number ≥ 0, not \(minImprovement)") }
        guard gradientTolerance.isFinite, gradientTolerance >= 0 else { throw bad("the gradient tolerance must be a finite number ≥ 0, not \(gradientTolerance)") }
        if let k = checkEvery { guard (1...limit).contains(k) else { throw bad("the check cadence must be between 1 and \(limit) steps, not \(k)") } }
        guard (1...1000).contains(hessian.steps) else { throw bad("the Hessian check's Lanczos steps must be between 1 and 1000, not \(hessian.steps)") }
        guard hessian.tolerance.isFinite, hessian.tolerance >= 0 else { throw bad("the Hessian tolerance must be a finite number ≥ 0, not \(hessian.tolerance)") }
    }

    /// The canonical lines of the configuration key these rules contribute (`SearchConfig.canonical`): byte for byte what
    /// every log's keys were made from.
    public var canonicalLines: (main: [String], tail: [String]) {
        var tail: [String] = []
        if budget.effectiveMinSteps > 0 { tail.append("minsteps:\(budget.effectiveMinSteps)") }
        // The Hessian check changes outcomes (converged-unfit or saddle) and records: a checked search keeps its own trials.
        if hessianCheck != .off { tail.append("hessian:\(hessianCheck.rawValue),\(hessian.steps),\(hessian.tolerance)") }
        // Checking every K steps decides other trials than checking every epoch.
        if let k = checkEvery { tail.append("checkevery:\(k)") }
        return (["batch:\(batch)", "epochs:\(budget.epochs)", "steps:\(budget.steps ?? 0)", "threshold:\(fitThreshold)",
                 "patience:\(patience)", "improvement:\(minImprovement)", "gradient:\(gradientTolerance)"], tail)
    }

    enum CodingKeys: String, CodingKey {
        case batch, epochs, steps, minSteps, fitThreshold, patience, minImprovement, gradientTolerance, hessianCheck, hessianSteps, hessianTolerance, checkEvery
    }

    /// Missing keys take their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingRules()
        batch = try c.decodeIfPresent(Int.self, forKey: .batch) ?? d.batch
        budget = Budget(epochs: try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.budget.epochs,
                        minSteps: try c.decodeIfPresent(Int.self, forKey: .minSteps) ?? d.budget.minSteps,
                        steps: try c.decodeIfPresent(Int.self, forKey: .steps))
        fitThreshold = try c.decodeIfPresent(Double.self, forKey: .fitThreshold) ?? d.fitThreshold
        patience = try c.decodeIfPresent(Int.self, forKey: .patience) ?? d.patience
        minImprovement = try c.decodeIfPresent(Double.self, forKey: .minImprovement) ?? d.minImprovement
        gradientTolerance = try c.decodeIfPresent(Double.self, forKey: .gradientTolerance) ?? d.gradientTolerance
        hessianCheck = try c.decodeIfPresent(HessianCheckMode.self, forKey: .hessianCheck) ?? d.hessianCheck
        hessian.steps = try c.decodeIfPresent(Int.self, forKey: .hessianSteps) ?? d.hessian.steps
        hessian.tolerance = try c.decodeIfPresent(Double.self, forKey: .hessianTolerance) ?? d.hessian.tolerance
        checkEvery = try c.decodeIfPresent(Int.self, forKey: .checkEvery)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(batch, forKey: .batch)
        try c.encode(budget.epochs, forKey: .epochs)
        try c.encodeIfPresent(budget.steps, forKey: .steps)
        try c.encode(budget.minSteps, forKey: .minSteps)
        try c.encode(fitThreshold, forKey: .fitThreshold)
        try c.encode(patience, forKey: .patience)
        try c.encode(minImprovement, forKey: .minImprovement)
        try c.encode(gradientTolerance, forKey: .gradientTolerance)
        try c.encode(hessianCheck, forKey: .hessianCheck)
        try c.encode(hessian.steps, forKey: .hessianSteps)
        try c.encode(hessian.tolerance, forKey: .hessianTolerance)
        try c.encodeIfPresent(checkEvery, forKey: .checkEvery)
    }
}

/// A spec as the user wrote it and as parsed: settings files, manifests and sweep tasks keep the text (a task's hash
/// names the request as written), the search uses the value, and configuration keys use its canonical description.
public struct Written<Spec: WrittenSpec>: Sendable, Hashable, Codable, CustomStringConvertible {
    public let text: String
    public let value: Spec

    public init(_ text: String) throws {
        self.text = text
        value = try Spec(parsing: text)
    }

    public var description: String { text }

    public static func == (a: Written, b: Written) -> Bool { a.text == b.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(text) } catch let e as EMCError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: e.message))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}

/// A value written as a spec string (`ModelSpec`, `OptimizerSpec`).
public protocol WrittenSpec: Sendable, CustomStringConvertible {
    init(parsing text: String) throws
}

extension ModelSpec: WrittenSpec {}
extension OptimizerSpec: WrittenSpec {}
