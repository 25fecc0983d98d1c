import Foundation
import EMCCore
import EMCTrainer

/// Answers "does the model fit n samples with this seed?" by training (or, in tests, by a rule).
public protocol Fitter: AnyObject {
    /// Trains a fresh model, initialisation `replicate` at (seed, n), on the seed's nested subset of n samples.
    /// A fitter that evaluates its models sets the outcome's `testAccuracy`.
    /// Must be safe to call from several threads at once for different (seed, n, replicate).
    func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome
}

/// One seed's search result.
public struct SeedResult: Sendable, Codable {
    public var seed: Int
    /// The largest n with a fitted trial below the seed's first unfitted n (0 if none).
    public var emc: Int
    /// The smallest n above it where a failure was confirmed (nil if every n up to the data size fitted). Without
    /// confirmations (`FailureConfirmation.off`), the smallest n whose one trial failed.
    public var firstUnfitted: Int?
    /// (firstUnfitted − emc) / emc at the end.
    public var resolution: Double?
    public var trials: Int
    public var newTrials: Int
    public var sampleEpochs: Double
    public var seconds: Double
    /// Trials that ran out of budget (counted as not fitted: the EMC is then a lower bound for this budget).
    public var budgetExhausted: [Int]
    /// Sizes where a first trial failed and its confirmation fitted (so the failure did not decide the search).
    public var overturned: [Int]? = nil
    /// Trials that stopped at a saddle (the Hessian check found negative curvature): counted as not fitted, like
    /// budget-exhausted ones, and inconclusive in the same way.
    public var saddles: [Int]? = nil
    /// Train and test accuracy of the fitted trial at the EMC (when the fitter evaluates).
    public var trainAccuracy: Double?
    public var testAccuracy: Double?
    public var generalizationGap: Double? { zipOptional(trainAccuracy, testAccuracy).map { $0 - $1 } }
    /// The same at a common n (`EMCSearch.gapN`), so that models compare at one size rather than each at its own EMC.
    public var gapN: Int? = nil
    public var gapTrainAccuracy: Double? = nil
    public var gapTestAccuracy: Double? = nil
    public var gapAtN: Double? { zipOptional(gapTrainAccuracy, gapTestAccuracy).map { $0 - $1 } }
}

/// Both values, or nil.
public func zipOptional<A, B>(_ a: A?, _ b: B?) -> (A, B)? { if let a, let b { return (a, b) }; return nil }

/// When a failing trial is repeated with a fresh initialisation (same nested subset) before it may decide a seed.
public enum FailureConfirmation: String, Sendable, Codable, CaseIterable {
    /// Every failure, at once, before it moves the bracket (the most trials).
    case each
    /// The failure that would end the search: bisection runs on single trials, and the failure left at the top of
    /// the final bracket is confirmed; if its confirmation fits, the bracket reopens above it and the search goes on.
    /// No failure ends a search unconfirmed, and failures far above the boundary (which a later, lower failure
    /// supersedes) cost no second trial. The default: `emc bench search-rules` compares the rules on simulations.
    case final
    /// Never (one failure decides; the old behaviour, for comparison).
    case off
}

/// How the search spends trials beyond the bare doubling and bisection.
public struct SearchRules: Sendable, Codable, Hashable {
    public var confirmation = FailureConfirmation.final
    /// Refinement stops when the boundary's interval is within ± this fraction of n50...
    public var targetHalfWidth = 0.05
    /// ...or after this many refinement trials over all seeds (the cap wins; the interval reached is reported). None by
    /// default: with subsets scattering, more subsets narrow the interval and more trials in a few do not
    /// (`emc bench calibration`, docs/methods.md).
    public var refinementCap = 0
    /// The interval's confidence level.
    public var level = 0.9
    /// While doubling, a fitted trial that used more than this share of its budget says the boundary is near.
    public var budgetBoundShare = 0.7
    /// While doubling, a fitted trial that used more than `budgetBoundShare` of its budget says the boundary is near:
    /// the next n is √2 times larger instead of 2 (a failure far above the boundary costs the most of any trial).
    public var slowGrowthNearBoundary = true

    public init() {}
}

/// A configuration's result: every seed's bracketed EMC, and the boundary fitted over all their trials.
public struct SearchOutcome: Sendable, Codable {
    public var seeds: [SeedResult]
    /// p(fit | n) over every trial of every seed; nil when the trials do not straddle a boundary.
    public var boundary: BoundaryFit?
    public var refinementTrials: Int
    /// Sample-epochs the refinement trials cost (the seeds' own are in their results).
    public var refinementSampleEpochs: Double
    /// Whether the interval reached the target half-width (otherwise the cap stopped refinement).
    public var targetReached: Bool
    /// Whether the budget decides the boundary (`BudgetCheck`): n50 at half the budget from the same trials.
    public var budgetCheck: BudgetCheck?
    /// The budget decides the boundary: its n50 is a lower bound for this budget.
    public var budgetBound: Bool { budgetCheck?.bound ?? false }
}

/// The EMC search. Per seed: doubling from the start until a trial fails (growing by √2 instead once a fitted trial
/// used most of its budget), bisection between the last fitted and the
/// first failed n to the resolution, and a confirmation of the failure that would end it (`FailureConfirmation`). Then,
/// pooled over seeds: a logistic boundary fitted to every trial, refined by pairs of trials on the grid points either
/// side of n50 until its interval is narrow enough or the cap is reached. Every trial (replicates and refinements
/// included) is a line in the log; a rerun repeats none. Which trials run depends only on earlier trials' results,
/// never on timing, so `jobs` changes the wall time and not the records.
public final class EMCSearch: @unchecked Sendable {
    public let config: SearchConfig
    public let log: ResultsLog
    public let fitter: Fitter
    public var rules = SearchRules()
    /// Trials at once: seeds searched in parallel, and the refinement pairs (each trial trains on the calling thread).
    public var jobs = 1
    /// Threads each trial trains on (recorded in the provenance; the records are the same bits at any count).
    public var trialThreads = 1
    /// Also train each seed at this n (a replicate of its own, `gapReplicate`) for the generalization gap at a common n.
    public var gapN: Int?
    public var onTrial: ((TrialRecord, Bool) -> Void)?
    private let lock = NSLock()

    public init(config: SearchConfig, log: ResultsLog, fitter: Fitter) {
        self.config = config
        self.log = log
        self.fitter = fitter
    }

    /// Runs (or resumes) every seed, then the pooled boundary and its refinement.
    public func run() throws -> SearchOutcome {
        let ids = Array(config.seedRange)
        let slots = ResultSlots<SeedResult>(ids.count)
        try parallelFor(ids.count, threads: jobs) { i in slots.set(i, try self.search(seed: ids[i])) }
        var seeds = ids.indices.map { slots.get($0)! }
        let outcome = try refine(seeds)
        if let gapN {
            let n = min(config.maxSamples, max(1, gapN))
            let searched = seeds
            try parallelFor(ids.count, threads: jobs) { i in slots.set(i, try self.gap(searched[i], n: n)) }
            seeds = ids.indices.map { slots.get($0)! }
        }
        return SearchOutcome(seeds: seeds, boundary: outcome.boundary, refinementTrials: outcome.refinementTrials,
                             refinementSampleEpochs: outcome.refinementSampleEpochs, targetReached: outcome.targetReached,
                             budgetCheck: outcome.budgetCheck)
    }

    /// The replicate of the trial at the common n: a trial of its own (even where a search trial ran at that n), so
    /// that the log says which n the gaps were measured at.
    public static let gapReplicate = 1000

    private func gap(_ result: SeedResult, n: Int) throws -> SeedResult {
        var result = result
        let record = try trial(seed: result.seed, n: n, replicate: Self.gapReplicate, role: .gap).record
        result.gapN = n
        result.gapTrainAccuracy = record.testAccuracy == nil ? nil : record.trainAccuracy
        result.gapTestAccuracy = record.testAccuracy
        return result
    }

    /// A trial from the log, or trained now and appended.
    func trial(seed: Int, n: Int, replicate: Int, role: TrialRole) throws -> (record: TrialRecord, new: Bool) {
        let key = config.key(seed: seed)
        if let old = log.trial(key: key, n: n, replicate: replicate, pilot: role == .pilot) {
            report(old, new: false)
            return (old, false)
        }
        let outcome = try fitter.fit(n: n, seed: seed, replicate: replicate)
        var record = makeRecord(.trial, key: key, seed: seed, outcome: outcome)
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
    public func search(seed: Int) throws -> SeedResult {
        var trials = 0, newTrials = 0
        var sampleEpochs = 0.0, seconds = 0.0
        var exhausted: [Int] = [], overturned: [Int] = [], saddles: [Int] = []
        var fittedRecords: [Int: TrialRecord] = [:]
        var records: [TrialRecord] = []
        func run(_ n: Int, replicate: Int, role: TrialRole) throws -> Bool {
            let t = try trial(seed: seed, n: n, replicate: replicate, role: role)
            records.append(t.record)
            trials += 1
            if t.new { newTrials += 1 }
            sampleEpochs += t.record.sampleEpochs
            seconds += t.record.seconds
            if t.record.result == .budgetExhausted { exhausted.append(t.record.n) }
            if t.record.result == .saddle { saddles.append(t.record.n) }
            if t.record.fitted && fittedRecords[n] == nil { fittedRecords[n] = t.record }
            return t.record.fitted
        }
        // Failures seen on single trials (not yet confirmed), and confirmed ones.
        var failures = Set<Int>(), confirmed = Set<Int>()
        /// Whether n fits as far as the rule knows now.
        func probe(_ n: Int) throws -> Bool {
            if try run(n, replicate: 0, role: .search) { return true }
            failures.insert(n)
            if rules.confirmation == .each { return !(try confirm(n)) }
            return false
        }
        /// A second initialisation at n: true when it fails too.
        func confirm(_ n: Int) throws -> Bool {
            if try run(n, replicate: 1, role: .confirm) {
                overturned.append(n)
                failures.remove(n)
                return false
            }
            confirmed.insert(n)
            return true
        }

        let maxN = config.maxSamples
        var lastFit = 0
        var firstFail: Int? = nil
        /// The share of its budget the fitted trial at n used (nil when unknown).
        func budgetShare(_ n: Int) -> Double? {
            guard let r = fittedRecords[n] else { return nil }
            let budget = r.epochBudget ?? config.fit.epochBudget(samples: n, fullBatch: config.optimizer.kind == .gd)
            return Double(r.fitEpoch ?? r.epochs) / Double(max(1, budget))
        }
        func doubleUp() throws {
            while lastFit < maxN {
                let slow = rules.slowGrowthNearBoundary && (budgetShare(lastFit) ?? 0) > rules.budgetBoundShare
                let n = min(maxN, slow ? max(lastFit + 1, Int((Double(lastFit) * 2.0.squareRoot()).rounded())) : lastFit * 2)
                if try probe(n) { lastFit = n } else { firstFail = n; return }
            }
        }
        var n = max(1, min(config.start, maxN))
        // Doubling up (or halving down when the start itself does not fit).
        if try probe(n) {
            lastFit = n
            try doubleUp()
        } else {
            firstFail = n
            while firstFail! > 1 {
                n = firstFail! / 2
                if try probe(n) { lastFit = n; break } else { firstFail = n }
            }
        }
        while true {
            // Bisection.
            while let fail = firstFail, lastFit > 0, Double(fail - lastFit) > config.resolution * Double(lastFit), fail - lastFit > 1 {
                let mid = lastFit + (fail - lastFit) / 2
                if try probe(mid) { lastFit = mid } else { firstFail = mid }
            }
            // The failure that would end the search is confirmed; if it fits after all, the bracket reopens above it.
            guard let top = firstFail, rules.confirmation != .off, !confirmed.contains(top) else { break }
            if try confirm(top) { break }
            lastFit = top
            firstFail = failures.filter { $0 > top }.min()
            if firstFail == nil { try doubleUp() }
        }
        // The seed's EMC as docs/methods.md defines it from the trials (what `emc report` computes from the log); the
        // bracket the search closed is the same by construction, and a test checks it on many simulated searches.
        let (emc, firstUnfitted) = SeedEMC.of(records)
        let atEMC = fittedRecords[emc]
        return SeedResult(seed: seed, emc: emc, firstUnfitted: firstUnfitted,
                          resolution: firstUnfitted.map { emc > 0 ? Double($0 - emc) / Double(emc) : 1 },
                          trials: trials, newTrials: newTrials, sampleEpochs: sampleEpochs, seconds: seconds,
                          budgetExhausted: exhausted.sorted(), overturned: overturned.sorted(), saddles: saddles.isEmpty ? nil : saddles.sorted(),
                          trainAccuracy: atEMC?.testAccuracy == nil ? nil : atEMC?.trainAccuracy, testAccuracy: atEMC?.testAccuracy)
    }

    /// Every trial of this configuration in the log: every seed's (this run's and any other run's, `--seeds A..B`),
    /// replicates and refinements.
    public var trials: [TrialRecord] {
        let hash = config.configHash
        return log.records.filter { $0.kind == .trial && $0.config == hash }
    }

    /// The refinement's grid: sizes 4% apart in log scale.
    public static let refinementStep = 1.04
    /// Refinement trial k (counted over all seeds, from 0) is replicate `refinementReplicateBase + k` of its seed.
    public static let refinementReplicateBase = 100

    /// Fits the boundary and refines it: each round places a pair of trials on the grid points either side of the
    /// current n50 (seeds in turn, each a fresh initialisation), where p(fit) is near one half and a trial says the
    /// most about n50, then refits. The two trials of a round run at once with `jobs` ≥ 2.
    ///
    /// Each round's fit uses exactly the trials an uninterrupted run has at that point (the seeds' searches and the
    /// earlier rounds' refinement trials, never gap trials or later rounds already in the log), so a resumed or
    /// repeated search places the same trials and trains none it already has.
    func refine(_ seeds: [SeedResult]) throws -> SearchOutcome {
        let all = trials
        let searched = all.filter(\.isSeedSearch)
        let refinements = all.filter { $0.entersBoundary && !$0.isSeedSearch }
        var fresh: [TrialRecord] = []
        /// The trials in the fit after `k` refinement trials.
        func used(rounds k: Int) -> [TrialRecord] {
            let base = Self.refinementReplicateBase
            return searched + refinements.filter { $0.replicateIndex >= base && $0.replicateIndex < base + k } + fresh
        }
        func fit(rounds k: Int) -> BoundaryFit? { BoundaryFit.fit(used(rounds: k).map(\.observation), level: rules.level) }
        var boundary = fit(rounds: 0)
        var k = 0
        var cost = 0.0
        let step = Self.refinementStep
        // Narrow enough: within the target, or within a sample either side (sizes are whole numbers).
        func narrow(_ b: BoundaryFit) -> Bool { b.relativeHalfWidth <= rules.targetHalfWidth || (b.high - b.low) / 2 <= 1 }
        while let b = boundary, !narrow(b), k < rules.refinementCap {
            let i = (Foundation.log(b.n50) / Foundation.log(step)).rounded(.down)
            let sizes = [pow(step, i), pow(step, i + 1)].map { min(config.maxSamples, max(1, Int($0.rounded()))) }
            let count = min(2, rules.refinementCap - k)
            let results = ResultSlots<(record: TrialRecord, new: Bool)>(count)
            let first = k
            try parallelFor(count, threads: min(jobs, count)) { j in
                results.set(j, try self.trial(seed: self.config.seedRange.lowerBound + (first + j) % self.config.seeds, n: sizes[j], replicate: Self.refinementReplicateBase + first + j, role: .refine))
            }
            let round = (0..<count).map { results.get($0)! }
            // Trials trained now join the fit; those read from the log are already among `refinements`.
            fresh += round.filter(\.new).map(\.record)
            cost += round.map(\.record.sampleEpochs).reduce(0, +)
            k += count
            boundary = fit(rounds: k)
        }
        let fullBatch = config.optimizer.kind == .gd
        let check = boundary.map { b in
            BudgetCheck.measure(used(rounds: k), boundary: b, horizonSchedule: config.optimizer.dependsOnHorizon) { [config] in
                config.fit.epochBudget(samples: $0.n, fullBatch: fullBatch)
            }
        }
        return SearchOutcome(seeds: seeds, boundary: boundary, refinementTrials: k, refinementSampleEpochs: cost,
                             targetReached: boundary.map(narrow) ?? false,
                             budgetCheck: check)
    }

    func makeRecord(_ kind: TrialRecord.Kind, key: String, seed: Int, outcome: FitOutcome) -> TrialRecord {
        var record = TrialRecord(kind: kind, key: key, config: config.configHash, seed: seed, n: outcome.samples, result: outcome.result,
                                 fitted: outcome.fitted, reason: outcome.reason, epochs: outcome.epochs, steps: outcome.steps,
                                 loss: outcome.finalLoss, trainAccuracy: outcome.trainAccuracy, wrong: outcome.wrong,
                                 gradientNorm: outcome.gradientNorm, seconds: outcome.seconds, testAccuracy: outcome.testAccuracy,
                                 data: config.dataName, variant: config.variant, model: config.model.description,
                                 optimizer: config.optimizer.description, parameters: config.parameters, lossHistory: outcome.lossHistory)
        record.dataContentId = config.dataContentId
        record.rootContentId = config.rootContentId
        record.schema = TrialRecord.currentSchema
        if outcome.fitted { record.fitEpoch = outcome.epochs; record.fitStep = outcome.steps }
        record.thresholdEpochs = outcome.thresholdEpochs
        record.hessian = outcome.hessian
        record.resumedFromEpoch = outcome.resumedFromEpoch
        record.batchNorm = outcome.batchNorm
        record.batch = config.fit.batch
        record.budget = config.fit.budget.description
        record.epochBudget = config.fit.epochBudget(samples: outcome.samples, fullBatch: config.optimizer.kind == .gd)
        record.fitThreshold = config.fit.fitThreshold
        record.checkEvery = config.fit.checkEvery
        record.protocol = config.protocolName
        record.trainer = outcome.trainer ?? (config.trainer == .native ? .native : nil)
        if config.trainer == .native, config.model.arithmeticRevision > 1 {
            record.trainer?.arithmetic = config.model.arithmeticRevision
            record.trainer?.microBatch = config.model.microBatchSamples
        }
        record.provenance = TrialRecord.Provenance(emc: EMCEnvironment.version, commit: EMCEnvironment.sourceCommit, cpu: EMCEnvironment.cpuModel,
                                                   blas: "OpenBLAS \(BLAS.coreName)", threads: trialThreads)
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
