import ArgumentParser
import EMCCore
import EMCSearch
import EMCSweeps
import EMCReports
import EMCTrainer
import Foundation

/// Where a sweep's searches run.
enum ExecutorKind: String, CaseIterable, ExpressibleByArgument {
    /// Child processes on this machine.
    case local
    /// A Slurm job array (one configuration per task) and a collect job after it.
    case slurm
}

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an experiment manifest's grid of EMC searches, J at a time, resumably, then report; here or on Slurm.",
        discussion: """
        Each cell (data × model × optimizer) is an `emc run` in its own process with one BLAS thread, appending to the \
        experiment's results log; rerunning skips finished trials. Variants listed under "prepare" are made first if missing. \
        Paths in the manifest are relative to its folder; docs/experiments.md gives its keys.

        With --executor slurm the cells become one `sbatch --array` job (one configuration per task, one core each) writing \
        into a sweep folder (--sweep-dir, default beside the log: runs/NAME.sweep), and a collect job that merges the \
        results and writes the report once every task succeeded (or run `emc sweep MANIFEST --collect`). Rerunning submits \
        only unfinished tasks; a killed task resumes from its log and its running trial from a checkpoint. \
        `--status` counts done, running, pending and failed tasks. docs/cluster.md says more.

        Examples: emc sweep manifests/experiments/fmnist-mlp-width.json --jobs 2
                  emc sweep manifests/experiments/fmnist-mlp-width.json --executor slurm --partition cpu --time 4:00:00 --jobs 50
        """)

    @Argument(help: "The experiment manifest (JSON).")
    var experiment: String

    @Option(help: "Searches run at once (separate processes; with Slurm, the array's throttle).")
    var jobs = 1

    @Option(help: "Where the searches run: local (processes here) or slurm (a job array).")
    var executor = ExecutorKind.local

    @Option(help: "Slurm: the partition.")
    var partition: String?

    @Option(help: "Slurm: each task's time limit (sbatch --time, e.g. 4:00:00); a task cut off resumes when resubmitted.")
    var time: String?

    @Option(name: .customLong("sbatch-arg"), parsing: .unconditionalSingleValue, help: "Slurm: another sbatch option, passed through (repeat it: --sbatch-arg=--account=X).")
    var sbatchArguments: [String] = []

    @Option(help: "Slurm: the sweep folder on the shared filesystem (default: beside the results log, runs/NAME.sweep).")
    var sweepDir: String?

    @Option(parsing: .unconditional, help: "Seconds between a running trial's checkpoints (Slurm sweeps).")
    var checkpointInterval = 300.0

    @Flag(help: "Slurm: merge the tasks' logs into the results log and write the report (what the collect job runs).")
    var collect = false

    @Flag(help: "Slurm: done, running, pending and failed tasks, with each failed task's last lines of stderr.")
    var status = false

    @Option(help: "Write the report's SVG plot here.")
    var svg: String?

    @Option(help: "Write the HTML report into this folder (as emc report --html; the manifest's html key names one too).")
    var html: String?

    @Flag(help: "List the searches and the most work they can take, and run nothing.")
    var dryRun = false

    @Flag(help: "Replace a file already at --svg, and the report in a non-empty --html folder (never the manifest or the results log).")
    var force = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard (1...100_000).contains(jobs) else { throw ValidationError("--jobs must be between 1 and 100000") }
        guard !(collect && status) else { throw ValidationError("--collect and --status are separate steps: give one") }
        guard checkpointInterval >= 0 else { throw ValidationError("--checkpoint-interval cannot be negative") }
        if executor == .local && (partition != nil || time != nil || !sbatchArguments.isEmpty) {
            throw ValidationError("--partition, --time and --sbatch-arg are for --executor slurm")
        }
    }

    func run() throws {
        let exp = try Experiment.load(experiment)
        let tasks = try SweepRunner.tasks(exp)
        if svg != nil || exp.htmlPath != nil || html != nil {
            let data = Set(tasks.map(\.settings.data)).sorted()
            let folder = executor == .slurm ? [try SweepFolder(experiment: exp, override: sweepDir).path] : []
            let inputs = [experiment, exp.logPath] + data + folder
            if let svg { try OutputPaths.check([svg], force: force, inputs: inputs) }
            // Checked before anything runs; a dry run, a status and a collect job write no report yet (collect checks when it does).
            if !dryRun && !status && !collect, let (dir, replace) = htmlFolder(exp) {
                try HTMLReport.checkOutput(dir, force: replace, inputs: inputs, outputs: [svg].compactMap { $0 })
            }
        }
        if dryRun { return try SweepPrinter.plan(exp, tasks, jobs: jobs, output: output) }
        let say: (String) -> Void = { if !output.json && !output.quiet { print($0) } }
        let folder = try SweepFolder(experiment: exp, override: sweepDir)
        if status { return try SweepPrinter.status(try SlurmSweep.status(exp, folder: folder), folder: folder, output: output) }
        if collect {
            let collected = try SlurmSweep.collect(exp, folder: folder)
            say("collected \(collected.added) new record(s) from \(collected.tasks) task(s) of \(folder.path) into \(exp.logPath)")
            if !collected.unfinished.isEmpty {
                StandardStreams.error("warning: \(collected.unfinished.count) task(s) have not finished (\(collected.unfinished.map(String.init).joined(separator: ", "))); "
                    + "the report covers what they logged so far (emc sweep \(experiment) --status says why)\n")
            }
            return try report(exp)
        }
        for made in try SweepRunner.prepare(exp) { say("prepared \(made)") }
        _ = try SweepRunner.plans(tasks)  // every search's model and data checked before any runs
        switch executor {
        case .local:
            say("sweep \(exp.name): \(tasks.count) searches, \(jobs) at a time, log \(exp.logPath)")
            let progress = ProgressReporter("sweep", total: tasks.count, unit: "searches", quiet: output.quiet || output.json)
            let local = LocalExecutor(jobs: jobs, executable: EMCEnvironment.executablePath) { ["run", "--settings-file", $0, "--quiet", "--json"] }
            guard case .finished(let failures) = try local.run(tasks, finished: { _ in progress.advance() }) else { return }
            progress.finish()
            try report(exp)
            if !failures.isEmpty {
                for f in failures { StandardStreams.error("failed: " + f.reason + "\n") }
                throw ExitCode(1)
            }
        case .slurm:
            let emc = EMCEnvironment.executablePath
            var collectCommand = [emc, "sweep", FileSystem.absolute(experiment), "--collect", "--sweep-dir", folder.path]
            if let html { collectCommand += ["--html", FileSystem.absolute(html)] + (force ? ["--force"] : []) }
            var options = SlurmOptions(taskCommand: [emc, "sweep-task"], collectCommand: collectCommand)
            options.partition = partition
            options.time = time
            options.throttle = jobs > 1 ? jobs : 0
            options.extraArguments = sbatchArguments
            options.checkpointInterval = checkpointInterval
            guard case .submitted(let s) = try SlurmExecutor(folder: folder, options: options).run(tasks, finished: { _ in }) else { return }
            if output.json { return try printJSON(s) }
            if output.quiet { return }
            if let job = s.arrayJob {
                print("submitted \(s.submitted.count) of \(tasks.count) task(s) as Slurm job \(job) (array \(job)_[\(s.submitted.map(String.init).joined(separator: ","))]), "
                      + "collect job \(s.collectJob ?? "-") after it; folder \(s.folder)")
            } else {
                print("nothing to submit: \(s.finished.count) task(s) finished, \(s.queued.count) still queued or running")
            }
            if !s.finished.isEmpty && s.arrayJob != nil { print("  \(s.finished.count) task(s) already finished are not submitted again") }
            if !s.queued.isEmpty && s.arrayJob != nil { print("  \(s.queued.count) task(s) still queued or running from an earlier submission are left to it") }
            print("follow it with: emc sweep \(experiment) --status\(sweepDir.map { " --sweep-dir \($0)" } ?? "")")
        }
    }

    /// The HTML report's folder (--html, else the manifest's), and whether an earlier report there is replaced: with
    /// --force, or when the manifest names the folder and it holds nothing but an earlier report.
    private func htmlFolder(_ exp: Experiment) -> (String, Bool)? {
        if let html { return (html, force) }
        guard let dir = exp.htmlPath else { return nil }
        return (dir, force || HTMLReport.holdsOnlyReport(dir, inputs: [experiment, exp.logPath]))
    }

    private func report(_ exp: Experiment) throws {
        let records = try ResultsLog.records(at: exp.logPath)
        let report = Report.from(records)
        if let svg { try AtomicFileWriter.write(Array(EMCPlot.svg(report, title: exp.name).utf8), to: svg) }
        if output.json { try printJSON(report) } else if !output.quiet { print(report.text) }
        if let (dir, replace) = htmlFolder(exp) {
            if collect { try HTMLReport.checkOutput(dir, force: replace, inputs: [experiment, exp.logPath], outputs: [svg].compactMap { $0 }) }
            let page = try HTMLReport.write(ReportDocument(report: report, findings: Findings.evaluate(report)), records: records, sources: [exp.logPath], to: dir)
            if !output.json && !output.quiet { print("wrote the HTML report \(page) (\(report.rows.count) configurations): open it in a browser") }
        }
    }
}

/// What each task of a Slurm sweep's job array runs (submit.sh calls it): `emc sweep-task FOLDER INDEX`.
struct SweepTaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sweep-task", abstract: "Run one task of a Slurm sweep (what its job array runs).",
                                                    shouldDisplay: false)
    @Argument(help: "The sweep folder.") var folder: String
    @Argument(help: "The task's index (SLURM_ARRAY_TASK_ID).") var index: Int

    func run() throws {
        BLAS.useOneThread()
        let summary = try SlurmSweep.runTask(folder: folder, index: index) { event in
            if case .trial(let r, let new) = event {
                print("seed \(r.seed) n=\(r.n) \(r.result.rawValue) \(r.epochs) epochs\(new ? "" : " (from the log)")"
                      + (r.resumedFromEpoch.map { " (resumed from its checkpoint at epoch \($0))" } ?? ""))
            }
        }
        print("done: \(summary.model) on \(summary.data): n50 \(summary.boundary.map { String(Int($0.n50.rounded())) } ?? "-"), \(summary.trials) trials")
    }
}

enum SweepPrinter {
    static func status(_ s: SlurmSweep.Status, folder: SweepFolder, output: OutputOptions) throws {
        if output.json { return try printJSON(s) }
        print("\(folder.path) (job name \(folder.jobName)): \(s.tasks) task(s): \(s.done) done, \(s.running) running, \(s.pending) pending, "
              + "\(s.failed.count) failed" + (s.notSubmitted > 0 ? ", \(s.notSubmitted) not submitted" : ""))
        for f in s.failed {
            print("  task \(f.index) (\(f.label)): \(f.state); last lines of \(folder.stderr(f.index)):")
            for line in f.lastLines { print("    " + line) }
        }
        if !s.failed.isEmpty || s.notSubmitted > 0 { print("run the same `emc sweep ... --executor slurm` again to resubmit them; each resumes from its log") }
        if s.failed.isEmpty == false { print("(failed states from \(s.source))") }
    }

    /// The sweep's searches, what each can cost at most and if its EMC is near its parameter count, and, for the native
    /// trainer, that cost in time on this machine: each search's trials one at a time on its share of the cores
    /// (`jobs` searches at once), at a rate measured here.
    static func plan(_ exp: Experiment, _ tasks: [SweepTask], jobs: Int, output: OutputOptions) throws {
        var plans: [(SweepTask, SearchPlan?)] = []
        var costs = CostModel()
        for task in tasks {
            let settings = SweepRunner.childSettings(task, jobs: jobs)
            guard let search = try SweepRunner.search(task, settings: settings) else { plans.append((task, nil)); continue }
            var plan = search.plan
            if settings.trainer == .native {
                let (j, t) = settings.parallelism(seeds: plan.seeds)
                plan.time(samplesPerSecond: try costs.rate(search, threads: t), jobs: j, threads: t)
            }
            plans.append((task, plan))
        }
        if output.json {
            struct Row: Encodable { var label: String; var settings: SearchSettings; var plan: SearchPlan? }
            return try printJSON(plans.map { Row(label: $0.0.label, settings: $0.0.settings, plan: $0.1) })
        }
        print("dry run of \(exp.name): \(tasks.count) searches into \(exp.logPath)")
        for (task, plan) in plans {
            guard let p = plan else { print("  \(task.label): data not there yet (made by \"prepare\" first)"); continue }
            var cost = String(format: "%d seed(s) × ≤ %d trials, ≤ %.3g sample-epochs (%.3g if the EMC is near %@)", p.seeds, p.maxTrialsPerSeed,
                              p.maxSampleEpochs, p.sampleEpochsAtAssumedEMC, formatCount(Double(p.assumedEMC)))
            if let near = p.secondsAtAssumedEMC, let most = p.maxSeconds, let rate = p.samplesPerSecond {
                cost += "; \(formatCount(rate)) samples/s: ~\(CostModel.duration(near)), ≤ \(CostModel.duration(most))"
            }
            print("  \(task.label): \(cost)")
        }
        let total = plans.compactMap { $0.1?.maxSampleEpochs }.reduce(0, +)
        print(String(format: "at most %.3g sample-epochs of training in all (every trial using its whole budget)", total))
        let timed = plans.compactMap(\.1).filter { $0.samplesPerSecond != nil }
        if !timed.isEmpty {
            let near = timed.compactMap(\.secondsAtAssumedEMC).reduce(0, +) / Double(jobs)
            let most = timed.compactMap(\.maxSeconds).reduce(0, +) / Double(jobs)
            print("on this machine, \(jobs) search(es) at once (--jobs): about \(CostModel.duration(near)) if each EMC is near its parameter count "
                  + "(or its data's size), at most \(CostModel.duration(most)); rates measured now, evaluation passes and pilots not counted"
                  + (timed.count < plans.count ? "; \(plans.count - timed.count) search(es) not timed (torch trainer, or data not there yet)" : ""))
        }
    }
}
