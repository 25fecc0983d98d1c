import EMCCore
import EMCSearch
import EMCTestSupport
import EMCTrainer
import Foundation
import Testing

/// A fitter with a known boundary: p(fit | n) = σ(−slope·(log n − log n50)), and on top of it "budget noise": a
/// trial that would fit runs out of budget with probability `exhaustion`. Every coin is a pure function of
/// (simulation, seed, n, replicate), so a search is reproducible and a replicate is a fresh draw.
final class LogisticFitter: Fitter, @unchecked Sendable {
    let n50: Double
    let slope: Double
    let exhaustion: Double
    let rng: CounterRNG

    init(n50: Double, slope: Double, exhaustion: Double, simulation: UInt64) {
        self.n50 = n50
        self.slope = slope
        self.exhaustion = exhaustion
        rng = CounterRNG(seed: simulation, stream: .test)
    }

    func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
        let draw = rng.derived(UInt64(seed) << 32 | UInt64(replicate))
        let p = 1 / (1 + exp(slope * (log(Double(n)) - log(n50))))
        var fitted = Double(draw.uniform(UInt64(n) << 1)) < p
        var result: FitOutcome.Result = fitted ? .fitted : .convergedUnfit
        if fitted && Double(draw.uniform(UInt64(n) << 1 | 1)) < exhaustion { fitted = false; result = .budgetExhausted }
        return FitOutcome(result: result, reason: "simulated", samples: n, epochs: fitted ? 100 : 300, steps: 0, finalLoss: 0,
                          trainAccuracy: fitted ? 1 : 0.99, wrong: fitted ? 0 : 1, gradientNorm: nil, lossHistory: [], seconds: 0)
    }
}

/// A scratch log on a memory file system when there is one (a simulation appends thousands of lines, each fsynced).
func scratchLog(_ dir: TemporaryDirectory, _ name: String) throws -> ResultsLog {
    let shm = "/dev/shm"
    let path = FileSystem.isDirectory(shm) ? "\(shm)/emc-sim-\(getpid())-\(name).jsonl" : dir.file(name + ".jsonl")
    FileSystem.remove(path)
    return try ResultsLog(path: path)
}

@Suite("The search as an estimator, on simulated fitters with a known boundary")
struct SimulationTests {
    @Test("over 200 seeded searches the 90% interval covers the true n50 in at least 85%")
    func coverage() throws {
        let dir = TemporaryDirectory()
        let runs = 200
        let results = ResultSlots<(covered: Bool, halfWidth: Double)>(runs)
        try parallelFor(runs, threads: 2) { sim in
            // True boundaries spread over two decades, slopes from sharp to soft, 5% budget noise.
            let draw = CounterRNG(seed: 77, stream: .test).derived(UInt64(sim))
            let n50 = 300 * pow(100, Double(draw.uniform(0))), slope = 4 + 8 * Double(draw.uniform(1)), exhaustion = 0.05
            let fitter = LogisticFitter(n50: n50, slope: slope, exhaustion: exhaustion, simulation: UInt64(sim))
            // The true n50 of what the fitter does: where (1 − exhaustion)·σ(·) = 1/2.
            let q = 0.5 / (1 - exhaustion)
            let trueN50 = n50 * exp(-log(q / (1 - q)) / slope)
            let log = try scratchLog(dir, "coverage-\(sim)")
            defer { FileSystem.remove(log.path) }
            let outcome = try EMCSearch(config: try config(seeds: 3), log: log, fitter: fitter).run(evaluateFinal: false)
            guard let b = outcome.boundary else { throw EMCError(.format, "simulation \(sim): no boundary") }
            results.set(sim, (b.low <= trueN50 && trueN50 <= b.high, b.relativeHalfWidth))
        }
        let covered = (0..<runs).filter { results.get($0)!.covered }.count
        let widths = (0..<runs).map { results.get($0)!.halfWidth }
        print("simulation: the 90% interval covered the true n50 in \(covered) of \(runs) searches; median half-width ±\(String(format: "%.1f", 100 * median(widths)))%")
        #expect(Double(covered) >= 0.85 * Double(runs), "covered \(covered) of \(runs)")
    }

    @Test("no single failing trial ends or steers a seed's search: a confirmation overturns it")
    func oneFailure() throws {
        let dir = TemporaryDirectory()
        /// Fits every n up to 5,000, except the first initialisation at n = 800.
        final class Glitch: Fitter {
            func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
                let fitted = n <= 5000 && !(n == 800 && replicate == 0)
                return FitOutcome(result: fitted ? .fitted : .budgetExhausted, reason: "rule", samples: n, epochs: 300, steps: 0, finalLoss: 0,
                                  trainAccuracy: fitted ? 1 : 0.999, wrong: fitted ? 0 : 1, gradientNorm: nil, lossHistory: [], seconds: 0)
            }
        }
        let log = try scratchLog(dir, "glitch")
        defer { FileSystem.remove(log.path) }
        let search = EMCSearch(config: try config(), log: log, fitter: Glitch())
        let result = try search.search(seed: 0, evaluateFinal: false)
        #expect(result.emc >= 4900 && result.emc <= 5000, "EMC \(result.emc)")
        #expect(result.overturned == [800])
        let replicates = log.records.filter { $0.n == 800 }.map(\.replicateIndex)
        #expect(replicates == [0, 1], "the failure and its confirmation are both records")
        // Without confirmations the one failure would have decided the seed.
        let unconfirmed = EMCSearch(config: try config(), log: try scratchLog(dir, "glitch-raw"), fitter: Glitch())
        unconfirmed.rules.confirmFailures = false
        #expect(try unconfirmed.search(seed: 0, evaluateFinal: false).emc < 800)
        FileSystem.remove(unconfirmed.log.path)
    }

    @Test("the boundary fit: a sharp boundary's interval brackets it; all-fitted trials give none")
    func boundary() throws {
        var observations: [(n: Int, fitted: Bool)] = []
        for n in stride(from: 500, through: 2000, by: 50) { observations.append((n, n < 1200)) }
        let b = try #require(BoundaryFit.fit(observations))
        #expect(b.low <= 1200 && b.high >= 1150 && b.relativeHalfWidth < 0.1, "\(b)")
        #expect(!b.lowIsBound && !b.highIsBound)
        #expect(BoundaryFit.fit(observations.map { ($0.n, true) }) == nil)
        #expect(abs(BoundaryFit.chiSquare1(0.9) - 2.7055) < 1e-3)
    }

    @Test("seeds searched in parallel give the same records as one at a time, timing aside")
    func parallel() throws {
        let dir = TemporaryDirectory()
        func records(jobs: Int) throws -> [String] {
            let log = try scratchLog(dir, "jobs\(jobs)")
            defer { FileSystem.remove(log.path) }
            let search = EMCSearch(config: try config(seeds: 4), log: log, fitter: LogisticFitter(n50: 2500, slope: 6, exhaustion: 0.1, simulation: 9))
            search.jobs = jobs
            _ = try search.run(evaluateFinal: false)
            return log.records.map { "\($0.seed)/\($0.n)/\($0.replicateIndex)/\($0.result.rawValue)/\($0.role ?? "")" }.sorted()
        }
        #expect(try records(jobs: 1) == records(jobs: 3))
    }

    @Test("a boundary between whole numbers a sample apart needs no refinement")
    func tinyBoundary() throws {
        let dir = TemporaryDirectory()
        let log = try scratchLog(dir, "tiny")
        defer { FileSystem.remove(log.path) }
        let search = EMCSearch(config: try config(start: 2, seeds: 2), log: log, fitter: ThresholdFitter(threshold: 2))
        let outcome = try search.run(evaluateFinal: false)
        #expect(outcome.refinementTrials == 0 && outcome.targetReached, "\(String(describing: outcome.boundary))")
    }

    @Test("EMC against budget and threshold is derived from the trials' fit epochs, with bounds where trials cannot say")
    func derived() throws {
        // Trials at n = 100, 150, ..., 1500: fitted up to 800 (the larger, the later), failed above; every trial reached
        // 99% correct by epoch 50.
        var trials: [TrialRecord] = []
        for n in stride(from: 100, through: 1500, by: 50) {
            let fitted = n <= 800
            var r = TrialRecord(kind: .trial, key: "k", config: "c", seed: 0, n: n, result: fitted ? .fitted : .budgetExhausted, fitted: fitted,
                                reason: "", epochs: fitted ? n / 10 : 100, steps: 0, loss: 0, trainAccuracy: 1, wrong: 0, gradientNorm: nil,
                                seconds: 0, testAccuracy: nil, data: "d", variant: nil, model: "m", optimizer: "o", parameters: 1, lossHistory: nil)
            r.fitEpoch = fitted ? n / 10 : nil
            r.thresholdEpochs = ["0.99": 50]
            trials.append(r)
        }
        let curve = DerivedEMC.budgetCurve(trials, epochs: 100)
        #expect(curve.map(\.at) == [25, 50, 75, 100])
        let n50s = curve.compactMap { $0.boundary?.n50 }
        #expect(n50s.count == 4 && n50s == n50s.sorted(), "EMC grows with the budget: \(n50s)")
        #expect(abs(curve[1].boundary!.n50 - 525) < 60 && abs(curve[3].boundary!.n50 - 825) < 60, "\(n50s)")
        let thresholds = DerivedEMC.thresholds(trials)
        #expect(thresholds.first?.bound == "≥ 1500", "every trial reached 99%: only a bound")
        #expect(thresholds.last?.boundary != nil)
    }
}
