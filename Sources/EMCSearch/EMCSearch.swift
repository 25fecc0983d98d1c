import Foundation
import EMCCore
import EMCTrainer

/// Answers "does the model fit n samples with this seed?" by training (or, in tests, by a rule).
public protocol Fitter: AnyObject {
    /// Trains a fresh model, initialisation `replicate` at (seed, n), on the seed's nested subset of n samples.
    /// Must be safe to call from several threads at once for different (seed, n, replicate).
    func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome
    /// Train and test accuracy of the model trained at (n, seed), for the generalization gap.
    func evaluate(n: Int, seed: Int) throws -> (outcome: FitOutcome, testAccuracy: Double?)
}

extension Fitter {
    public func evaluate(n: Int, seed: Int) throws -> (outcome: FitOutcome, testAccuracy: Double?) { (try fit(n: n, seed: seed, replicate: 0), nil) }
}

/// One seed's search result.
public struct SeedResult: Sendable, Codable {
    public var seed: Int
    /// The largest n with a fitted trial whose search did not find it unfitted (0 if none).
    public var emc: Int
    /// The smallest n above it where a failure was confirmed (nil if every n up to the data size fitted).
    public var firstUnfitted: Int?
    /// (firstUnfitted − emc) / emc at the end.
    public var resolution: Double?
    public var trials: Int
    public var newTrials: Int
    public var sampleEpochs: Double
    public var seconds: Double
    /// Trials that ran out of budget (counted as not fitted: the EMC is then a lower bound for this budget).
    public var budgetExhausted: [Int]
    /// Sizes where a first trial failed and its confirmation fitted (so the failure did not move the search).
    public var overturned: [Int]? = nil
    public var trainAccuracy: Double?
    public var testAccuracy: Double?
    public var generalizationGap: Double? { zipOptional(trainAccuracy, testAccuracy).map { $0 - $1 } }
}

/// Both values, or nil.
public func zipOptional<A, B>(_ a: A?, _ b: B?) -> (A, B)? { if let a, let b { return (a, b) }; return nil }

/// How the search spends trials beyond the bare doubling and bisection.
public struct SearchRules: Sendable, Codable, Equatable {
    /// A failing trial is repeated with a fresh initialisation (same nested subset) before it moves the search;
    /// n counts as unfitted only when both fail.
    public var confirmFailures = true
    /// Refinement stops when the boundary's interval is within ± this fraction of n50...
    public var targetHalfWidth = 0.05
    /// ...or after this many refinement trials over all seeds (the cap wins; the interval reached is reported).
    public var refinementCap = 24
    /// The interval's confidence level.
    public var level = 0.9
    /// Fitted trials near the boundary that used more than this share of the budget flag it as budget-bound.
    public var budgetBoundShare = 0.7

    public init() {}
}

/// A configuration's result: every seed's bracketed EMC, and the boundary fitted over all their trials.
public struct SearchOutcome: Sendable, Codable {
    public var seeds: [SeedResult]
    /// p(fit | n) over every trial of every seed; nil when the trials do not straddle a boundary.
    public var boundary: BoundaryFit?
    public var refinementTrials: Int
    /// Whether the interval reached the target half-width (otherwise the cap stopped refinement).
    public var targetReached: Bool
    /// The largest share of the budget used by a fitted trial near the boundary (between n10 and n90, or above 0.8·n50).
    public var boundaryBudgetShare: Double?
    /// More than `SearchRules.budgetBoundShare`: the budget, not a minimum, decides the boundary; its n50 is a lower
    /// bound for this budget.
    public var budgetBound: Bool
}

/// The EMC search. Per seed: doubling from the start until a confirmed failure, then bisection between the last
/// fitted and the first confirmed-unfitted n to the resolution. Then, pooled over seeds: a logistic boundary fitted
/// to every trial, refined by an up-and-down walk around n50 until its interval is narrow enough or the cap is
/// reached. Every trial (replicates and refinements included) is a line in the log; a rerun repeats none.
public final class EMCSearch: @unchecked Sendable {
    public let config: SearchConfig
    public let log: ResultsLog
    public let fitter: Fitter
    public var rules = SearchRules()
    /// Seeds searched at once (each trial trains on the calling thread).
    public var jobs = 1
    public var onTrial: ((TrialRecord, Bool) -> Void)?
    private let lock = NSLock()

    public init(config: SearchConfig, log: ResultsLog, fitter: Fitter) {
        self.config = config
        self.log = log
        self.fitter = fitter
    }

    /// Runs (or resumes) every seed, then the pooled boundary and its refinement.
    public func run(evaluateFinal: Bool = true) throws -> SearchOutcome {
        let slots = ResultSlots<SeedResult>(config.seeds)
        try parallelFor(config.seeds, threads: jobs) { seed in slots.set(seed, try self.search(seed: seed, evaluateFinal: evaluateFinal)) }
        let seeds = (0..<config.seeds).map { slots.get($0)! }
        return try refine(seeds)
    }

    /// A trial from the log, or trained now and appended.
    func trial(seed: Int, n: Int, replicate: Int, role: String) throws -> (record: TrialRecord, new: Bool) {
        let key = config.key(seed: seed)
        if let old = log.trial(key: key, n: n, replicate: replicate) {
            report(old, new: false)
            return (old, false)
        }
        let outcome = try fitter.fit(n: n, seed: seed, replicate: replicate)
        var record = makeRecord(.trial, key: key, seed: seed, outcome: outcome, testAccuracy: nil)
        record.replicate = replicate
        record.role = role
        try log.append(record)
        report(record, new: true)
        return (record, true)
    }

    private func report(_ record: TrialRecord, new: Bool) {
        lock.lock(); defer { lock.unlock() }
        onTrial?(record, new)
    }

    /// One seed: trials already in the log are reused, so a rerun after a kill repeats none.
    public func search(seed: Int, evaluateFinal: Bool = true) throws -> SeedResult {
        var trials = 0, newTrials = 0
        var sampleEpochs = 0.0, seconds = 0.0
        var exhausted: [Int] = [], overturned: [Int] = []
        func count(_ t: (record: TrialRecord, new: Bool)) -> TrialRecord {
            trials += 1
            if t.new { newTrials += 1 }
            sampleEpochs += t.record.sampleEpochs
            seconds += t.record.seconds
            if t.record.result == .budgetExhausted { exhausted.append(t.record.n) }
            return t.record
        }
        // n fits unless its first trial and (with confirmations) a second initialisation both fail.
        func fits(_ n: Int) throws -> Bool {
            if count(try trial(seed: seed, n: n, replicate: 0, role: "search")).fitted { return true }
            guard rules.confirmFailures else { return false }
            let confirmed = !count(try trial(seed: seed, n: n, replicate: 1, role: "confirm")).fitted
            if !confirmed { overturned.append(n) }
            return !confirmed
        }

        let maxN = config.maxSamples
        var lastFit = 0
        var firstFail: Int? = nil
        var n = max(1, min(config.start, maxN))
        // Doubling up (or halving down when the start itself does not fit).
        if try fits(n) {
            lastFit = n
            while lastFit < maxN {
                n = min(maxN, lastFit * 2)
                if try fits(n) { lastFit = n } else { firstFail = n; break }
            }
        } else {
            firstFail = n
            while firstFail! > 1 {
                n = firstFail! / 2
                if try fits(n) { lastFit = n; break } else { firstFail = n }
            }
        }
        // Bisection.
        while let fail = firstFail, lastFit > 0, Double(fail - lastFit) > config.resolution * Double(lastFit), fail - lastFit > 1 {
            let mid = lastFit + (fail - lastFit) / 2
            if try fits(mid) { lastFit = mid } else { firstFail = mid }
        }
        var result = SeedResult(seed: seed, emc: lastFit, firstUnfitted: firstFail,
                                resolution: firstFail.map { lastFit > 0 ? Double($0 - lastFit) / Double(lastFit) : 1 },
                                trials: trials, newTrials: newTrials, sampleEpochs: sampleEpochs, seconds: seconds,
                                budgetExhausted: exhausted.sorted(), overturned: overturned.sorted(), trainAccuracy: nil, testAccuracy: nil)
        if evaluateFinal && lastFit > 0 {
            let key = config.key(seed: seed)
            let final: TrialRecord
            if let old = log.final(key: key), old.n == lastFit {
                final = old
            } else {
                let (outcome, test) = try fitter.evaluate(n: lastFit, seed: seed)
                final = makeRecord(.final, key: key, seed: seed, outcome: outcome, testAccuracy: test)
                try log.append(final)
            }
            result.trainAccuracy = final.trainAccuracy
            result.testAccuracy = final.testAccuracy
        }
        return result
    }

    /// Every trial of this configuration in the log (all seeds, replicates and refinements).
    public var trials: [TrialRecord] {
        let keys = Set((0..<config.seeds).map { config.key(seed: $0) })
        return log.records.filter { $0.kind == .trial && keys.contains($0.key) }
    }

    /// Fits the boundary and refines it: an up-and-down walk on a 4% log grid starting at n50 (up after a fit, down
    /// after a failure), seeds in turn, each step a fresh initialisation. The walk concentrates trials where p(fit)
    /// is near one half, where each trial says the most about n50.
    func refine(_ seeds: [SeedResult]) throws -> SearchOutcome {
        var boundary = BoundaryFit.fit(trials.map { ($0.n, $0.fitted) }, level: rules.level)
        var k = 0
        let step = 1.04
        var n = boundary.map { $0.n50 } ?? 0
        // Narrow enough: within the target, or within a sample either side (sizes are whole numbers).
        func narrow(_ b: BoundaryFit) -> Bool { b.relativeHalfWidth <= rules.targetHalfWidth || (b.high - b.low) / 2 <= 1 }
        while let b = boundary, !narrow(b), k < rules.refinementCap {
            let size = min(config.maxSamples, max(1, Int((pow(step, (Foundation.log(n) / Foundation.log(step)).rounded())).rounded())))
            let seed = k % config.seeds
            let t = try trial(seed: seed, n: size, replicate: 100 + k, role: "refine")
            n = t.record.fitted ? Double(size) * step : Double(size) / step
            k += 1
            boundary = BoundaryFit.fit(trials.map { ($0.n, $0.fitted) }, level: rules.level)
        }
        var share: Double?
        if let b = boundary {
            let near = trials.filter { $0.fitted && (Double($0.n) >= b.n10 && Double($0.n) <= b.n90 || Double($0.n) >= 0.8 * b.n50) }
            let fullBatch = config.optimizer.kind == .gd
            share = near.map { Double($0.fitEpoch ?? $0.epochs) / Double(config.fit.epochBudget(samples: $0.n, fullBatch: fullBatch)) }.max()
        }
        return SearchOutcome(seeds: seeds, boundary: boundary, refinementTrials: k,
                             targetReached: boundary.map(narrow) ?? false,
                             boundaryBudgetShare: share, budgetBound: (share ?? 0) > rules.budgetBoundShare)
    }

    func makeRecord(_ kind: TrialRecord.Kind, key: String, seed: Int, outcome: FitOutcome, testAccuracy: Double?) -> TrialRecord {
        var record = TrialRecord(kind: kind, key: key, config: config.configHash, seed: seed, n: outcome.samples, result: outcome.result,
                                 fitted: outcome.fitted, reason: outcome.reason, epochs: outcome.epochs, steps: outcome.steps,
                                 loss: outcome.finalLoss, trainAccuracy: outcome.trainAccuracy, wrong: outcome.wrong,
                                 gradientNorm: outcome.gradientNorm, seconds: outcome.seconds, testAccuracy: testAccuracy,
                                 data: config.dataName, variant: config.variant, model: config.model.description,
                                 optimizer: config.optimizer.description, parameters: config.parameters, lossHistory: outcome.lossHistory)
        record.dataContentId = config.dataContentId
        record.rootContentId = config.rootContentId
        record.schema = TrialRecord.currentSchema
        if outcome.fitted { record.fitEpoch = outcome.epochs; record.fitStep = outcome.steps }
        record.thresholdEpochs = outcome.thresholdEpochs
        record.provenance = TrialRecord.Provenance(emc: EMCEnvironment.version, commit: EMCEnvironment.sourceCommit, cpu: EMCEnvironment.cpuModel,
                                                   blas: "OpenBLAS \(BLAS.coreName)", threads: BLAS.threads)
        return record
    }
}

/// The median of a non-empty list.
public func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// The authors' method, for comparison: train every point of a fixed log-spaced grid and take the
/// largest n that fitted.
public enum GridSearch {
    /// `points` sizes from `low` to `high`, evenly spaced in log scale, rounded, distinct.
    public static func grid(low: Int, high: Int, points: Int) -> [Int] {
        let a = log(Double(low)), b = log(Double(high))
        var out: [Int] = []
        for i in 0..<points {
            let n = Int(exp(a + (b - a) * Double(i) / Double(max(1, points - 1))).rounded())
            if out.last != n { out.append(n) }
        }
        return out
    }

    public struct Result: Sendable, Codable {
        public var emc: Int
        public var trials: Int
        public var sampleEpochs: Double
        public var seconds: Double
        public var fitted: [Int]
        public var unfitted: [Int]
    }

    public static func run(_ grid: [Int], seed: Int, fitter: Fitter, onTrial: ((FitOutcome) -> Void)? = nil) throws -> Result {
        var result = Result(emc: 0, trials: 0, sampleEpochs: 0, seconds: 0, fitted: [], unfitted: [])
        for n in grid {
            let outcome = try fitter.fit(n: n, seed: seed, replicate: 0)
            onTrial?(outcome)
            result.trials += 1
            result.sampleEpochs += Double(n) * Double(outcome.epochs)
            result.seconds += outcome.seconds
            if outcome.fitted { result.fitted.append(n); result.emc = max(result.emc, n) } else { result.unfitted.append(n) }
        }
        return result
    }
}
