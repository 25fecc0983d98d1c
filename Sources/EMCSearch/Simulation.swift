import EMCCore
import EMCTrainer
import Foundation

/// A fitter with a known boundary, for judging the search as an estimator: p(fit | n) = σ(−slope·(log n − log n50)),
/// and on top of it "budget noise": a trial that would fit runs out of budget with probability `exhaustion`. Every coin
/// is a pure function of (simulation, seed, n, replicate), so a search is reproducible and a replicate is a fresh draw.
/// A fitted trial uses more of its budget the nearer n is to the boundary (25% far below it, up to 97% at and above
/// n50, as fit epochs grow on real data), a failed one all of it, so searches compare in sample-epochs as on real data.
public final class SimulatedFitter: Fitter, @unchecked Sendable {
    public let n50: Double
    public let slope: Double
    public let exhaustion: Double
    public let budget: Int
    private let rng: CounterRNG

    public init(n50: Double, slope: Double, exhaustion: Double, simulation: UInt64, budget: Int = 300) {
        self.n50 = n50
        self.slope = slope
        self.exhaustion = exhaustion
        self.budget = budget
        rng = CounterRNG(seed: simulation, stream: .test)
    }

    /// The n50 of what this fitter does, budget noise included: where (1 − exhaustion)·σ(·) = 1/2.
    public var trueN50: Double {
        let q = 0.5 / (1 - exhaustion)
        return n50 * exp(-log(q / (1 - q)) / slope)
    }

    public func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
        let draw = rng.derived(UInt64(seed) << 32 | UInt64(replicate))
        let p = 1 / (1 + exp(slope * (log(Double(n)) - log(n50))))
        var fitted = Double(draw.uniform(UInt64(n) << 1)) < p
        var result: FitOutcome.Result = fitted ? .fitted : .convergedUnfit
        if fitted && Double(draw.uniform(UInt64(n) << 1 | 1)) < exhaustion { fitted = false; result = .budgetExhausted }
        let share = min(0.97, 0.25 + 0.72 * Double(n) / n50)
        return FitOutcome(result: result, reason: "simulated", samples: n, epochs: fitted ? Int(share * Double(budget)) : budget, steps: 0,
                          finalLoss: 0, trainAccuracy: fitted ? 1 : 0.99, wrong: fitted ? 0 : 1, gradientNorm: nil, lossHistory: [], seconds: 0)
    }
}

/// Many seeded searches on simulated fitters with known boundaries: how often the interval covers the truth, how far
/// the seeds' EMCs and n50 land from it, and what the search costs. The evidence behind the search's default rules.
public enum SearchSimulation {
    public struct Summary: Codable, Sendable {
        public var rule: String
        public var searches: Int
        /// Share of searches whose interval covered the true n50.
        public var coverage: Double
        public var medianHalfWidth: Double
        /// Median over searches of |n50 − true| / true, and of the seeds' median EMC against the truth.
        public var medianN50Error: Double
        public var medianSeedError: Double
        /// Searches in which some seed ended below half the true n50 (a lone unlucky failure deciding it).
        public var seedsFarBelow: Int
        public var meanTrials: Double
        /// Mean sample-epochs in units of trueN50 × budget (one trial at the boundary that uses its whole budget).
        public var meanCost: Double
    }

    /// Runs `searches` simulated searches of `seeds` seeds under `rules` (boundaries spread over two decades, slopes
    /// 4 to 12 per unit of log n, 5% budget noise), logging to a scratch folder.
    public static func run(rules: SearchRules, resolution: Double, searches: Int, seeds: Int, scratch: String, threads: Int, name: String) throws -> Summary {
        struct One: Sendable { var covered: Bool; var halfWidth: Double; var n50Error: Double; var seedError: Double; var farBelow: Bool; var trials: Int; var cost: Double }
        let slots = ResultSlots<One>(searches)
        let model = try ModelSpec(parsing: "mlp:width=4")
        let optimizer = try OptimizerSpec(parsing: "sgd:lr=0.1")
        try parallelFor(searches, threads: threads) { sim in
            let draw = CounterRNG(seed: 77, stream: .test).derived(UInt64(sim))
            let fitter = SimulatedFitter(n50: 300 * pow(100, Double(draw.uniform(0))), slope: 4 + 8 * Double(draw.uniform(1)), exhaustion: 0.05,
                                         simulation: UInt64(sim))
            let path = FileSystem.join(scratch, "\(name)-\(sim).jsonl")
            FileSystem.remove(path)
            defer { FileSystem.remove(path) }
            let fit = FitOptions(TrainingRules(budget: Budget(epochs: fitter.budget)))
            let config = SearchConfig(dataDirectory: "/simulated", dataName: "simulated", dataContentId: "sim\(sim)", variant: nil, model: model,
                                      optimizer: optimizer, fit: fit, normalize: "none", start: 100, resolution: resolution, seeds: seeds,
                                      maxSamples: 1_000_000, parameters: 1)
            let search = EMCSearch(config: config, log: try ResultsLog(path: path), fitter: fitter)
            search.rules = rules
            let outcome = try search.run()
            let truth = fitter.trueN50
            let b = outcome.boundary
            let seedMedian = median(outcome.seeds.map { Double($0.emc) })
            let trials = outcome.seeds.reduce(0) { $0 + $1.trials } + outcome.refinementTrials
            let cost = (outcome.seeds.reduce(0) { $0 + $1.sampleEpochs } + outcome.refinementSampleEpochs) / (truth * Double(fitter.budget))
            slots.set(sim, One(covered: b.map { $0.low <= truth && truth <= $0.high } ?? false, halfWidth: b?.relativeHalfWidth ?? .infinity,
                               n50Error: b.map { abs($0.n50 - truth) / truth } ?? .infinity, seedError: abs(seedMedian - truth) / truth,
                               farBelow: outcome.seeds.contains { Double($0.emc) < truth / 2 }, trials: trials, cost: cost))
        }
        let all = (0..<searches).map { slots.get($0)! }
        let ruleName = "confirm \(rules.confirmation.rawValue), resolution \(Int((resolution * 100).rounded()))%, refinement cap \(rules.refinementCap)"
            + (rules.slowGrowthNearBoundary ? "" : ", plain doubling")
        return Summary(rule: ruleName, searches: searches, coverage: Double(all.filter(\.covered).count) / Double(searches),
                       medianHalfWidth: median(all.map(\.halfWidth)), medianN50Error: median(all.map(\.n50Error)),
                       medianSeedError: median(all.map(\.seedError)), seedsFarBelow: all.filter(\.farBelow).count,
                       meanTrials: Double(all.map(\.trials).reduce(0, +)) / Double(searches),
                       meanCost: all.map(\.cost).reduce(0, +) / Double(searches))
    }
}
