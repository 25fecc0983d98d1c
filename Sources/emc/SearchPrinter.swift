import EMCBench
import EMCCore
import EMCSearch
import Foundation

/// A whole number with thousands separators.
func formatCount(_ n: Int) -> String {
    var digits = String(abs(n)), out = ""
    while digits.count > 3 { out = "," + digits.suffix(3) + out; digits = String(digits.dropLast(3)) }
    return (n < 0 ? "-" : "") + digits + out
}

/// How `emc run` shows a search: a line per trial, a bar per trial's epochs on a terminal, the per-seed results,
/// the headline and the warnings with the flag that addresses each. With --json the lines go to stderr
/// (unless --quiet) and the summary to stdout.
final class SearchPrinter {
    let output: OutputOptions
    private var bar: ProgressReporter?
    private var config: SearchConfig?

    init(output: OutputOptions) { self.output = output }

    func say(_ line: String) {
        if output.quiet { return }
        if !output.json {
            print(line)
        } else {
            StandardStreams.error(line + "\n")
        }
    }

    func event(_ event: SearchEvent) {
        switch event {
        case .started(let config):
            self.config = config
            say("EMC search: \(config.model) (\(config.parameters) parameters) on \(config.dataName)\(config.variant.map { " [\($0)]" } ?? ""), "
                + "\(config.optimizer), batch \(config.fit.batch), ≤ \(config.fit.budget), \(config.seeds) seed(s)"
                + (config.trainer == .native ? "" : ", trained by \(config.trainer.rawValue)"))
        case .epoch(let n, let report):
            if bar == nil {
                let epochs = config.map { $0.fit.epochBudget(samples: n, fullBatch: $0.optimizer.kind == .gd) }
                bar = ProgressReporter("  n=\(n)", total: epochs, unit: "epochs", quiet: output.quiet || output.json)
            }
            bar?.set(completed: report.epoch)
        case .trial(let record, let new):
            bar?.finish()
            bar = nil
            let outcome = record.result.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0)
            say(String(format: "  seed %d  n=%-7d %@ %4d epochs  loss %.4f  wrong %-6d %@%@", record.seed, record.n, outcome, record.epochs,
                       record.loss, record.wrong, formatDuration(record.seconds), new ? "" : "  (from the log)")
                + (new ? record.resumedFromEpoch.map { "  (resumed from its checkpoint at epoch \($0))" } ?? "" : ""))
        case .seedFinished:
            break
        case .notice(let text):
            bar?.finish()
            bar = nil
            // A notice is not a result: stderr, even with --json, unless --quiet.
            if !output.quiet { StandardStreams.error("emc: \(text)\n") }
        }
    }

    /// What the run's trials and threads are, and whether emc chose them; a warning on stderr when they ask for more
    /// threads than the machine has cores (waiting threads then slow the working ones).
    func parallelism(_ search: SearchRun) {
        let (jobs, threads) = search.parallelism, cores = EMCEnvironment.cpuCount
        let chosen = search.settings.jobs == nil || search.settings.threads == nil
        say("\(jobs) trial(s) at once (--jobs \(jobs)), \(threads) thread(s) each (--threads \(threads)) on \(cores) core(s)"
            + (chosen ? ", as emc chose" : ""))
        if jobs * threads > cores && !output.quiet {
            StandardStreams.error("emc: --jobs \(jobs) × --threads \(threads) asks for \(jobs * threads) threads on \(cores) core(s): they will wait on "
                + "each other; the records are the same, but the search is slower than with jobs × threads ≤ \(cores)\n")
        }
    }

    func summary(_ summary: SearchSummary) throws {
        if output.json { return try printJSON(summary) }
        print("")
        if let pilot = summary.pilot, let n = pilot.first?.n {
            print("learning-rate pilot at n = \(n), seed 0: " + pilot.map { p in
                "lr \(p.lr) " + (p.fitStep.map { "fitted in \($0) steps" } ?? "\(p.result.rawValue), \(p.wrong) wrong") + (p.chosen ? " (chosen)" : "")
            }.joined(separator: "; "))
        }
        for r in summary.seeds {
            let accuracy = zipOptional(r.trainAccuracy, r.testAccuracy).map { String(format: "; train %.3f, test %.3f, gap %.3f", $0, $1, $0 - $1) } ?? ""
            let bracket = r.firstUnfitted.map { ", first unfitted \(formatCount($0)) (bracket \(String(format: "%.1f%%", 100 * (r.resolution ?? 0))))" } ?? ", fitted everything"
            let overturned = (r.overturned ?? []).isEmpty ? "" : "; failures overturned by a confirmation at n = " + r.overturned!.map(formatCount).joined(separator: ", ")
            let gap = r.gapAtN.map { String(format: "; gap %.3f at n = %d", $0, r.gapN ?? 0) } ?? ""
            print("  seed \(r.seed): EMC \(formatCount(r.emc))" + bracket + ", \(r.trials) trials" + accuracy + gap + overturned)
        }
        if let b = summary.boundary {
            print(String(format: "EMC (n50 of the boundary over all %d trials): %@%@, %.0f%% interval %@%@–%@%@ (±%.1f%%); n90 %@, n10 %@",
                         b.trials, summary.budgetBound ? "≥ " : "", formatCount(b.n50), b.level * 100, b.lowIsBound ? "≤" : "",
                         formatCount(b.low), formatCount(b.high), b.highIsBound ? " or more" : "", 100 * b.relativeHalfWidth,
                         b.describe(b.n90), b.describe(b.n10)))
            if let subsets = b.subsets, subsets >= 2, let spread = b.spread {
                print(String(format: "  the interval is for the population over %d subsets (seeds): their n50 spread by σ = %.2f in log n (up to %.2f)",
                             subsets, spread, b.spreadHigh ?? .nan))
            } else if b.subsets == 1 {
                print("  one subset: the interval is for this seed's sample of the data, not the population's n50 (--seeds 5 or more)")
            }
        } else {
            print("boundary: the trials do not straddle one (all fitted or all failed), so no n50 is estimated")
        }
        print("seeds' EMC: median \(formatCount(summary.emcMedian)), range \(formatCount(summary.emcMin))–\(formatCount(summary.emcMax)) over \(summary.seeds.count) seed(s)")
        let n50 = summary.boundary?.n50 ?? summary.emcMedian
        print(String(format: "%d parameters, EMC/params %.3f; %d trials (%d refinement), %.3g sample-epochs of training (refinement %.3g), %@",
                     summary.parameters, n50 / Double(summary.parameters), summary.trials, summary.refinementTrials, summary.sampleEpochs,
                     summary.refinementSampleEpochs, formatDuration(summary.seconds)))
        for w in summary.warnings { print("warning: " + Self.text(w)) }
    }

    func plan(_ search: SearchRun) throws {
        var plan = search.plan
        let (jobs, threads) = search.settings.parallelism(seeds: search.config.seeds)
        if search.settings.trainer == .native {
            var costs = CostModel()
            plan.time(samplesPerSecond: try costs.rate(search, threads: threads), jobs: jobs, threads: threads)
        }
        if output.json { return try printJSON(plan) }
        let c = search.config
        print("dry run: \(c.model) (\(c.parameters) parameters) on \(c.dataName), \(c.optimizer), batch \(c.fit.batch), ≤ \(c.fit.budget)")
        print("  \(plan.seeds) seed(s), at most \(plan.maxTrialsPerSeed) trials each; doubling visits n = \(plan.doublingSizes.map(String.init).joined(separator: ", "))")
        print(String(format: "  at most %.3g sample-epochs of training (every trial using its whole budget); %.3g if the EMC is near %@ (%@)",
                     plan.maxSampleEpochs, plan.sampleEpochsAtAssumedEMC, formatCount(Double(plan.assumedEMC)),
                     plan.assumedEMC == c.parameters ? "its parameter count" : "the data's size"))
        if let rate = plan.samplesPerSecond, let most = plan.maxSeconds, let near = plan.secondsAtAssumedEMC {
            print("  on this machine: \(formatCount(rate)) training samples/s a trial (measured now: batch \(search.rateProbe.batch), \(threads) thread(s)), "
                  + "\(jobs) trial(s) at once: about \(CostModel.duration(near)) if the EMC is near \(formatCount(Double(plan.assumedEMC))), "
                  + "at most \(CostModel.duration(most)); evaluation passes not counted")
        } else {
            print("  the torch trainer's time is not estimated here (it depends on the device)")
        }
        print("  trials already in \(search.settings.log) are not repeated")
    }

    /// A warning in words, with the flag that addresses it.
    static func text(_ warning: SearchWarning) -> String {
        switch warning {
        case .budgetExhausted(let seed, let n, let budget):
            return "seed \(seed): \(n.count) trial(s) ran out of the budget (\(budget); n = \(n.map(String.init).joined(separator: ", "))); "
                + "the EMC is a lower bound for this budget (--epochs or --steps raises it)"
        case .saddles(let seed, let n):
            return "seed \(seed): \(n.count) trial(s) stopped at a saddle of the loss (n = \(n.map(String.init).joined(separator: ", "))): "
                + "not fitted and not a minimum, so the EMC is a lower bound there (a longer budget or another optimizer may fit them)"
        case .fittedEverything(let samples):
            return "the model fitted all \(samples) samples: the EMC is at least the data size"
        case .budgetDecides(let gain, let half):
            return (zipOptional(gain, half).map { String(format: "budget-bound: n50 is %.0f%% above its value at half the budget (%@), from the same trials, ", $0 * 100, formatCount($1)) }
                    ?? "budget-bound: no trial had fitted by half the budget, ")
                + "so the budget, not a minimum, decides the boundary; n50 is a lower bound for this budget (--epochs raises it)"
        case .budgetBound(let share):
            return String(format: "budget-bound: fitted trials near the boundary used up to %.0f%% of the budget (a summary written before the budget check)", share * 100)
        case .intervalWide(let halfWidth, let target, let cap):
            return String(format: "the interval is ±%.1f%%, wider than the ±%.0f%% target, after the %d-trial refinement cap", halfWidth * 100, target * 100, cap)
        case .otherArithmetic(let trials, let revisions, let current):
            return "the log holds \(trials) trial(s) of this data, model and optimizer at the native trainer's arithmetic revision "
                + revisions.map(String.init).joined(separator: " and ") + "; this build computes the model at revision \(current) "
                + "(docs/methods.md, records), so those trials were not reused and are not pooled with these: emc report shows "
                + "each revision as its own row"
        }
    }
}

/// `--dry-run`'s time: a trial's training rate measured here (`TrainBenchmark.samplesPerSecond`, about a second), once per
/// distinct model, shape, batch, optimizer and thread count of one dry run.
struct CostModel {
    private var rates: [String: Double] = [:]

    mutating func rate(_ search: SearchRun, threads: Int) throws -> Double {
        let p = search.rateProbe
        let key = "\(p.model)|\(p.shape)|\(p.classes)|\(p.batch)|\(p.optimizer.kind)|\(threads)"
        if let known = rates[key] { return known }
        let rate = try TrainBenchmark.samplesPerSecond(model: p.model, shape: p.shape, classes: p.classes, batch: p.batch, optimizer: p.optimizer, threads: threads)
        rates[key] = rate
        return rate
    }

    /// Seconds as a person reads them: "42 s", "12 min", "3.4 h", "5.1 days".
    static func duration(_ seconds: Double) -> String {
        if seconds < 90 { return String(format: "%.0f s", seconds) }
        if seconds < 5400 { return String(format: "%.0f min", seconds / 60) }
        if seconds < 172_800 { return String(format: "%.1f h", seconds / 3600) }
        return String(format: "%.1f days", seconds / 86_400)
    }
}
