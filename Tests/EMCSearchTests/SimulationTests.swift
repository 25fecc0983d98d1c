import EMCCore
import EMCSearch
import EMCReports
import EMCTestSupport
import EMCTrainer
import Foundation
import Testing

/// A scratch log on a memory file system when there is one (a simulation appends thousands of lines, each fsynced).
func scratchLog(_ dir: TemporaryDirectory, _ name: String) throws -> ResultsLog {
    let shm = "/dev/shm"
    let path = FileSystem.isDirectory(shm) ? "\(shm)/emc-sim-\(getpid())-\(name).jsonl" : dir.file(name + ".jsonl")
    FileSystem.remove(path)
    return try ResultsLog(path: path)
}

@Suite("The search as an estimator, on simulated fitters with a known boundary")
struct SimulationTests {
    /// A smaller `emc bench calibration`: the default design on the fitted model and on a large subset effect.
    @Test("with the default design, the 90% interval covers the population n50 in at least 85% of 150 searches, with and without a subset effect",
          arguments: [0, 3])
    func coverage(generator: Int) throws {
        let dir = TemporaryDirectory()
        let scratch = FileSystem.isDirectory("/dev/shm") ? "/dev/shm" : dir.path
        let g = SimulationGenerator.calibration[generator]
        let summary = try SearchSimulation.run(rules: SearchSettings.defaults.rules, resolution: SearchSettings.defaults.resolution, searches: 150,
                                               seeds: SearchSettings.defaults.seeds, scratch: scratch, threads: 2,
                                               name: "emc-coverage-\(getpid())-\(generator)", generator: g)
        print("simulation (seed 77, \(g.name)): covered \(summary.coverage), median ±\(summary.medianHalfWidth), budget-bound \(summary.budgetBound)")
        #expect(summary.coverage >= 0.85, "covered \(summary.coverage)")
        #expect(summary.medianN50Error < 0.15 && summary.budgetBound <= 0.1)
    }

    /// The comparison test behind the findings, on pairs of configurations with the same true boundary (each searched
    /// with the default design): how often it calls them different. `Findings.measuredFalsePositives` states it.
    @Test("two configurations with the same boundary test as different in at most 5% of 200 simulated pairs (seed printed)")
    func nullComparisons() throws {
        let dir = TemporaryDirectory()
        let scratch = FileSystem.isDirectory("/dev/shm") ? "/dev/shm" : dir.path
        let pairs = 200, seed: UInt64 = 2026
        let slots = ResultSlots<Bool>(pairs)
        try parallelFor(pairs, threads: 2) { k in
            let draw = CounterRNG(seed: seed, stream: .test).derived(UInt64(k))
            let n50 = 300 * pow(100, Double(draw.uniform(0))), slope = 4 + 8 * Double(draw.uniform(1))
            var records: [TrialRecord] = []
            for side in 0..<2 {
                let path = "\(scratch)/emc-null-\(getpid())-\(k)-\(side).jsonl"
                FileSystem.remove(path)
                defer { FileSystem.remove(path) }
                var c = try config(seeds: SearchSettings.defaults.seeds)
                c.resolution = SearchSettings.defaults.resolution
                c.model = try ModelSpec(parsing: "mlp:width=\(4 + side)")
                let fitter = SimulatedFitter(n50: n50, slope: slope, exhaustion: 0.05, simulation: UInt64(k) << 1 | UInt64(side) | seed << 20)
                let search = EMCSearch(config: c, log: try ResultsLog(path: path), fitter: fitter)
                _ = try search.run()
                records += search.trials
            }
            let rows = Report.from(records).rows
            guard rows.count == 2, let t = Findings.test(rows[0], rows[1]) else { slots.set(k, false); return }
            slots.set(k, t.p <= Findings.level)
        }
        let rate = Double((0..<pairs).filter { slots.get($0) == true }.count) / Double(pairs)
        print("null comparisons (seed \(seed)): \(Int(rate * 1000) / 10)% significant at \(Findings.level)")
        #expect(rate <= 0.05, "\(rate)")
    }

    @Test("emc run and emc report give the same n50 and interval from the same log, gap trials and refinements included")
    func runAndReportAgree() throws {
        let dir = TemporaryDirectory()
        let log = try scratchLog(dir, "agree")
        defer { FileSystem.remove(log.path) }
        var c = try config(seeds: 5)
        c.resolution = 0.25
        let search = EMCSearch(config: c, log: log, fitter: SimulatedFitter(n50: 3000, slope: 6, exhaustion: 0.1, simulation: 3))
        search.gapN = 500
        search.rules.refinementCap = 4
        let outcome = try search.run()
        let row = try #require(Report.from(log.records).rows.first)
        let (a, b) = (try #require(outcome.boundary), try #require(row.boundary))
        #expect(a.n50 == b.n50 && a.low == b.low && a.high == b.high && a.trials == b.trials, "run \(a) vs report \(b)")
        #expect(log.records.filter { $0.role == .gap }.count == 5 && outcome.budgetCheck == row.budgetCheck)
    }

    @Test("seeds 3..5 on a log that holds seeds 0..2 train only the new seeds, and the boundary and the report pool all six")
    func addedSeeds() throws {
        let dir = TemporaryDirectory()
        let log = try scratchLog(dir, "added")
        defer { FileSystem.remove(log.path) }
        let fitter = SimulatedFitter(n50: 2500, slope: 6, exhaustion: 0.05, simulation: 8)
        var first = try config(seeds: 3)
        first.resolution = 0.25
        _ = try EMCSearch(config: first, log: log, fitter: fitter).run()
        let before = log.records.count
        var second = first
        second.firstSeed = 3
        let search = EMCSearch(config: second, log: log, fitter: fitter)
        var trained: [Int] = []
        search.onTrial = { record, new in if new { trained.append(record.seed) } }
        let outcome = try search.run()
        #expect(!trained.isEmpty && trained.allSatisfy { (3...5).contains($0) }, "\(trained)")
        #expect(outcome.seeds.map(\.seed) == [3, 4, 5] && log.records.count == before + trained.count)
        #expect(outcome.boundary?.subsets == 6)
        let row = try #require(Report.from(log.records).rows.first)
        #expect(row.seeds.map(\.seed) == [0, 1, 2, 3, 4, 5] && row.boundary?.n50 == outcome.boundary?.n50)
        // The two sets side by side: a row each, with its own subsets, boundary and interval.
        let split = Report.from(log.records, seedSets: [0...2, 3...5])
        #expect(split.rows.map(\.seedSet) == ["0..2", "3..5"])
        #expect(split.rows.map { $0.seeds.map(\.seed) } == [[0, 1, 2], [3, 4, 5]])
        #expect(split.rows.allSatisfy { $0.boundary?.subsets == 3 })
        #expect(split.text.contains("| seed set") && split.text.contains("3..5"))
    }

    @Test("no single failing trial ends or steers a seed's search: a confirmation overturns it")
    func oneFailure() throws {
        let dir = TemporaryDirectory()
        /// Fits every n up to 5,000 in a sixth of its budget (so n doubles), except the first initialisation at n = 800.
        final class Glitch: Fitter {
            func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
                let fitted = n <= 5000 && !(n == 800 && replicate == 0)
                return FitOutcome(result: fitted ? .fitted : .budgetExhausted, reason: "rule", samples: n, epochs: fitted ? 50 : 300, steps: 0, finalLoss: 0,
                                  trainAccuracy: fitted ? 1 : 0.999, wrong: fitted ? 0 : 1, gradientNorm: nil, lossHistory: [], seconds: 0)
            }
        }
        let log = try scratchLog(dir, "glitch")
        defer { FileSystem.remove(log.path) }
        let search = EMCSearch(config: try config(), log: log, fitter: Glitch())
        let result = try search.search(seed: 0)
        #expect(result.emc >= 4900 && result.emc <= 5000, "EMC \(result.emc)")
        #expect(result.overturned == [800])
        let replicates = log.records.filter { $0.n == 800 }.map(\.replicateIndex)
        #expect(replicates == [0, 1], "the failure and its confirmation are both records")
        // Without confirmations the one failure would have decided the seed.
        let unconfirmed = EMCSearch(config: try config(), log: try scratchLog(dir, "glitch-raw"), fitter: Glitch())
        unconfirmed.rules.confirmation = .off
        #expect(try unconfirmed.search(seed: 0).emc < 800)
        FileSystem.remove(unconfirmed.log.path)
    }

    @Test("the boundary fit: a sharp boundary's interval brackets it; all-fitted trials give none")
    func boundary() throws {
        var observations: [(n: Int, fitted: Bool, seed: Int)] = []
        for n in stride(from: 500, through: 2000, by: 50) { observations.append((n, n < 1200, 0)) }
        let b = try #require(BoundaryFit.fit(observations))
        #expect(b.low <= 1200 && b.high >= 1150 && b.relativeHalfWidth < 0.1, "\(b)")
        #expect(!b.lowIsBound && !b.highIsBound)
        #expect(BoundaryFit.fit(observations.map { ($0.n, true, 0) }) == nil)
        #expect(abs(BoundaryFit.chiSquare1(0.9) - 2.7055) < 1e-3)
    }

    @Test("seeds searched in parallel give the same records as one at a time, timing aside")
    func parallel() throws {
        let dir = TemporaryDirectory()
        func records(jobs: Int) throws -> [String] {
            let log = try scratchLog(dir, "jobs\(jobs)")
            defer { FileSystem.remove(log.path) }
            let search = EMCSearch(config: try config(seeds: 4), log: log, fitter: SimulatedFitter(n50: 2500, slope: 6, exhaustion: 0.1, simulation: 9))
            search.jobs = jobs
            _ = try search.run()
            return log.records.map { "\($0.seed)/\($0.n)/\($0.replicateIndex)/\($0.result.rawValue)/\($0.role?.rawValue ?? "")" }.sorted()
        }
        #expect(try records(jobs: 1) == records(jobs: 3))
    }

    @Test("a boundary between whole numbers a sample apart needs no refinement")
    func tinyBoundary() throws {
        let dir = TemporaryDirectory()
        let log = try scratchLog(dir, "tiny")
        defer { FileSystem.remove(log.path) }
        let search = EMCSearch(config: try config(start: 2, seeds: 5), log: log, fitter: ThresholdFitter(threshold: 2))
        search.rules.refinementCap = 4
        let outcome = try search.run()
        let b = try #require(outcome.boundary)
        #expect(outcome.refinementTrials == 0 && outcome.targetReached && b.low >= 1.5 && b.high <= 3.5, "\(b)")
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

@Suite("Growth near the boundary")
struct GrowthTests {
    @Test("a fitted trial that used most of its budget makes the next n √2 larger, not 2×")
    func slowGrowth() throws {
        /// Fits n ≤ 3000; fitted trials use 10% of the budget below 1000 and 90% from there.
        final class Slowing: Fitter {
            func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
                let fitted = n <= 3000
                return FitOutcome(result: fitted ? .fitted : .budgetExhausted, reason: "rule", samples: n, epochs: fitted ? (n < 1000 ? 30 : 270) : 300,
                                  steps: 0, finalLoss: 0, trainAccuracy: fitted ? 1 : 0.99, wrong: fitted ? 0 : 1, gradientNorm: nil, lossHistory: [], seconds: 0)
            }
        }
        let dir = TemporaryDirectory()
        let log = try scratchLog(dir, "growth")
        defer { FileSystem.remove(log.path) }
        let search = EMCSearch(config: try config(), log: log, fitter: Slowing())
        _ = try search.search(seed: 0)
        let visited = log.records.filter { $0.replicateIndex == 0 }.map(\.n)
        #expect(Array(visited.prefix(6)) == [100, 200, 400, 800, 1600, 2263], "\(visited)")
        let plain = EMCSearch(config: try config(), log: try scratchLog(dir, "growth-plain"), fitter: Slowing())
        plain.rules.slowGrowthNearBoundary = false
        _ = try plain.search(seed: 0)
        #expect(plain.log.records.map(\.n).contains(3200))
        FileSystem.remove(plain.log.path)
    }
}
