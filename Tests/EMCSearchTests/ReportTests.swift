import EMCCore
import EMCSearch
import EMCSweeps
import EMCReports
import EMCTestSupport
import EMCTrainer
import Foundation
import Testing

/// Records of one configuration: for each seed, trials on a log grid from 100 that fit below `boundary` and fail at and
/// above it, the first failure confirmed (as the search writes them).
func configurationRecords(data: String = "fm", variant: String? = nil, model: String, optimizer: String = "sgd:lr=0.01", parameters: Int,
                          boundary: Int, seeds: Int = 2, budget: String = "300 epochs", batch: Int = 128, confirm: Bool = true,
                          test: Double? = nil) -> [TrialRecord] {
    let config = [data, variant ?? "", model, optimizer, budget, "\(batch)"].joined(separator: "|")
    var out: [TrialRecord] = []
    for seed in 0..<seeds {
        var n = 100
        let jitter = 1 + 0.03 * Double(seed)
        while true {
            let fitted = Double(n) < Double(boundary) * jitter
            var r = TrialRecord(kind: .trial, key: config + "/\(seed)", config: config, seed: seed, n: n, result: fitted ? .fitted : .budgetExhausted,
                                fitted: fitted, reason: "", epochs: fitted ? 100 : 300, steps: 0, loss: 0, trainAccuracy: fitted ? 1 : 0.99, wrong: fitted ? 0 : 3,
                                gradientNorm: nil, seconds: 1, testAccuracy: test, data: data, variant: variant, model: model, optimizer: optimizer,
                                parameters: parameters, lossHistory: nil)
            r.replicate = 0
            r.role = .search
            r.budget = budget
            r.batch = batch
            r.epochBudget = 300
            r.fitEpoch = fitted ? 100 : nil
            out.append(r)
            if !fitted {
                if confirm {
                    r.replicate = 1
                    r.role = .confirm
                    out.append(r)
                }
                break
            }
            n = Int(Double(n) * 1.15)
        }
    }
    return out
}

@Suite("Reports: grouping, bounds, CSV, filters, plots and findings")
struct ReportTests {
    @Test("the two trainers' rows stay apart, get a trainer column, and the report says whether their n50 intervals overlap")
    func trainers() throws {
        func trained(_ records: [TrialRecord], by kind: TrainerKind, config: String) -> [TrialRecord] {
            records.map { r in
                var r = r
                r.config = config
                r.key = config + "/\(r.seed)"
                r.trainer = TrainerRecord(kind: kind)
                return r
            }
        }
        let native = trained(configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 2000, seeds: 3), by: .native, config: "a")
        let close = trained(configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 2100, seeds: 3), by: .torch, config: "b")
        let report = Report.from(native + close)
        #expect(report.rows.map(\.trainer) == ["native", "torch"])
        #expect(report.text.contains("| trainer"))
        #expect(report.trainerPairs.count == 1 && report.trainerPairs[0].overlap)
        #expect(report.text.contains("the native and torch trainers' n50 intervals overlap"))
        let far = trained(configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 8000, seeds: 3), by: .torch, config: "c")
        let apart = Report.from(native + far)
        #expect(apart.trainerPairs.count == 1 && !apart.trainerPairs[0].overlap)
        #expect(apart.text.contains("n50 intervals do not overlap"))
        // A log without trainer fields is the native trainer's; one trainer alone gets no column.
        #expect(!Report.from(configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 2000)).text.contains("| trainer"))
        #expect(ReportFilter.keys.contains("trainer"))
    }

    @Test("rows of a model at two arithmetic revisions stay apart and the trainer column tells them apart; a revision's native row still pairs with the torch trainer's")
    func arithmeticRevisions() throws {
        func trained(_ records: [TrialRecord], kind: TrainerKind, arithmetic: Int?, config: String) -> [TrialRecord] {
            records.map { r in
                var r = r
                r.config = config
                r.key = config + "/\(r.seed)"
                r.trainer = TrainerRecord(kind: kind)
                r.trainer?.arithmetic = arithmetic
                return r
            }
        }
        let spec = "vit:dim=16,depth=1,heads=2,patch=4"
        let older = trained(configurationRecords(model: spec, parameters: 3514, boundary: 370, seeds: 2), kind: .native, arithmetic: 2, config: "a")
        let newer = trained(configurationRecords(model: spec, parameters: 3514, boundary: 370, seeds: 2), kind: .native, arithmetic: 3, config: "b")
        let report = Report.from(older + newer)
        #expect(report.rows.map(\.trainer) == ["native (arithmetic 2)", "native (arithmetic 3)"])
        #expect(report.text.contains("| trainer") && report.text.contains("native (arithmetic 3)"))
        let torch = trained(configurationRecords(model: spec, parameters: 3514, boundary: 380, seeds: 2), kind: .torch, arithmetic: nil, config: "c")
        #expect(Report.from(newer + torch).trainerPairs.count == 1)
    }

    @Test("rows group by the full configuration; settings that differ get a column; a log read twice counts once")
    func grouping() throws {
        let a = configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 2000, budget: "300 epochs")
        let b = configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 3000, budget: "600 epochs")
        let report = Report.from(a + b + a)
        #expect(report.rows.count == 2)
        #expect(report.rows.map(\.trials) == [a.count, b.count], "the repeated log adds nothing")
        let text = report.text
        #expect(text.contains("| budget") && text.contains("600 epochs"), "the budget differs, so it is a column")
        #expect(!text.contains("| batch"), "the batch does not differ")
        let n50s = report.rows.map(\.emc)
        #expect(abs(n50s[0] - 2000) < 300 && abs(n50s[1] - 3000) < 450, "\(n50s)")
        #expect(report.rows.allSatisfy { $0.seeds.allSatisfy(\.finished) && !$0.lowerBound })
    }

    @Test("a search stopped while n was still growing is unfinished and reads as a lower bound")
    func unfinished() throws {
        var records = configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 2000)
        // Seed 1 was killed after its fitted trials: drop its failures.
        records.removeAll { $0.seed == 1 && !$0.fitted }
        let row = try #require(Report.from(records).rows.first)
        #expect(row.unfinished && row.lowerBound && row.headline.hasPrefix("≥ "))
        #expect(row.seeds.first { $0.seed == 1 }?.finished == false)
        #expect(Report.from(records).text.contains("unfinished"))
        // Nothing failed anywhere: no boundary, a lower bound at the largest fitted n.
        let allFit = try #require(Report.from(records.filter(\.fitted)).rows.first)
        #expect(allFit.boundary == nil && allFit.lowerBound)
    }

    @Test("budget-bound when n50 at half the budget (from the same trials) is clearly lower: ≥ in the headline; slow trials within half the budget, or a cosine schedule, are not")
    func budgetBound() throws {
        var records = configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 2000, seeds: 3)
        for i in records.indices where records[i].fitted && records[i].n > 1500 { records[i].fitEpoch = 290 }
        let row = try #require(Report.from(records).rows.first)
        let check = try #require(row.budgetCheck)
        #expect(row.budgetBound && row.headline.hasPrefix("≥ ") && check.measured && (check.gain ?? 0) > 0.2 && (check.gainLow ?? 0) > 0, "\(check)")
        #expect(check.exhaustedShare == 1 && Report.from(records).text.contains("budget-bound"))
        // Slow near the boundary, but within half the budget: the same n50 at half the budget.
        for i in records.indices where records[i].fitted && records[i].n > 1500 { records[i].fitEpoch = 149 }
        let slow = try #require(Report.from(records).rows.first)
        #expect(!slow.budgetBound && slow.budgetCheck?.gain == 0, "\(String(describing: slow.budgetCheck))")
        // Under cosine, a run cut at half its budget is not a half-budget run: nothing is derived.
        var cosine = configurationRecords(model: "mlp:width=8", optimizer: "sgd:lr=0.01,schedule=cosine", parameters: 6000, boundary: 2000, seeds: 3)
        for i in cosine.indices where cosine[i].fitted && cosine[i].n > 1500 { cosine[i].fitEpoch = 290 }
        let horizon = try #require(Report.from(cosine).rows.first)
        #expect(!horizon.budgetBound && horizon.budgetCheck?.measured == false && horizon.budgetCurve.isEmpty)
    }

    @Test("per-seed CSV, filters, and a failure confirmed only once does not end a seed")
    func seedsAndFilters() throws {
        let records = configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 2000, seeds: 3)
            + configurationRecords(model: "cnn:channels=4,layers=2", parameters: 3000, boundary: 4000, seeds: 3)
        let report = Report.from(records)
        #expect(report.seedsCSV.split(separator: "\n").count == 1 + 6)
        let cnn = Report.from(records, filters: [try ReportFilter(parsing: "family=cnn")])
        #expect(cnn.rows.count == 1 && cnn.rows[0].family == .cnn)
        #expect(Report.from(records, filters: [try ReportFilter(parsing: "model=width=8"), try ReportFilter(parsing: "budget=300")]).rows.count == 1)
        #expect(throws: EMCError.self) { _ = try ReportFilter(parsing: "colour=red") }
        // A single failed trial below a seed's confirmed failure (its confirmation fitted) does not end that seed.
        var glitch = configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 2000, seeds: 1)
        var lone = glitch[2]
        lone.fitted = false
        lone.result = .budgetExhausted
        glitch[2].replicate = 1
        glitch[2].role = .confirm
        glitch.append(lone)
        let seed = try #require(Report.from(glitch).rows.first?.seeds.first)
        #expect(seed.emc > 1500, "EMC \(seed.emc)")
    }

    @Test("plots: lines per family against width, bounds as open triangles, legends whole, the boundary panels")
    func plots() throws {
        var records = configurationRecords(model: "mlp:width=8,depth=2,act=relu", parameters: 6000, boundary: 2000)
            + configurationRecords(model: "mlp:width=16,depth=2,act=relu", parameters: 13000, boundary: 3500)
            + configurationRecords(data: "a-data-set-with-a-rather-long-name-indeed", model: "cnn:channels=4,layers=2", parameters: 3000, boundary: 5000)
        records.removeAll { $0.model.hasPrefix("cnn") && !$0.fitted }
        let report = Report.from(records)
        let svg = EMCPlot.svg(report, x: .width, by: .family)
        #expect(svg.contains("mlp on fm") && svg.contains("<polyline"))
        #expect(!svg.contains("a-data-set-with-a-rather-long-name-indeed"), "the CNN has no width: not drawn against width")
        let byParameters = EMCPlot.svg(report, x: .parameters, by: .condition)
        #expect(byParameters.contains("a-data-set-with-a-rather-long-name-indeed"), "legend entries are never cut")
        #expect(byParameters.contains("<path d=\"M"), "the unfinished CNN is a lower bound")
        #expect(byParameters.contains("bars: 90% interval"))
        let panels = BoundaryPlot.svg(report, records: records)
        #expect(panels.contains("p(fit)") && panels.contains("n50") && panels.contains("budget (epochs)"))
    }

    @Test("findings: each comparison is a test; a clear difference supports, a few percent cannot decide; finding 1 counts rows whose n50 the budget does not decide, and lower bounds only against it; architectures compare at one activation")
    func findings() throws {
        let random = "labels=random,classes=10,seed=0"
        var records: [TrialRecord] = []
        // CNNs fit far more per parameter than MLPs, on both label conditions.
        records += configurationRecords(model: "cnn:channels=4,layers=2,act=relu", parameters: 2000, boundary: 8000, seeds: 3)
        records += configurationRecords(model: "mlp:width=3,depth=1,act=relu", parameters: 2400, boundary: 1500, seeds: 3)
        records += configurationRecords(data: "fm+random", variant: random, model: "cnn:channels=4,layers=2,act=relu", parameters: 2000, boundary: 700, seeds: 3)
        records += configurationRecords(data: "fm+random", variant: random, model: "mlp:width=3,depth=1,act=relu", parameters: 2400, boundary: 300, seeds: 3)
        // tanh: the same MLP, its boundary within a few percent of ReLU's.
        records += configurationRecords(model: "mlp:width=3,depth=1,act=tanh", optimizer: "sgd:lr=0.03", parameters: 2400, boundary: 1550, seeds: 3)
        let findings = Findings.evaluate(Report.from(records))
        let verdict = { (k: Int) in findings.first { $0.number == k }!.verdict }
        #expect(verdict(2) == .supports && findings[1].forClaim >= 1, "\(findings[1].evidence)")
        // Architectures are compared at matched sizes: an MLP of ten times the CNN's parameters is not a pair.
        let large = configurationRecords(model: "mlp:width=30,depth=1,act=relu", parameters: 24_000, boundary: 1500, seeds: 3)
        let unmatched = Findings.evaluate(Report.from(records + large))[1]
        #expect(unmatched.forClaim + unmatched.against + unmatched.notSignificant == findings[1].forClaim + findings[1].against + findings[1].notSignificant,
                "\(unmatched.evidence)")
        #expect(findings[1].rule.contains("within 1.5×"))
        // The tanh MLP is no pair for the ReLU CNN: the activation is held equal (finding 5 compares activations).
        #expect(findings[1].forClaim + findings[1].against + findings[1].notSignificant == 2, "\(findings[1].evidence)")
        #expect(!findings[1].evidence.contains { $0.contains("act=tanh") }, "\(findings[1].evidence)")
        #expect(verdict(5) == .undecided, "\(findings[4].evidence)")
        #expect(verdict(3) == .notMeasured)
        // Every failure in these logs ran out of budget, but every fit came by a third of it: n50 does not grow with the
        // budget, and each row is counted as budget-stable (none at minima).
        #expect(findings[0].verdict != .notMeasured && findings[0].evidence.contains { $0.hasPrefix("0 of the 5 counted") }, "\(findings[0].evidence)")
        #expect(findings[0].evidence.filter { $0.contains("(budget-stable: n50 +0% from half the budget)") }.count == 5, "\(findings[0].evidence)")
        // The same failures with every fit in the budget's last third: n50 at half the budget is far lower, the budget
        // decides n50, and every row is a lower bound. Those below their parameter count cannot support the claim; the
        // CNN's, four times its parameters, contradicts it (more budget would only fit more).
        let late = records.map { r -> TrialRecord in
            var r = r
            if r.fitted { r.fitEpoch = r.n < 150 ? 100 : 250; r.epochs = r.fitEpoch! }
            return r
        }
        let lateOne = Findings.evaluate(Report.from(late))[0]
        #expect(lateOne.verdict == .contradicts && lateOne.against == 1 && lateOne.forClaim == 0, "\(lateOne.evidence)")
        #expect(lateOne.evidence.filter { $0.contains("a lower bound: counts only if above") }.count == 5, "\(lateOne.evidence)")
        // A row under a horizon schedule has no budget check: its failures ran out of budget and nothing says whether
        // more would fit more, so it is not counted.
        let horizon = configurationRecords(model: "mlp:width=8,depth=1,act=relu", optimizer: "sgd:lr=0.01,schedule=cosine", parameters: 6000, boundary: 1000, seeds: 3)
        let horizonOne = Findings.evaluate(Report.from(horizon))[0]
        #expect(horizonOne.verdict == .notMeasured && horizonOne.evidence.allSatisfy { $0.contains("not counted") }, "\(horizonOne.evidence)")
        // One subset of three fitted late, the others early: no significant gain, so the row counts, but its n50 is
        // tested for being below the parameter count only after it is raised by the gain's upper end.
        var uneven = configurationRecords(model: "mlp:width=8,depth=1,act=relu", parameters: 6000, boundary: 1000, seeds: 3)
        for i in uneven.indices where uneven[i].seed == 0 && uneven[i].fitted && uneven[i].n > 600 { uneven[i].fitEpoch = 250; uneven[i].epochs = 250 }
        let unevenReport = Report.from(uneven)
        let check = try #require(unevenReport.rows.first?.budgetCheck)
        #expect(!check.bound && (check.gainHigh ?? 0) > 0.2, "\(check)")
        let unevenOne = Findings.evaluate(unevenReport)[0]
        #expect(unevenOne.evidence.contains { $0.contains(String(format: "tested at %.2f× n50", 1 + check.gainHigh!)) }, "\(unevenOne.evidence)")
        // Just below its parameter count, the raised n50 is above it: that neither supports nor contradicts the claim.
        let near = uneven.map { r -> TrialRecord in var r = r; r.parameters = 1200; return r }
        let nearOne = Findings.evaluate(Report.from(near))[0]
        #expect(nearOne.verdict == .undecided && nearOne.notSignificant == 1 && nearOne.against == 0, "\(nearOne.evidence)")
        #expect(Findings.text(findings).contains("cannot decide") && findings[1].rule.contains("Holm"))
        // Failures that converged short of a fit: finding 1 is tested, and a model far below its parameter count supports it.
        var minima = configurationRecords(model: "mlp:width=64,depth=2,act=relu", parameters: 60_000, boundary: 2000, seeds: 3)
        for i in minima.indices where !minima[i].fitted { minima[i].result = .convergedUnfit }
        let one = Findings.evaluate(Report.from(minima))[0]
        #expect(one.verdict == .supports && one.forClaim == 1, "\(one.evidence)")
        // SGD clearly above GD at equal steps: supports; at equal epochs: not counted.
        let sgd = configurationRecords(model: "mlp:width=6,depth=2,act=relu", optimizer: "sgd:lr=0.01,momentum=0.9", parameters: 5000, boundary: 3000, seeds: 3, budget: "2000 steps")
        let gd = configurationRecords(model: "mlp:width=6,depth=2,act=relu", optimizer: "gd:lr=0.1,momentum=0.9", parameters: 5000, boundary: 600, seeds: 3, budget: "2000 steps")
        #expect(Findings.evaluate(Report.from(sgd + gd)).first { $0.number == 3 }?.verdict == .supports)
        let gdEpochs = configurationRecords(model: "mlp:width=6,depth=2,act=relu", optimizer: "gd:lr=0.1,momentum=0.9", parameters: 5000, boundary: 600, budget: "300 epochs")
        let sgdEpochs = configurationRecords(model: "mlp:width=6,depth=2,act=relu", optimizer: "sgd:lr=0.01,momentum=0.9", parameters: 5000, boundary: 3000, budget: "300 epochs")
        #expect(Findings.evaluate(Report.from(sgdEpochs + gdEpochs)).first { $0.number == 3 }?.verdict == .notMeasured)
        // Significant both ways: mixed, not "cannot decide".
        let gdLow = configurationRecords(model: "mlp:width=9,depth=2,act=relu", optimizer: "gd:lr=0.1", parameters: 5000, boundary: 6000, seeds: 3, budget: "2000 steps")
        let sgdLow = configurationRecords(model: "mlp:width=9,depth=2,act=relu", optimizer: "sgd:lr=0.01", parameters: 5000, boundary: 900, seeds: 3, budget: "2000 steps")
        #expect(Findings.evaluate(Report.from(sgd + gd + gdLow + sgdLow)).first { $0.number == 3 }?.verdict == .mixed)
    }

    @Test("a run at the paper's 99.5% derives its EMC at 99% from the same trials, and none at 99.9%, which it never measured")
    func thresholdsBelowTheRun() throws {
        func records(threshold: Double) -> [TrialRecord] {
            configurationRecords(model: "mlp:width=4,depth=1,act=relu", parameters: 3190, boundary: 1000, seeds: 3).map { r in
                var r = r
                r.fitThreshold = threshold
                r.thresholdEpochs = r.fitted ? ["0.99": 50, "0.995": 60, "0.999": 70] : ["0.99": 200]
                return r
            }
        }
        let paper = try #require(Report.from(records(threshold: 0.995)).rows.first)
        #expect(paper.thresholdEMCs.map(\.at) == [0.99], "\(paper.thresholdEMCs)")
        let full = try #require(Report.from(records(threshold: 1)).rows.first)
        #expect(full.thresholdEMCs.map(\.at) == [0.99, 0.995, 0.999], "\(full.thresholdEMCs)")
    }

    @Test("a learning-rate pilot at seed 0 is no seed of a search that starts at seed 3")
    func pilotIsNoSeed() throws {
        var records = configurationRecords(model: "mlp:width=4,depth=1,act=relu", parameters: 3190, boundary: 400, seeds: 5)
            .filter { $0.seed >= 3 }
        var pilot = records[0]
        pilot.seed = 0
        pilot.n = 500
        pilot.role = .pilot
        pilot.fitted = false
        pilot.result = .budgetExhausted
        records.append(pilot)
        let row = try #require(Report.from(records).rows.first)
        #expect(row.seeds.map(\.seed) == [3, 4] && !row.unfinished && !row.lowerBound, "\(row.seeds)")
    }

    @Test("a paired comparison estimates the mean of the subsets' log ratios, wherever the pooled n50s lie")
    func pairedEstimate() throws {
        var a = Report.from(configurationRecords(model: "mlp:width=4,depth=1,act=relu", parameters: 3190, boundary: 1000, seeds: 4)).rows[0]
        var b = Report.from(configurationRecords(model: "mlp:width=4,depth=1,act=tanh", parameters: 3190, boundary: 1000, seeds: 4)).rows[0]
        // Two groups of subsets: the pooled curve's n50 at the upper one.
        a.boundary!.subsetN50s = [2400, 2800, 150, 120]
        a.boundary!.n50 = 2400
        b.boundary!.subsetN50s = [100, 120, 80, 90]
        b.boundary!.n50 = 95
        let (ratio, _) = try #require(Findings.test(a, b))
        let expected = exp(zip(a.boundary!.subsetN50s!, b.boundary!.subsetN50s!).map { log($0 / $1) }.reduce(0, +) / 4)
        #expect(abs(ratio - expected) < 1e-9 && ratio < 2400.0 / 95 / 2, "\(ratio) \(expected)")
    }

    @Test("a lower bound whose n50 lies past the largest n its trials reached enters a comparison at that n")
    func lowerBoundPastTheData() throws {
        let cnn = Report.from(configurationRecords(model: "cnn:channels=4,layers=2,act=relu", parameters: 2000, boundary: 4000, seeds: 3)).rows[0]
        let mlp = Report.from(configurationRecords(model: "mlp:width=3,depth=1,act=relu", parameters: 2400, boundary: 1000, seeds: 3)).rows[0]
        let top = try #require(cnn.boundary?.largestTried)
        var past = cnn
        past.lowerBound = true
        past.boundary!.n50 = Double(top) * 1.2
        past.boundary!.subsetN50s = past.boundary!.subsetN50s!.map { _ in Double(top) * 1.2 }
        var at = past
        at.boundary!.n50 = Double(top)
        at.boundary!.subsetN50s = at.boundary!.subsetN50s!.map { _ in Double(top) }
        let (ratioPast, pPast) = try #require(Findings.test(past, mlp))
        let (ratioAt, pAt) = try #require(Findings.test(at, mlp))
        #expect(abs(ratioPast - ratioAt) < 1e-9 && abs(pPast - pAt) < 1e-12, "\(ratioPast) \(ratioAt)")
        // Not a lower bound: the n50 is the estimate, wherever it lies.
        var estimate = past
        estimate.lowerBound = false
        estimate.boundary!.highIsBound = false
        #expect(try #require(Findings.test(estimate, mlp)).ratio > ratioAt * 1.19)
    }

    @Test("the gain/gap rank correlation uses the pairs' gaps at their common n only, tested by permutation, its power stated")
    func gapAtCommonN() throws {
        var records: [TrialRecord] = []
        for (i, w) in [2, 4, 6, 8, 10, 12, 14].enumerated() {
            let model = "mlp:width=\(w),depth=2,act=relu"
            var real = configurationRecords(model: model, parameters: 1000 * w, boundary: 1000 + 700 * i, test: 0.8)
            var gap = real[0]
            // The last pair's gap is at another n: it is left out, not mixed in.
            gap.n = i == 6 ? 800 : 400
            gap.role = .gap
            gap.replicate = EMCSearch.gapReplicate
            gap.trainAccuracy = 1
            gap.testAccuracy = 0.9 - 0.02 * Double(i)
            real.append(gap)
            records += real
            records += configurationRecords(data: "fm+random", variant: "labels=random,classes=10,seed=0", model: model, parameters: 1000 * w,
                                            boundary: 500 + 20 * i, test: 0.1)
        }
        let report = Report.from(records)
        #expect(report.gainGapPairs == 6 && report.gainGapN == 400)
        let r = try #require(report.gainGapCorrelation)
        #expect(r > 0.99, "a larger gain comes with a larger gap at n = 400 here")
        let four = try #require(Findings.evaluate(report).first { $0.number == 4 })
        #expect(four.verdict == .contradicts, "\(four.evidence)")
        #expect(four.evidence[0].contains("power at ρ = −0.5 with 6 pairs") , "\(four.evidence)")
        #expect(report.text.contains("at n = 400"))
    }

    @Test("the search trains every seed at the common n in a trial of its own, even where a search trial ran there")
    func gapTrials() throws {
        final class Evaluating: Fitter {
            func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
                var o = FitOutcome(result: n <= 3000 ? .fitted : .budgetExhausted, reason: "rule", samples: n, epochs: 10, steps: 10, finalLoss: 0,
                                   trainAccuracy: n <= 3000 ? 1 : 0.99, wrong: n <= 3000 ? 0 : 1, gradientNorm: nil, lossHistory: [], seconds: 0)
                o.testAccuracy = 0.8
                return o
            }
        }
        let dir = TemporaryDirectory()
        let log = try ResultsLog(path: dir.file("log.jsonl"))
        let search = EMCSearch(config: try config(seeds: 2), log: log, fitter: Evaluating())
        search.gapN = 400  // doubling from 100 visits 400 too
        let outcome = try search.run()
        #expect(outcome.seeds.allSatisfy { $0.gapN == 400 && $0.gapTestAccuracy == 0.8 && abs(($0.gapAtN ?? 0) - 0.2) < 1e-12 })
        let gaps = log.records.filter { $0.role == .gap }
        #expect(gaps.count == 2 && gaps.allSatisfy { $0.n == 400 && $0.replicate == EMCSearch.gapReplicate })
        let row = try #require(Report.from(log.records).rows.first)
        #expect(row.gapN == 400 && abs((row.gapAtN ?? 0) - 0.2) < 1e-12)
    }

    @Test("EMC against budget cuts each trial at the same share of its own budget (small n trains longer under a minimum of steps)")
    func budgetCurve() throws {
        var records = configurationRecords(model: "mlp:width=8", parameters: 6000, boundary: 2000)
        // Small n had a budget of 3,000 epochs (the minimum of steps) and fitted at epoch 600: a fifth of it.
        for i in records.indices where records[i].n < 300 { records[i].epochBudget = 3000; records[i].fitEpoch = 600 }
        let curve = try #require(Report.from(records).rows.first?.budgetCurve)
        #expect(curve.map(\.at) == [75, 150, 225, 300])
        #expect(curve[0].bound != "≤ 100", "at a quarter of the budget the small trials had fitted (600 ≤ 750 epochs)")
    }

    @Test("an experiment's parts: their own grids and settings, shared cells once, unknown keys named")
    func parts() throws {
        let dir = TemporaryDirectory()
        let manifest = #"""
        {"name": "p", "data": ["a"], "models": ["mlp:width=4"], "optimizers": ["sgd:lr=0.01"], "epochs": 50, "lrGrid": [0.01, 0.1],
         "parts": [{"name": "all"}, {"models": ["mlp:width=4"], "optimizers": ["sgd:lr=0.01", "gd:lr=0.1"], "steps": 500},
                   {"name": "again", "models": ["mlp:width=4"]}]}
        """#
        try AtomicFileWriter.write(Array(manifest.utf8), to: dir.file("p.json"))
        let e = try Experiment.load(dir.file("p.json"))
        #expect(e.cells.count == 3, "part 0's cell, part 1's two (its SGD has a step budget: another configuration), part 2 repeats part 0")
        let stepped = try e.cells.filter { try e.settings($0).training.budget.steps == 500 }
        let settings = try stepped.map { try e.settings($0) }
        #expect(stepped.count == 2 && settings.allSatisfy { $0.lrGrid == [0.01, 0.1] && $0.training.budget.epochs == 50 })
        let bad = manifest.replacingOccurrences(of: #""name": "again""#, with: #""nmae": "again""#)
        try AtomicFileWriter.write(Array(bad.utf8), to: dir.file("bad.json"))
        let error = #expect(throws: EMCError.self) { _ = try Experiment.load(dir.file("bad.json")) }
        #expect(error?.description.contains("parts[2].nmae") == true, "\(String(describing: error))")
    }
}
