import EMCCore
import EMCTrainer
import Foundation

/// How simulated trials come out: the fitted model's family and the ways real searches depart from it. Each subset
/// (seed) j has its own log n50, θ_j = log n50 + `seedSpread`·z_j; a trial at n draws its own capacity from the link
/// around θ_j (its initialisation), or from a second population of initialisations (`weakShare` of them, at
/// `weakFactor`·n50_j); it lapses (fails whatever n is) with probability `lapse`; one that would fit runs out of budget
/// with probability `exhaustion`, times (n / n50_j)² when `exhaustionRises`.
public struct SimulationGenerator: Codable, Sendable {
    public enum Link: String, Codable, Sendable {
        /// p(fit) = σ(−s·(log n − θ)): the fitted model's own.
        case logistic
        /// p(fit) = exp(−exp(s·(log n − θ))): asymmetric, failures trailing off slowly below the boundary and fits
        /// stopping abruptly above it.
        case cloglog
    }
    public var name: String
    public var seedSpread = 0.0
    public var link = Link.logistic
    public var lapse = 0.0
    public var weakShare = 0.0
    public var weakFactor = 1.0
    public var exhaustion = 0.05
    public var exhaustionRises = false
    /// When true, a trial's capacity grows with the epochs it trains (as the square root of the share of the budget):
    /// a larger budget fits more, and the fit epoch of a trial near its capacity is near the budget. When false, a
    /// fitted trial needs at most 40% of the budget (slower near its capacity): the budget does not decide the boundary.
    public var budgetDependent = false

    public init(name: String) { self.name = name }

    /// The generators of the calibration table: the fitted model itself, subset effects of 0.1 to 0.3 in log n, an
    /// asymmetric link, two populations of initialisations, a lapse outside the fit's grid, budget failures that rise
    /// with n, and a capacity that grows with the budget.
    public static let calibration: [SimulationGenerator] = {
        func make(_ name: String, _ change: (inout SimulationGenerator) -> Void) -> SimulationGenerator {
            var g = SimulationGenerator(name: name)
            change(&g)
            return g
        }
        return [
            make("the fitted model (σ = 0, 5% budget noise)") { _ in },
            make("subset effect σ = 0.1") { $0.seedSpread = 0.1 },
            make("subset effect σ = 0.2") { $0.seedSpread = 0.2 },
            make("subset effect σ = 0.3") { $0.seedSpread = 0.3 },
            make("cloglog link") { $0.link = .cloglog },
            make("two populations of initialisations (30% at half the capacity)") { $0.weakShare = 0.3; $0.weakFactor = 0.5 },
            make("a 30% lapse") { $0.lapse = 0.3 },
            make("budget failures rising with n") { $0.exhaustionRises = true },
            make("capacity growing with the budget") { $0.budgetDependent = true },
        ]
    }()

    /// p(a trial fits) at n = ratio · n50_j, for slope s: what the subset's n50 solves p = 1/2 on.
    func pFit(ratio r: Double, slope s: Double) -> Double {
        func base(_ x: Double) -> Double {
            switch link {
            case .logistic: return 1 / (1 + exp(s * x))
            case .cloglog: return exp(-exp(s * x))
            }
        }
        let x = log(r)
        let capacity = (1 - weakShare) * base(x) + weakShare * base(x - log(weakFactor))
        let exhausted = min(0.9, exhaustion * (exhaustionRises ? r * r : 1))
        return (1 - lapse) * capacity * (1 - exhausted)
    }

    /// The population's n50 over the generator's n50 (the median subset's): where the fit probability averaged over
    /// subsets is 1/2 (the expectation over subsets, as Nakkiran and co-authors define effective model complexity), by
    /// bisection on the log of the ratio, the average over the subset effect by a 201-point rule on ±6σ.
    func medianRatio(slope s: Double) -> Double {
        let nodes = seedSpread > 0 ? (0...200).map { -6 + 12 * Double($0) / 200 } : [0.0]
        let weights = nodes.map { exp(-$0 * $0 / 2) }, total = weights.reduce(0, +)
        func averaged(_ logRatio: Double) -> Double {
            zip(nodes, weights).reduce(0) { $0 + $1.1 * pFit(ratio: exp(logRatio - seedSpread * $1.0), slope: s) } / total
        }
        var lo = log(1e-3), hi = log(1e3)
        for _ in 0..<100 {
            let mid = (lo + hi) / 2
            if averaged(mid) > 0.5 { lo = mid } else { hi = mid }
        }
        return exp((lo + hi) / 2)
    }
}

/// A fitter with a known boundary, for judging the search as an estimator (`SimulationGenerator` says how its trials
/// come out). Every coin is a pure function of (simulation, seed, n, replicate), so a search is reproducible and a
/// replicate is a fresh draw.
public final class SimulatedFitter: Fitter, @unchecked Sendable {
    public let n50: Double
    public let slope: Double
    public let generator: SimulationGenerator
    public let budget: Int
    private let rng: CounterRNG

    public init(n50: Double, slope: Double, generator: SimulationGenerator, simulation: UInt64, budget: Int = 300) {
        self.n50 = n50
        self.slope = slope
        self.generator = generator
        self.budget = budget
        rng = CounterRNG(seed: simulation, stream: .test)
    }

    /// The fitted model with budget noise: a trial that would fit runs out of budget with probability `exhaustion`.
    public convenience init(n50: Double, slope: Double, exhaustion: Double, simulation: UInt64, budget: Int = 300) {
        var g = SimulationGenerator(name: "the fitted model")
        g.exhaustion = exhaustion
        self.init(n50: n50, slope: slope, generator: g, simulation: simulation, budget: budget)
    }

    /// The population's n50: where the fit probability averaged over subsets is 1/2, everything included (lapses, budget
    /// noise, the second population, the link).
    public var trueN50: Double { n50 * generator.medianRatio(slope: slope) }

    /// Subset `seed`'s log n50.
    func subsetTheta(_ seed: Int) -> Double {
        let z = rng.derived(0xFFFF_0000 | UInt64(seed)).normal(0)
        return log(n50) + generator.seedSpread * Double(z)
    }

    public func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
        let g = generator
        let draw = rng.derived(UInt64(seed) << 32 | UInt64(replicate))
        let u = { (k: UInt64) in Double(draw.uniform(UInt64(n) << 3 | k)) }
        var theta = subsetTheta(seed)
        if u(2) < g.weakShare { theta += log(g.weakFactor) }
        // The trial's capacity: fitted when log n is below it. The link's inverse at a uniform draw.
        let v = min(max(u(0), 1e-12), 1 - 1e-12)
        let capacity: Double
        switch g.link {
        case .logistic: capacity = theta + log((1 - v) / v) / slope
        case .cloglog: capacity = theta + log(-log(v)) / slope
        }
        let x = log(Double(n))
        let ratio = exp(x - capacity)  // n over the trial's capacity
        var result: FitOutcome.Result = x <= capacity ? .fitted : .convergedUnfit
        var epochs = budget
        if result == .fitted {
            if g.budgetDependent {
                // Capacity grows as √(epochs / budget): the trial fits at epoch budget·ratio².
                epochs = max(1, Int((Double(budget) * ratio * ratio).rounded(.up)))
            } else {
                epochs = max(1, Int(Double(budget) * (0.05 + 0.35 * min(1, ratio))))
            }
            let exhausted = min(0.9, g.exhaustion * (g.exhaustionRises ? pow(Double(n) / exp(subsetTheta(seed)), 2) : 1))
            if u(1) < exhausted { result = .budgetExhausted; epochs = budget }
        }
        if u(3) < g.lapse { result = .diverged; epochs = max(1, budget / 10) }
        let fitted = result == .fitted
        return FitOutcome(result: result, reason: "simulated", samples: n, epochs: epochs, steps: 0,
                          finalLoss: 0, trainAccuracy: fitted ? 1 : 0.99, wrong: fitted ? 0 : 1, gradientNorm: nil, lossHistory: [], seconds: 0)
    }
}

/// Many seeded searches on simulated fitters with known boundaries: how often the interval covers the truth, how far
/// the seeds' EMCs and n50 land from it, and what the search costs. The evidence behind the search's default rules.
public enum SearchSimulation {
    public struct Summary: Codable, Sendable {
        public var rule: String
        public var generator: String
        public var searches: Int
        /// Share of searches whose interval covered the true n50.
        public var coverage: Double
        public var medianHalfWidth: Double
        /// The same with every trial pooled as one subset (no subset effect), from the same trials.
        public var pooledCoverage: Double
        public var pooledMedianHalfWidth: Double
        /// Median over searches of |n50 − true| / true, and of the seeds' median EMC against the truth.
        public var medianN50Error: Double
        /// Median over searches of log(n50 / true): the estimate's bias (0: none).
        public var medianLogError: Double
        /// Share of searches flagged budget-bound (`BudgetCheck`).
        public var budgetBound: Double
        public var medianSeedError: Double
        /// Searches in which some seed ended below half the true n50 (a lone unlucky failure deciding it).
        public var seedsFarBelow: Int
        public var meanTrials: Double
        /// Mean sample-epochs in units of trueN50 × budget (one trial at the boundary that uses its whole budget).
        public var meanCost: Double
    }

    /// Runs `searches` simulated searches of `seeds` seeds under `rules` (boundaries spread over two decades, slopes
    /// 4 to 12 per unit of log n, 5% budget noise), logging to a scratch folder.
    public static func run(rules: SearchRules, resolution: Double, searches: Int, seeds: Int, scratch: String, threads: Int, name: String,
                           generator: SimulationGenerator = SimulationGenerator(name: "the fitted model (σ = 0, 5% budget noise)")) throws -> Summary {
        struct One: Sendable {
            var covered: Bool; var halfWidth: Double; var n50Error: Double; var seedError: Double; var farBelow: Bool; var trials: Int; var cost: Double
            var pooledCovered: Bool; var pooledHalfWidth: Double; var logError: Double; var budgetBound: Bool
        }
        let slots = ResultSlots<One>(searches)
        let model = try ModelSpec(parsing: "mlp:width=4")
        let optimizer = try OptimizerSpec(parsing: "sgd:lr=0.1")
        try parallelFor(searches, threads: threads) { sim in
            let draw = CounterRNG(seed: 77, stream: .test).derived(UInt64(sim))
            let fitter = SimulatedFitter(n50: 300 * pow(100, Double(draw.uniform(0))), slope: 4 + 8 * Double(draw.uniform(1)), generator: generator,
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
            // The same trials pooled as one subset, as the boundary was fitted before subsets entered it.
            let pooled = BoundaryFit.fit(search.trials.filter(\.entersBoundary).map { ($0.n, $0.fitted, 0) }, level: rules.level)
            let trials = outcome.seeds.reduce(0) { $0 + $1.trials } + outcome.refinementTrials
            let cost = (outcome.seeds.reduce(0) { $0 + $1.sampleEpochs } + outcome.refinementSampleEpochs) / (truth * Double(fitter.budget))
            slots.set(sim, One(covered: b.map { $0.low <= truth && truth <= $0.high } ?? false, halfWidth: b?.relativeHalfWidth ?? .infinity,
                               n50Error: b.map { abs($0.n50 - truth) / truth } ?? .infinity, seedError: abs(seedMedian - truth) / truth,
                               farBelow: outcome.seeds.contains { Double($0.emc) < truth / 2 }, trials: trials, cost: cost,
                               pooledCovered: pooled.map { $0.low <= truth && truth <= $0.high } ?? false, pooledHalfWidth: pooled?.relativeHalfWidth ?? .infinity,
                               logError: b.map { log($0.n50 / truth) } ?? 0, budgetBound: outcome.budgetBound))
        }
        let all = (0..<searches).map { slots.get($0)! }
        let ruleName = "confirm \(rules.confirmation.rawValue), resolution \(Int((resolution * 100).rounded()))%, refinement cap \(rules.refinementCap)"
            + (rules.slowGrowthNearBoundary ? "" : ", plain doubling")
        let count = Double(searches)
        func share(_ flag: (One) -> Bool) -> Double { Double(all.filter(flag).count) / count }
        let trials = Double(all.map(\.trials).reduce(0, +)) / count, cost = all.map(\.cost).reduce(0, +) / count
        return Summary(rule: ruleName, generator: generator.name, searches: searches, coverage: share(\.covered),
                       medianHalfWidth: median(all.map(\.halfWidth)), pooledCoverage: share(\.pooledCovered),
                       pooledMedianHalfWidth: median(all.map(\.pooledHalfWidth)), medianN50Error: median(all.map(\.n50Error)),
                       medianLogError: median(all.map(\.logError)), budgetBound: share(\.budgetBound),
                       medianSeedError: median(all.map(\.seedError)), seedsFarBelow: all.filter(\.farBelow).count,
                       meanTrials: trials, meanCost: cost)
    }
}
