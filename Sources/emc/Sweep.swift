import ArgumentParser
import EMCCore
import EMCSearch
import Foundation

/// Where a sweep's searches run.
enum ExecutorKind: String, CaseIterable, ExpressibleByArgument {
    /// Child processes on this machine.
    case local
}

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an experiment manifest's grid of EMC searches, J at a time, resumably, then report.",
        discussion: """
        Each cell (data × model × optimizer) is an `emc run` in its own process with one BLAS thread, appending to the \
        experiment's results log; rerunning skips finished trials. Variants listed under "prepare" are made first if missing. \
        Paths in the manifest are relative to its folder; docs/experiments.md gives its keys.

        Example: emc sweep manifests/experiments/fmnist-mlp-width.json --jobs 2
        """)

    @Argument(help: "The experiment manifest (JSON).")
    var experiment: String

    @Option(help: "Searches run at once (separate processes).")
    var jobs = 1

    @Option(help: "Where the searches run.")
    var executor = ExecutorKind.local

    @Option(help: "Write the report's SVG plot here.")
    var svg: String?

    @Flag(help: "List the searches and the most work they can take, and run nothing.")
    var dryRun = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard (1...256).contains(jobs) else { throw ValidationError("--jobs must be between 1 and 256") }
    }

    func run() throws {
        let exp = try Experiment.load(experiment)
        let tasks = SweepRunner.tasks(exp)
        if dryRun { return try SweepPrinter.plan(exp, tasks, output: output) }
        let say: (String) -> Void = { if !output.json && !output.quiet { print($0) } }
        for made in try SweepRunner.prepare(exp) { say("prepared \(made)") }
        say("sweep \(exp.name): \(tasks.count) searches, \(jobs) at a time, log \(exp.logPath)")
        let progress = ProgressReporter("sweep", total: tasks.count, unit: "searches", quiet: output.quiet || output.json)
        let local = LocalExecutor(jobs: jobs, executable: EMCEnvironment.executablePath) { ["run", "--settings-file", $0, "--quiet", "--json"] }
        let failures = try local.run(tasks) { _ in progress.advance() }
        progress.finish()
        let report = Report.from(try ResultsLog(path: exp.logPath).records)
        if let svg { try AtomicFileWriter.write(Array(EMCPlot.svg(report, title: exp.name).utf8), to: svg) }
        if output.json { try printJSON(report) } else { print(report.text) }
        if !failures.isEmpty {
            for f in failures { FileHandle.standardError.write(Data(("failed: " + f.reason + "\n").utf8)) }
            throw ExitCode(1)
        }
    }
}

enum SweepPrinter {
    static func plan(_ exp: Experiment, _ tasks: [SweepTask], output: OutputOptions) throws {
        var plans: [(SweepTask, SearchPlan?)] = []
        for task in tasks { plans.append((task, try? SearchRun(task.settings).plan)) }
        if output.json {
            struct Row: Encodable { var label: String; var settings: SearchSettings; var plan: SearchPlan? }
            return try printJSON(plans.map { Row(label: $0.0.label, settings: $0.0.settings, plan: $0.1) })
        }
        print("dry run of \(exp.name): \(tasks.count) searches into \(exp.logPath)")
        for (task, plan) in plans {
            let cost = plan.map { String(format: "%d seed(s) × ≤ %d trials, ≤ %.3g sample-epochs", $0.seeds, $0.maxTrialsPerSeed, $0.maxSampleEpochs) }
                ?? "data not there yet (made by \"prepare\" first)"
            print("  \(task.label): \(cost)")
        }
        let total = plans.compactMap { $0.1?.maxSampleEpochs }.reduce(0, +)
        print(String(format: "at most %.3g sample-epochs of training in all (every trial using its whole budget)", total))
    }
}
