import ArgumentParser
import EMCCore
import EMCPipeline
import EMCSearch
import EMCTrainer
import Foundation

/// Options shared by `emc run` and `emc bench search`: how each trial trains and is judged.
struct TrainingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Mini-batch size.")
    var batch = 128

    @Option(parsing: .unconditional, help: "Epoch budget per trial.")
    var epochs = 300

    @Option(parsing: .unconditional, help: "A step budget per trial instead of epochs (schedules then run over steps; step= and warmup= count steps).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "With an epoch budget, train at least this many optimizer steps whatever n is (0: off).")
    var minSteps = 2000

    @Option(parsing: .unconditional, help: "Fraction of samples that must be classified correctly (1.0 = all; the authors' code used 0.995).")
    var fitThreshold = 1.0

    @Option(parsing: .unconditional, help: "Convergence: epochs without relative loss improvement above --min-improvement...")
    var patience = 20

    @Option(parsing: .unconditional, help: "...of this size...")
    var minImprovement = 1e-3

    @Option(parsing: .unconditional, help: "...and a full-batch gradient norm below this, mean a minimum that does not fit.")
    var gradientTolerance = 1e-3

    @Option(help: "Input normalisation: standard (manifest mean/std), unit (/255) or none.")
    var normalize = Normalization.standard

    @Option(help: "Check the loss Hessian by Lanczos: off, converged (a converged-unfit trial with λ_min < −tol·λ_max becomes a saddle), or final (also record a check of every other trial's final model).")
    var hessianCheck = HessianCheckMode.off

    @Option(parsing: .unconditional, help: "Lanczos steps of the Hessian check (each one Hessian-vector product over the n samples).")
    var hessianSteps = 40

    @Option(parsing: .unconditional, help: "The Hessian check's tolerance: a saddle when λ_min < −tol·λ_max.")
    var hessianTolerance = 1e-3

    /// These options applied to `settings`.
    func apply(to settings: inout SearchSettings) {
        settings.batch = batch
        settings.epochs = epochs
        settings.steps = steps
        settings.minSteps = minSteps
        settings.fitThreshold = fitThreshold
        settings.patience = patience
        settings.minImprovement = minImprovement
        settings.gradientTolerance = gradientTolerance
        settings.normalize = normalize
        settings.hessianCheck = hessianCheck
        settings.hessianSteps = hessianSteps
        settings.hessianTolerance = hessianTolerance
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

    @Option(help: "Optimizer spec, e.g. sgd:lr=0.01,momentum=0.9, gd:lr=0.1, adam:lr=1e-3.")
    var optimizer = "sgd:lr=0.01,momentum=0.9"

    @OptionGroup var training: TrainingOptions

    @Option(parsing: .unconditional, help: "Independent seeds (subset and initialisation), each searched.")
    var seeds = 1

    @Option(parsing: .unconditional, help: "First n (default: 10 × the number of classes).")
    var start: Int?

    @Option(parsing: .unconditional, help: "Stop bisecting when the bracket is within this fraction of the EMC.")
    var resolution = SearchSettings.defaultResolution

    @Option(parsing: .unconditional, help: "Seeds searched at once, each trial on one thread (the records are the same as with 1).")
    var jobs = 1

    @Option(help: "Which failing trials are repeated with a fresh initialisation before they may decide a seed: final (the one that would end the search), each, or off.")
    var confirm = FailureConfirmation.final

    @Option(parsing: .unconditional, help: "Refine the boundary until its 90% interval is within ± this fraction of n50...")
    var targetWidth = 0.05

    @Option(parsing: .unconditional, help: "...or this many refinement trials have run (over all seeds).")
    var refinementCap = SearchRules().refinementCap

    @Option(parsing: .unconditional, help: "Also train every seed at this n and report the generalization gap there (compare models at one size).")
    var gapN: Int?

    @Option(parsing: .unconditional, help: "Learning rates to try first (comma-separated): a pilot trial per rate at --pilot-n keeps the one that fits in the fewest steps.")
    var lrGrid: String?

    @Option(parsing: .unconditional, help: "The learning-rate pilot's n (default 1000, or the data size when smaller).")
    var pilotN: Int?

    @Option(help: "Results log (JSON lines), shared by runs and sweeps.")
    var log = "runs/emc.jsonl"

    @Flag(help: "Do not evaluate the trained models on the test split (no generalization gap).")
    var noTest = false

    @Option(help: "Save each running trial's state here every --checkpoint-interval seconds; a killed search resumes its trial from it.")
    var checkpointDir: String?

    @Option(parsing: .unconditional, help: "Seconds between a trial's checkpoints.")
    var checkpointInterval = 300.0

    @Flag(help: "Print the configuration and the most work the search can take, and train nothing.")
    var dryRun = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard settingsFile != nil || (data != nil && model != nil) else { throw ValidationError("give --data and --model") }
        guard targetWidth > 0 && targetWidth < 1 else { throw ValidationError("--target-width must be between 0 and 1") }
        guard refinementCap >= 0 else { throw ValidationError("--refinement-cap cannot be negative") }
        if let gapN { guard gapN >= 1 else { throw ValidationError("--gap-n must be at least 1") } }
        guard (1...64).contains(jobs) else { throw ValidationError("--jobs must be between 1 and 64") }
        guard checkpointInterval >= 0 else { throw ValidationError("--checkpoint-interval cannot be negative") }
        if let lrGrid {
            for entry in lrGrid.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
                guard !entry.isEmpty else { throw ValidationError("--lr-grid \"\(lrGrid)\" has an empty entry: give rates separated by single commas") }
                guard Double(entry) != nil else { throw ValidationError("--lr-grid: \"\(entry)\" is not a number") }
            }
        }
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
            return commandLineSettings
        }
    }

    private var commandLineSettings: SearchSettings {
        var s = SearchSettings(data: data ?? "", model: model ?? "")
        s.optimizer = optimizer
        training.apply(to: &s)
        s.seeds = seeds
        s.start = start
        s.resolution = resolution
        s.log = log
        s.evaluateTest = !noTest
        s.lrGrid = lrGrid.map { $0.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) ?? .nan } }
        s.pilotN = pilotN
        s.gapN = gapN
        s.jobs = jobs
        s.rules.confirmation = confirm
        s.rules.targetHalfWidth = targetWidth
        s.rules.refinementCap = refinementCap
        s.checkpointDirectory = checkpointDir
        s.checkpointInterval = checkpointInterval
        return s
    }

    func run() throws {
        BLAS.useOneThread()
        let search = try SearchRun(try settings)
        let printer = SearchPrinter(output: output)
        if dryRun { return try printer.plan(search) }
        let summary = try search.execute(events: printer.event)
        try printer.summary(summary)
    }
}
