import Foundation
import EMCCore
import EMCTrainer

/// Answers "does the model fit n samples with this seed?" by training (or, in tests, by a rule).
public protocol Fitter: AnyObject {
    func fit(n: Int, seed: Int) throws -> FitOutcome
    /// Train and test accuracy of the model trained at (n, seed), for the generalization gap.
    func evaluate(n: Int, seed: Int) throws -> (outcome: FitOutcome, testAccuracy: Double?)
}

extension Fitter {
    public func evaluate(n: Int, seed: Int) throws -> (outcome: FitOutcome, testAccuracy: Double?) { (try fit(n: n, seed: seed), nil) }
}

/// One seed's search result.
public struct SeedResult: Sendable, Codable {
    public var seed: Int
    /// The largest fitted n (0 if none).
    public var emc: Int
    /// The smallest unfitted n above it (nil if every n up to the data size fitted).
    public var firstUnfitted: Int?
    /// (firstUnfitted − emc) / emc at the end.
    public var resolution: Double?
    public var trials: Int
    public var newTrials: Int
    public var sampleEpochs: Double
    public var seconds: Double
    /// Trials that ran out of budget (counted as not fitted: the EMC is then a lower bound for this budget).
    public var budgetExhausted: [Int]
    public var trainAccuracy: Double?
    public var testAccuracy: Double?
    public var generalizationGap: Double? { zipOptional(trainAccuracy, testAccuracy).map { $0 - $1 } }
}

/// Both values, or nil.
public func zipOptional<A, B>(_ a: A?, _ b: B?) -> (A, B)? { if let a, let b { return (a, b) }; return nil }

/// The EMC search: doubling from n0 until the first n that does not fit, then bisection between the last
/// fitted and the first unfitted n until they are within `resolution` of each other. EMC is the largest
/// fitted n. Nested subsets make the question close to monotone; when a noisy fitter breaks monotonicity,
/// the search still ends (it only ever narrows the bracket) and reports what it saw.
public final class EMCSearch {
    public let config: SearchConfig
    public let log: ResultsLog
    public let fitter: Fitter
    public var onTrial: ((TrialRecord, Bool) -> Void)?

    public init(config: SearchConfig, log: ResultsLog, fitter: Fitter) {
        self.config = config
        self.log = log
        self.fitter = fitter
    }

    /// Runs (or resumes) every seed.
    public func run(evaluateFinal: Bool = true) throws -> [SeedResult] {
        try (0..<config.seeds).map { try search(seed: $0, evaluateFinal: evaluateFinal) }
    }

    /// One seed: trials already in the log are reused, so a rerun after a kill repeats none.
    public func search(seed: Int, evaluateFinal: Bool = true) throws -> SeedResult {
        let key = config.key(seed: seed)
        var trials = 0, newTrials = 0
        var sampleEpochs = 0.0, seconds = 0.0
        var exhausted: [Int] = []
        func fits(_ n: Int) throws -> Bool {
            let record: TrialRecord
            if let old = log.trial(key: key, n: n) {
                record = old
                onTrial?(record, false)
            } else {
                let outcome = try fitter.fit(n: n, seed: seed)
                record = makeRecord(.trial, key: key, seed: seed, outcome: outcome, testAccuracy: nil)
                try log.append(record)
                newTrials += 1
                onTrial?(record, true)
            }
            trials += 1
            sampleEpochs += record.sampleEpochs
            seconds += record.seconds
            if record.result == .budgetExhausted { exhausted.append(n) }
            return record.fitted
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
                                budgetExhausted: exhausted.sorted(), trainAccuracy: nil, testAccuracy: nil)
        if evaluateFinal && lastFit > 0 {
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

    func makeRecord(_ kind: TrialRecord.Kind, key: String, seed: Int, outcome: FitOutcome, testAccuracy: Double?) -> TrialRecord {
        var record = TrialRecord(kind: kind, key: key, config: config.configHash, seed: seed, n: outcome.samples, result: outcome.result,
                    fitted: outcome.fitted, reason: outcome.reason, epochs: outcome.epochs, steps: outcome.steps,
                    loss: outcome.finalLoss, trainAccuracy: outcome.trainAccuracy, wrong: outcome.wrong,
                    gradientNorm: outcome.gradientNorm, seconds: outcome.seconds, testAccuracy: testAccuracy,
                    data: config.dataName, variant: config.variant, model: config.model.description,
                    optimizer: config.optimizer.description, parameters: config.parameters, lossHistory: outcome.lossHistory)
        record.dataContentId = config.dataContentId
        record.rootContentId = config.rootContentId
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
            let outcome = try fitter.fit(n: n, seed: seed)
            onTrial?(outcome)
            result.trials += 1
            result.sampleEpochs += Double(n) * Double(outcome.epochs)
            result.seconds += outcome.seconds
            if outcome.fitted { result.fitted.append(n); result.emc = max(result.emc, n) } else { result.unfitted.append(n) }
        }
        return result
    }
}
