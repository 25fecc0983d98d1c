import ArgumentParser
import EMCCore
import EMCPipeline
import EMCVariants
import EMCSearch
import EMCTrainer
import Foundation

/// Options shared by `emc run` and `emc sweep`: how each trial trains and is judged.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Mini-batch size.")
    var batch = 128

    @Option(help: "Epoch budget per trial.")
    var epochs = 300

    @Option(help: "Fraction of samples that must be classified correctly (1.0 = all; the authors' code used 0.995).")
    var fitThreshold = 1.0

    @Option(help: "Convergence: epochs without relative loss improvement above --min-improvement...")
    var patience = 20

    @Option(help: "...of this size...")
    var minImprovement = 1e-3

    @Option(help: "...and a full-batch gradient norm below this, mean a minimum that does not fit.")
    var gradientTolerance = 1e-3

    @Option(help: "Input normalisation: standard (manifest mean/std), unit (/255) or none.")
    var normalize = "standard"

    func fitOptions() throws -> FitOptions {
        guard batch > 0, epochs > 0, patience > 0 else { throw ValidationError("--batch, --epochs and --patience must be positive") }
        guard batch <= 1 << 20 else { throw ValidationError("--batch must be at most 1048576 (a larger batch than any EMC subset needs)") }
        guard minImprovement.isFinite, minImprovement >= 0, gradientTolerance.isFinite, gradientTolerance >= 0 else {
            throw ValidationError("--min-improvement and --gradient-tolerance must be finite numbers ≥ 0")
        }
        guard fitThreshold > 0 && fitThreshold <= 1 else { throw ValidationError("--fit-threshold must be in (0, 1]") }
        var f = FitOptions()
        f.batchSize = batch
        f.maxEpochs = epochs
        f.fitThreshold = fitThreshold
        f.patience = patience
        f.minRelativeImprovement = minImprovement
        f.gradientTolerance = gradientTolerance
        f.evalBatch = max(batch, 1024)
        return f
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a model's EMC on a shard set: the largest n it trains to 100% training accuracy.",
        discussion: """
        Doubles n from --start until a trial does not fit, then bisects to --resolution. Each trial trains a fresh model \
        (seeded by seed and n) on the seed's nested subset of n samples. Every trial is appended to --log; a rerun skips \
        trials already there and gives the same answer.

        Example: emc run --data datasets/fashion-mnist --model mlp:width=16 --optimizer sgd:lr=0.01,momentum=0.9
        """)

    @Option(help: "The shard set or variant to measure on.")
    var data: String

    @Option(help: "Model spec, e.g. mlp:width=16,depth=2 or cnn:channels=8,layers=2.")
    var model: String

    @Option(help: "Optimizer spec, e.g. sgd:lr=0.01,momentum=0.9, gd:lr=0.1, adam:lr=1e-3.")
    var optimizer = "sgd:lr=0.01,momentum=0.9"

    @OptionGroup var training: TrainingOptions

    @Option(help: "Independent seeds (subset and initialisation), each searched.")
    var seeds = 1

    @Option(help: "First n (default: 10 × the number of classes).")
    var start: Int?

    @Option(help: "Stop bisecting when the bracket is within this fraction of the EMC.")
    var resolution = 0.02

    @Option(help: "Results log (JSON lines), shared by runs and sweeps.")
    var log = "runs/emc.jsonl"

    @Flag(help: "Skip the final train/test evaluation at the EMC point.")
    var noFinal = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        BLAS.configureThreads()
        let request = try RunRequest(data: data, model: model, optimizer: optimizer, training: training, seeds: seeds, start: start,
                                     resolution: resolution)
        let summary = try request.execute(log: log, final: !noFinal, quiet: output.quiet, json: output.json)
        if output.json { try printJSON(summary) }
    }
}

/// A parsed `emc run`: the configuration and the objects that carry it out.
struct RunRequest {
    let view: DatasetView
    let config: SearchConfig

    init(data: String, model: String, optimizer: String, training: TrainingOptions, seeds: Int, start: Int?, resolution: Double) throws {
        guard (1...10_000).contains(seeds) else { throw ValidationError("--seeds must be between 1 and 10000") }
        guard resolution > 0 && resolution < 1 else { throw ValidationError("--resolution must be between 0 and 1") }
        view = try DatasetView(directory: data)
        let modelSpec = try ModelSpec(parsing: model)
        let optimizerSpec = try OptimizerSpec(parsing: optimizer)
        guard let train = view.manifest.splits["train"] else { throw EMCError(.missing, "no train split", file: data) }
        let schema = view.schema
        let shape = schema.kind == .image ? FeatureShape(height: schema.height, width: schema.width, channels: schema.channels) : .vector(schema.features)
        guard Normalization(rawValue: training.normalize) != nil else { throw ValidationError("--normalize must be standard, unit or none") }
        let fit = try training.fitOptions()
        try modelSpec.checkMemory(input: shape, classes: view.classes.count, maxBatch: max(fit.batchSize, fit.evalBatch))
        config = SearchConfig(dataDirectory: data, dataName: view.manifest.name, dataContentId: view.manifest.contentId,
                              variant: view.manifest.variant.map { ([$0.labelTransform].compactMap { $0 } + $0.inputTransforms).joined(separator: "; ") },
                              model: modelSpec, optimizer: optimizerSpec, fit: fit, normalize: training.normalize,
                              start: start ?? 10 * view.classes.count, resolution: resolution, seeds: seeds, maxSamples: train.samples,
                              parameters: try modelSpec.parameterCount(input: shape, classes: view.classes.count))
    }

    struct Summary: Encodable {
        var data: String
        var variant: String?
        var model: String
        var optimizer: String
        var parameters: Int
        var seeds: [SeedResult]
        var emcMedian: Double
        var emcMin: Int
        var emcMax: Int
        var emcPerParameter: Double
        var trials: Int
        var sampleEpochs: Double
        var seconds: Double
        var warnings: [String]
    }

    func execute(log logPath: String, final: Bool, quiet: Bool, json: Bool) throws -> Summary {
        let start = Clock.now()
        let log = try ResultsLog(path: logPath)
        var subsetOptions = SubsetOptions()
        subsetOptions.normalize = Normalization(rawValue: config.normalize) ?? .standard
        subsetOptions.threads = max(1, EMCEnvironment.cpuCount - 1)
        let fitter = TrainingFitter(view: view, config: config, subsetOptions: subsetOptions)
        let search = EMCSearch(config: config, log: log, fitter: fitter)
        let say: (String) -> Void = { line in if !json { print(line) } else if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
        say("EMC search: \(config.model) (\(config.parameters) parameters) on \(config.dataName)\(config.variant.map { " [\($0)]" } ?? ""), "
            + "\(config.optimizer), batch \(config.fit.batchSize), ≤ \(config.fit.maxEpochs) epochs, \(config.seeds) seed(s)")
        var bar: ProgressReporter?
        fitter.onEpoch = { n, report in
            if bar == nil { bar = ProgressReporter("  n=\(n)", total: config.fit.maxEpochs, unit: "epochs", quiet: quiet || json) }
            bar?.set(completed: report.epoch)
        }
        search.onTrial = { record, new in
            bar?.finish()
            bar = nil
            let outcome = record.result.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0)
            say(String(format: "  seed %d  n=%-7d %@ %4d epochs  loss %.4f  wrong %-6d %@%@", record.seed, record.n, outcome, record.epochs,
                       record.loss, record.wrong, formatDuration(record.seconds), new ? "" : "  (from the log)"))
        }
        var results: [SeedResult] = []
        for seed in 0..<config.seeds { results.append(try search.search(seed: seed, evaluateFinal: final)) }
        let emcs = results.map { Double($0.emc) }
        var warnings: [String] = []
        for r in results where !r.budgetExhausted.isEmpty {
            warnings.append("seed \(r.seed): \(r.budgetExhausted.count) trial(s) ran out of the \(config.fit.maxEpochs)-epoch budget "
                            + "(n = \(r.budgetExhausted.map(String.init).joined(separator: ", "))); the EMC is a lower bound for this budget (--epochs raises it)")
        }
        if results.contains(where: { $0.firstUnfitted == nil }) {
            warnings.append("the model fitted all \(config.maxSamples) samples: the EMC is at least the data size")
        }
        let summary = Summary(data: config.dataName, variant: config.variant, model: config.model.description, optimizer: config.optimizer.description,
                              parameters: config.parameters, seeds: results, emcMedian: median(emcs), emcMin: Int(emcs.min()!),
                              emcMax: Int(emcs.max()!), emcPerParameter: median(emcs) / Double(config.parameters),
                              trials: results.reduce(0) { $0 + $1.trials }, sampleEpochs: results.reduce(0) { $0 + $1.sampleEpochs },
                              seconds: Clock.now() - start, warnings: warnings)
        say("")
        for r in results {
            let accuracy = zipOptional(r.trainAccuracy, r.testAccuracy).map { String(format: "; train %.3f, test %.3f, gap %.3f", $0, $1, $0 - $1) } ?? ""
            say("  seed \(r.seed): EMC \(r.emc)" + (r.firstUnfitted.map { ", first unfitted \($0) (resolution \(String(format: "%.1f%%", 100 * (r.resolution ?? 0))))" } ?? ", fitted everything")
                + ", \(r.trials) trials" + accuracy)
        }
        say(String(format: "EMC %@ (range %d–%d), %d parameters, EMC/params %.3f, %d trials, %.3g sample-epochs, %@",
                   summary.emcMedian.rounded() == summary.emcMedian ? "\(Int(summary.emcMedian))" : String(format: "%.1f", summary.emcMedian),
                   summary.emcMin, summary.emcMax, summary.parameters, summary.emcPerParameter, summary.trials, summary.sampleEpochs,
                   formatDuration(summary.seconds)))
        for w in warnings { say("warning: " + w) }
        return summary
    }
}

