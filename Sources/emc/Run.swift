import ArgumentParser
import EMCCore
import EMCPipeline
import EMCSearch
import EMCReports
import EMCTrainer
import Foundation

/// How each trial trains and is judged, as `emc run`, `emc hessian` and `emc bench search` take it. Every default is
/// `SearchSettings.defaults`' (the one declaration); `apply` sets the matching settings.
struct TrainingOptions: ParsableArguments {
    private static let defaults = SearchSettings.defaults

    @Option(help: "Optimizer spec, e.g. sgd:lr=0.01,momentum=0.9, gd:lr=0.1, adam:lr=1e-3.")
    var optimizer = defaults.optimizer.text

    @Option(parsing: .unconditional, help: "Mini-batch size.")
    var batch = defaults.training.batch

    @Option(parsing: .unconditional, help: "Epoch budget per trial.")
    var epochs = defaults.training.budget.epochs

    @Option(parsing: .unconditional, help: "A step budget per trial instead of epochs (schedules then run over steps; step= and warmup= count steps).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "With an epoch budget, train at least this many optimizer steps whatever n is (0: off).")
    var minSteps = defaults.training.budget.minSteps

    @Option(parsing: .unconditional, help: "Fraction of samples that must be classified correctly (1.0 = all; the authors' code used 0.995).")
    var fitThreshold = defaults.training.fitThreshold

    @Option(parsing: .unconditional, help: "Convergence: epochs without relative loss improvement above --min-improvement...")
    var patience = defaults.training.patience

    @Option(parsing: .unconditional, help: "...of this size...")
    var minImprovement = defaults.training.minImprovement

    @Option(parsing: .unconditional, help: "...and a full-batch gradient norm below this, mean a minimum that does not fit.")
    var gradientTolerance = defaults.training.gradientTolerance

    @Option(help: "Input normalisation: standard (manifest mean/std), unit (/255) or none.")
    var normalize = defaults.normalize

    @Option(help: "Check the loss Hessian by Lanczos: off, converged (a converged-unfit trial with λ_min < −tol·λ_max becomes a saddle), or final (also record a check of every other trial's final model).")
    var hessianCheck = defaults.training.hessianCheck

    @Option(parsing: .unconditional, help: "Lanczos steps of the Hessian check (each one Hessian-vector product over the n samples).")
    var hessianSteps = defaults.training.hessian.steps

    @Option(parsing: .unconditional, help: "The Hessian check's tolerance: a saddle when λ_min < −tol·λ_max.")
    var hessianTolerance = defaults.training.hessian.tolerance

    @Option(parsing: .unconditional, help: "Check the fit every K optimizer steps (at the end of the epoch that reaches each multiple of K) instead of every epoch: the authors' protocol checked every 10,000.")
    var checkEvery: Int?

    /// Search settings for `data` and `model` with these options (an error names a spec that does not parse).
    func settings(data: String, model: String) throws -> SearchSettings {
        var s = try SearchSettings(data: data, model: model)
        s.optimizer = try Written(optimizer)
        apply(to: &s)
        return s
    }

    /// These options, but the optimizer's spec, set on `s`.
    func apply(to s: inout SearchSettings) {
        s.training.batch = batch
        s.training.budget = Budget(epochs: epochs, minSteps: minSteps, steps: steps)
        s.training.fitThreshold = fitThreshold
        s.training.patience = patience
        s.training.minImprovement = minImprovement
        s.training.gradientTolerance = gradientTolerance
        s.normalize = normalize
        s.training.hessianCheck = hessianCheck
        s.training.hessian.steps = hessianSteps
        s.training.hessian.tolerance = hessianTolerance
        s.training.checkEvery = checkEvery
    }

    /// A value out of range is a usage error naming its setting, before any spec is parsed or data opened.
    func validate() throws {
        var s = SearchSettings.defaults
        apply(to: &s)
        do { try s.training.check() } catch let e as EMCError { throw ValidationError(e.message) }
    }
}

extension Normalization: ExpressibleByArgument {}
extension HessianCheckMode: ExpressibleByArgument {}
extension FailureConfirmation: ExpressibleByArgument {}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a model's EMC on a shard set: the largest n it trains to 100% training accuracy.",
        discussion: """
        Per seed: doubles n from --start until a trial does not fit, bisects to --resolution, and confirms the failure \
        that would end the search with a fresh initialisation (--confirm). Then fits p(fit | n) over every trial of every \
        seed and reports n50, the EMC estimate, with its 90% interval, refining it with trials either side of n50 until \
        the interval is within --target-width or --refinement-cap trials have run. Each trial trains a fresh model on the \
        seed's nested subset of n samples. Every trial is appended to --log; a rerun skips trials already there and gives \
        the same answer. docs/methods.md describes the estimator.

        Example: emc run --data datasets/fashion-mnist --model mlp:width=16 --optimizer sgd:lr=0.01,momentum=0.9
        """)

    @Option(help: "The shard set or variant to measure on.")
    var data: String?

    @Option(help: "Model spec, e.g. mlp:width=16,depth=2 or cnn:channels=8,layers=2.")
    var model: String?

    @Option(help: ArgumentHelp("Run the search a JSON settings file describes (what a sweep hands each of its searches).", visibility: .hidden))
    var settingsFile: String?

    @OptionGroup var search: SearchOptions

    @Flag(help: "Print the configuration and the most work the search can take, and train nothing.")
    var dryRun = false

    @Option(help: "When the search ends, write the HTML report of its results log into this folder (as emc report LOG --html DIR).")
    var html: String?

    @Flag(help: "Replace the report in a non-empty --html folder.")
    var force = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard settingsFile != nil || (data != nil && model != nil) else { throw ValidationError("give --data and --model") }
    }

    var settings: SearchSettings {
        get throws {
            if let settingsFile {
                let bytes = try ReadableFile.contents(of: settingsFile)
                try EMCError.locating(file: settingsFile) { try JSONCheck.check(bytes) }
                do { return try JSONDecoder().decode(SearchSettings.self, from: Data(bytes)) } catch let e as DecodingError {
                    throw EMCError(.format, "not a search settings file: \(e)", file: settingsFile)
                }
            }
            return try commandLineSettings
        }
    }

    private var commandLineSettings: SearchSettings {
        get throws { try search.settings(data: data ?? "", model: model ?? "") }
    }

    func run() throws {
        BLAS.useOneThread()
        let search = try SearchRun(try settings)
        let printer = SearchPrinter(output: output)
        if dryRun { return try printer.plan(search) }
        let log = search.settings.log
        if let html { try HTMLReport.checkOutput(html, force: force, inputs: [search.settings.data, log]) }
        if search.settings.trainer == .native { printer.parallelism(search) }
        let summary = try search.execute(events: printer.event)
        try printer.summary(summary)
        if let html {
            let records = try ResultsLog.records(at: log, finished: true)
            let report = Report.from(records)
            let page = try HTMLReport.write(ReportDocument(report: report, findings: Findings.evaluate(report)), records: records, sources: [log], to: html)
            if !output.json && !output.quiet { print("wrote the HTML report \(page) (\(report.rows.count) configurations): open it in a browser") }
        }
    }
}

/// `emc run`'s options beyond the training's: seeds, the search's rules, the pilot, the log, checkpoints. Every default is
/// `SearchSettings.defaults`'.
struct SearchOptions: ParsableArguments {
    private static let defaults = SearchSettings.defaults

    @OptionGroup var training: TrainingOptions

    @Option(parsing: .unconditional, help: "Seeds to search, each its own nested subset of the data and initialisations: a count S (seeds 0 to S − 1) or a range A..B (seeds A to B, to add seeds to a log that has others; the boundary pools every seed in the log).")
    var seeds = SeedRange(first: 0, count: defaults.seeds)

    @Option(parsing: .unconditional, help: "First n (default: 10 × the number of classes).")
    var start: Int?

    @Option(parsing: .unconditional, help: "Stop bisecting when the bracket is within this fraction of the EMC.")
    var resolution = defaults.resolution

    @Option(parsing: .unconditional, help: "Trials trained at once: seeds, and a refinement round's two trials (default: the seeds, at most the cores). The records are the same at any count.")
    var jobs: Int?

    @Option(parsing: .unconditional, help: "Threads each trial trains and decodes its data on (default: the cores --jobs leaves, so that jobs × threads fills the machine). The records are the same bits at any count.")
    var threads: Int?

    @Option(help: "Which failing trials are repeated with a fresh initialisation before they may decide a seed: final (the one that would end the search), each, or off.")
    var confirm = defaults.rules.confirmation

    @Option(parsing: .unconditional, help: "Refine the boundary until its 90% interval is within ± this fraction of n50...")
    var targetWidth = defaults.rules.targetHalfWidth

    @Option(parsing: .unconditional, help: "...or this many refinement trials have run (over all seeds).")
    var refinementCap = defaults.rules.refinementCap

    @Option(parsing: .unconditional, help: "Also train every seed at this n and report the generalization gap there (compare models at one size).")
    var gapN: Int?

    @Option(parsing: .unconditional, help: "Learning rates to try first (comma-separated): a pilot trial per rate at --pilot-n keeps the one that fits in the fewest steps.")
    var lrGrid: String?

    @Option(parsing: .unconditional, help: "The learning-rate pilot's n (default \(SearchSettings.defaultPilotN), or the data size when smaller).")
    var pilotN: Int?

    @Option(help: "Results log (JSON lines), shared by runs and sweeps.")
    var log = defaults.log

    @Flag(help: "Do not evaluate the trained models on the test split (no generalization gap).")
    var noTest = false

    @Option(help: "Save each running trial's state here every --checkpoint-interval seconds; a killed search resumes its trial from it.")
    var checkpointDir: String?

    @Option(parsing: .unconditional, help: "Seconds between a trial's checkpoints.")
    var checkpointInterval = defaults.checkpointInterval

    @Option(help: "A named protocol: paper (the authors': fitted at 99.5%, SGD lr 0.01 momentum 0.9 cosine-annealed over 400,000 steps, batch 640, the fit checked every 10,000 steps). Options that differ from emc's defaults override it; --steps scales its budget and, in proportion, its check cadence (docs/methods.md).")
    var `protocol`: TrainingProtocol?

    @Option(help: "Who trains the trials: native (emc's own trainer) or torch (PyTorch, through a worker per job; docs/torch-worker.md). The trainer is part of a configuration's identity: the two never pool.")
    var trainer = defaults.trainer

    @Option(help: "The torch trainer's Python, with emcshards[torch] installed (default: $EMC_PYTHON, else python3; scripts/torch-env makes one).")
    var python: String?

    @Option(help: "The torch trainer's device: cpu, cuda, cuda:N or mps (not part of a configuration's identity; each record names it).")
    var device: String?

    @Option(help: "The torch trainer's arithmetic: float32, or bf16 (autocast for the training forward passes; weights, gradients and every pass that judges a fit stay float32). Part of a configuration's identity.")
    var precision = defaults.precision

    @Option(parsing: .unconditional, help: "Seconds a torch worker may send nothing (at least 10; it reports every epoch, and every 2 s while it trains) before it is taken to hang and its trial is retried once.")
    var workerTimeout = TorchWorkerOptions.defaultTimeout

    func validate() throws {
        if let lrGrid {
            for entry in lrGrid.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
                guard !entry.isEmpty else { throw ValidationError("--lr-grid \"\(lrGrid)\" has an empty entry: give rates separated by single commas") }
                guard Double(entry) != nil else { throw ValidationError("--lr-grid: \"\(entry)\" is not a number") }
            }
        }
        var s = SearchSettings.defaults
        training.apply(to: &s)
        apply(to: &s)
        do { try s.check() } catch let e as EMCError { throw ValidationError(e.message) }
    }

    /// The search settings these options give for `data` and `model` (under the named protocol, if any);
    /// `SearchSettings.check` checks their ranges.
    func settings(data: String, model: String) throws -> SearchSettings {
        var s = try training.settings(data: data, model: model)
        apply(to: &s)
        if let `protocol` { s = try `protocol`.apply(to: s) }
        return s
    }

    /// These options, but the training's, set on `s`.
    func apply(to s: inout SearchSettings) {
        s.seeds = seeds.count
        s.firstSeed = seeds.first == 0 ? nil : seeds.first
        s.start = start
        s.resolution = resolution
        s.log = log
        s.evaluateTest = !noTest
        s.lrGrid = lrGrid.map { $0.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) ?? .nan } }
        s.pilotN = pilotN
        s.gapN = gapN
        s.jobs = jobs
        s.threads = threads
        s.rules.confirmation = confirm
        s.rules.targetHalfWidth = targetWidth
        s.rules.refinementCap = refinementCap
        s.checkpointDirectory = checkpointDir
        s.checkpointInterval = checkpointInterval
        s.trainer = trainer
        s.python = python
        s.device = device
        s.precision = precision
        s.workerTimeout = workerTimeout == TorchWorkerOptions.defaultTimeout ? nil : workerTimeout
    }
}

/// `--seeds`: a count S (seeds 0…S−1) or an inclusive range A..B.
struct SeedRange: ExpressibleByArgument, CustomStringConvertible {
    var first: Int
    var count: Int

    init(first: Int, count: Int) {
        self.first = first
        self.count = count
    }

    init?(argument: String) {
        let parts = argument.components(separatedBy: "..")
        if parts.count == 1, let count = Int(parts[0]) {
            self.init(first: 0, count: count)
        } else if parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, b >= a, b - a < 1_000_000 {
            // b − a is bounded, so the count never overflows; the settings' check bounds it further.
            self.init(first: a, count: b - a + 1)
        } else {
            return nil
        }
    }

    var description: String { first == 0 ? "\(count)" : "\(first)..\(first + count - 1)" }
    var defaultValueDescription: String { description }
}

extension TrainerKind: ExpressibleByArgument {}
extension TorchPrecision: ExpressibleByArgument {}
extension TrainingProtocol: ExpressibleByArgument {}
