import EMCCore
import EMCPipeline
import EMCTrainer
import EMCVariants
import Foundation

/// The settings of one EMC search, as a user gives them (`emc run`'s options, one cell of an experiment
/// manifest, one task of a sweep): the one declaration of every setting and its default. Typed (the model and
/// optimizer parsed, the training rules and the search's rules as values) and Codable in the form settings files and
/// sweep tasks have always had: the specs as the text written, the training rules as flat keys. The same value crosses
/// from the command line, from a manifest and to a sweep's child process; `fitOptions()` derives the trainer's options.
public struct SearchSettings: Codable, Sendable, Hashable {
    /// The shard set or variant folder.
    public var data: String
    public var model: Written<ModelSpec>
    public var optimizer = SearchSettings.defaultOptimizer
    /// How each trial trains and is judged: batch, budget, fit threshold, convergence, Hessian check.
    public var training = TrainingRules()
    public var normalize: Normalization = .standard
    /// Subsets searched (each seed its own nested sample and initialisations). Five by default: the interval for the
    /// population's n50 covers on every generator of `emc bench calibration` with five, not with fewer.
    public var seeds = 5
    /// The first seed (nil: 0): seeds `firstSeed ..< firstSeed + seeds` are searched, so a second run can add
    /// independent seeds to a configuration's log; the boundary pools every seed the log holds.
    public var firstSeed: Int?
    /// First n of the doubling phase (nil: 10 × the number of classes).
    public var start: Int?
    /// Per-seed bisection stops when the bracket is within this fraction of the EMC. Coarse by default: the pooled
    /// boundary (n50 and its interval) is the precise figure, and its refinement places trials where they inform it.
    public var resolution = 0.25
    /// The results log (JSON lines).
    public var log = "runs/emc.jsonl"
    /// Measure every trial's model on the test split (a forward pass): the generalization gap at the EMC and at `gapN`.
    public var evaluateTest = true
    /// Also measure the generalization gap at this n (every seed trains there), to compare models at one size.
    public var gapN: Int?
    /// Learning rates to try first: a pilot trial per rate at `pilotN` (seed 0), keeping the rate that fits in the fewest
    /// optimizer steps (when none fits: the fewest wrong, then the lowest loss). The pilots are records of the log.
    public var lrGrid: [Double]?
    /// The pilot's n (nil: `defaultPilotN`, or the data size when smaller).
    public var pilotN: Int?
    public static let defaultPilotN = 1000
    /// Trials trained at once: seeds, and the two trials of a refinement round (nil: chosen by `parallelism`). Records
    /// do not depend on it.
    public var jobs: Int?
    /// Threads each trial trains and decodes its data on (`ThreadTeam`; nil: chosen by `parallelism`). Records do not
    /// depend on it: the trainer gives the same bits at any count.
    public var threads: Int?
    /// Confirmations, boundary refinement and its cap.
    public var rules = SearchRules()
    /// Where trials save checkpoints (every `checkpointInterval` seconds) and resume from them after a kill; nil: none.
    /// Records do not depend on it.
    public var checkpointDirectory: String?
    public var checkpointInterval = 300.0
    /// Who trains the trials: emc's native trainer, or PyTorch through its worker (`TorchFitter`). Part of the
    /// configuration's identity.
    public var trainer = TrainerKind.native
    /// The torch trainer's Python (nil: `EMC_PYTHON`, else `python3`) and the seconds a silent worker is given before it
    /// is taken to hang (nil: `TorchWorkerOptions.defaultTimeout`). Records do not depend on them.
    public var python: String?
    public var workerTimeout: Double?
    /// The torch trainer's device: cpu (nil), cuda, cuda:N or mps. Not part of a configuration's identity (each record
    /// names its device).
    public var device: String?
    /// The torch trainer's arithmetic: float32 (the default) or bf16 autocast; part of a configuration's identity.
    public var precision = TorchPrecision.float32
    /// The protocol the settings were made by (`TrainingProtocol.apply`), as records and reports name it: "paper", or
    /// "paper (budget scaled: ...)". A label: the settings themselves are what the configuration's identity holds.
    public var protocolName: String?

    public static let defaultOptimizer = try! Written<OptimizerSpec>("sgd:lr=0.01,momentum=0.9")

    public init(data: String, model: Written<ModelSpec>) {
        self.data = data
        self.model = model
    }

    /// Settings for `data` and the model spec `model` (an error names a spec that does not parse).
    public init(data: String, model: String) throws {
        self.init(data: data, model: try Written(model))
    }

    /// Every setting's default (a command line's options show them). The data and model have none: these stand-ins
    /// are never run.
    public static let defaults = SearchSettings(data: "", model: try! Written("mlp"))

    /// Every range check that needs no data: the trainer's options and the search's own.
    public func check() throws {
        try training.check()
        guard (1...10_000).contains(seeds) else { throw EMCError(.invalidArgument, "the number of seeds must be between 1 and 10000, not \(seeds)") }
        if let firstSeed { guard (0...1_000_000).contains(firstSeed) else { throw EMCError(.invalidArgument, "the first seed must be between 0 and 1000000, not \(firstSeed)") } }
        guard resolution > 0 && resolution < 1 else { throw EMCError(.invalidArgument, "the resolution must be between 0 and 1, not \(resolution)") }
        if let start, start < 1 { throw EMCError(.invalidArgument, "the first n must be at least 1, not \(start)") }
        guard rules.targetHalfWidth > 0 && rules.targetHalfWidth < 1 else {
            throw EMCError(.invalidArgument, "the target width must be between 0 and 1, not \(rules.targetHalfWidth)")
        }
        guard rules.refinementCap >= 0 else { throw EMCError(.invalidArgument, "the refinement cap cannot be negative, not \(rules.refinementCap)") }
        if let gapN, gapN < 1 { throw EMCError(.invalidArgument, "the gap's n must be at least 1, not \(gapN)") }
        if let pilotN, pilotN < 1 { throw EMCError(.invalidArgument, "the pilot's n must be at least 1, not \(pilotN)") }
        if let lrGrid {
            guard !lrGrid.isEmpty, lrGrid.count <= 32, lrGrid.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw EMCError(.invalidArgument, "the learning-rate grid needs 1 to 32 positive rates, not \(lrGrid)")
            }
        }
        if let jobs { guard (1...64).contains(jobs) else { throw EMCError(.invalidArgument, "the jobs must be between 1 and 64, not \(jobs)") } }
        if let threads { guard (1...1024).contains(threads) else { throw EMCError(.invalidArgument, "the threads must be between 1 and 1024, not \(threads)") } }
        guard checkpointInterval.isFinite, checkpointInterval >= 0 else {
            throw EMCError(.invalidArgument, "the checkpoint interval must be a finite number of seconds ≥ 0, not \(checkpointInterval)")
        }
        if let workerTimeout {
            guard workerTimeout.isFinite, workerTimeout >= TorchWorkerOptions.minimumTimeout else {
                throw EMCError(.invalidArgument, "the worker timeout must be at least \(Int(TorchWorkerOptions.minimumTimeout)) seconds (a worker reports every 2 s while it trains, and importing torch takes seconds), not \(workerTimeout)")
            }
        }
        if let device {
            guard TorchWorkerOptions.isDevice(device) else {
                throw EMCError(.invalidArgument, "'\(device)' is not a device: give cpu, cuda, cuda:N or mps")
            }
            guard trainer == .torch || device == "cpu" else {
                throw EMCError(.invalidArgument, "the native trainer runs on the CPU: --device \(device) needs --trainer torch")
            }
        }
        if precision != .float32 && trainer != .torch {
            throw EMCError(.invalidArgument, "the native trainer computes in float32: --precision \(precision.rawValue) needs --trainer torch")
        }
        if model.value.family == .python && trainer != .torch {
            throw EMCError(.invalidArgument, "\(model) is a PyTorch model: it trains with the torch trainer only (--trainer torch)")
        }
        if trainer == .torch {
            if optimizer.value.kind == .shampoo { throw EMCError(.invalidArgument, "the torch trainer has no Shampoo (torch.optim has none): use the native trainer for it") }
        }
    }

    /// The trials at once (J) and the threads of each (T) on `cores` cores: as set; one set, the other fills the cores
    /// (J × T = cores, at least 1); neither, seeds first (J = the seeds, at most the cores; independent trials scale
    /// best), then the cores left as threads.
    public func parallelism(cores: Int = EMCEnvironment.cpuCount, seeds: Int) -> (jobs: Int, threads: Int) {
        let cores = max(1, cores)
        switch (jobs, threads) {
        case let (j?, t?): return (j, t)
        case let (j?, nil): return (j, max(1, cores / j))
        case let (nil, t?): return (max(1, cores / t), t)
        case (nil, nil):
            let j = max(1, min(cores, seeds))
            return (j, max(1, cores / j))
        }
    }

    /// The trainer's options, after the training rules' range checks (each error names its setting).
    public func fitOptions() throws -> FitOptions {
        try training.check()
        return FitOptions(training)
    }

    enum CodingKeys: String, CodingKey {
        case data, model, optimizer, normalize, seeds, firstSeed, start, resolution, log, evaluateTest, gapN, lrGrid, pilotN, jobs, threads, rules,
             checkpointDirectory, checkpointInterval, trainer, python, workerTimeout, device, precision, protocolName = "protocol"
    }

    /// Missing keys take their defaults (the data and model are needed).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SearchSettings.defaults
        self.init(data: try c.decode(String.self, forKey: .data), model: try c.decode(Written<ModelSpec>.self, forKey: .model))
        optimizer = try c.decodeIfPresent(Written<OptimizerSpec>.self, forKey: .optimizer) ?? d.optimizer
        training = try TrainingRules(from: decoder)
        normalize = try c.decodeIfPresent(Normalization.self, forKey: .normalize) ?? d.normalize
        seeds = try c.decodeIfPresent(Int.self, forKey: .seeds) ?? d.seeds
        firstSeed = try c.decodeIfPresent(Int.self, forKey: .firstSeed)
        start = try c.decodeIfPresent(Int.self, forKey: .start)
        resolution = try c.decodeIfPresent(Double.self, forKey: .resolution) ?? d.resolution
        log = try c.decodeIfPresent(String.self, forKey: .log) ?? d.log
        evaluateTest = try c.decodeIfPresent(Bool.self, forKey: .evaluateTest) ?? d.evaluateTest
        gapN = try c.decodeIfPresent(Int.self, forKey: .gapN)
        lrGrid = try c.decodeIfPresent([Double].self, forKey: .lrGrid)
        pilotN = try c.decodeIfPresent(Int.self, forKey: .pilotN)
        jobs = try c.decodeIfPresent(Int.self, forKey: .jobs)
        threads = try c.decodeIfPresent(Int.self, forKey: .threads)
        rules = try c.decodeIfPresent(SearchRules.self, forKey: .rules) ?? d.rules
        checkpointDirectory = try c.decodeIfPresent(String.self, forKey: .checkpointDirectory)
        checkpointInterval = try c.decodeIfPresent(Double.self, forKey: .checkpointInterval) ?? d.checkpointInterval
        trainer = try c.decodeIfPresent(TrainerKind.self, forKey: .trainer) ?? d.trainer
        python = try c.decodeIfPresent(String.self, forKey: .python)
        workerTimeout = try c.decodeIfPresent(Double.self, forKey: .workerTimeout)
        device = try c.decodeIfPresent(String.self, forKey: .device)
        precision = try c.decodeIfPresent(TorchPrecision.self, forKey: .precision) ?? d.precision
        protocolName = try c.decodeIfPresent(String.self, forKey: .protocolName)
    }

    /// The keys and values settings files and sweep tasks have always had (a sweep task's hash stays the same).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(data, forKey: .data)
        try c.encode(model, forKey: .model)
        try c.encode(optimizer, forKey: .optimizer)
        try training.encode(to: encoder)
        try c.encode(normalize, forKey: .normalize)
        try c.encode(seeds, forKey: .seeds)
        try c.encodeIfPresent(firstSeed, forKey: .firstSeed)
        try c.encodeIfPresent(start, forKey: .start)
        try c.encode(resolution, forKey: .resolution)
        try c.encode(log, forKey: .log)
        try c.encode(evaluateTest, forKey: .evaluateTest)
        try c.encodeIfPresent(gapN, forKey: .gapN)
        try c.encodeIfPresent(lrGrid, forKey: .lrGrid)
        try c.encodeIfPresent(pilotN, forKey: .pilotN)
        try c.encodeIfPresent(jobs, forKey: .jobs)
        try c.encodeIfPresent(threads, forKey: .threads)
        try c.encode(rules, forKey: .rules)
        try c.encodeIfPresent(checkpointDirectory, forKey: .checkpointDirectory)
        try c.encode(checkpointInterval, forKey: .checkpointInterval)
        // Only when set: a native search's settings (and a sweep task's hash) are what they always were.
        if trainer != .native { try c.encode(trainer, forKey: .trainer) }
        try c.encodeIfPresent(python, forKey: .python)
        try c.encodeIfPresent(workerTimeout, forKey: .workerTimeout)
        try c.encodeIfPresent(device, forKey: .device)
        if precision != .float32 { try c.encode(precision, forKey: .precision) }
        try c.encodeIfPresent(protocolName, forKey: .protocolName)
    }
}

/// Something a search reports as it goes, for a command line or a log to show.
public enum SearchEvent {
    /// Before the first trial: the resolved configuration.
    case started(SearchConfig)
    /// A training epoch of the trial at n ended.
    case epoch(n: Int, report: EpochReport)
    /// A trial ended (`new`: trained now; otherwise read from the log).
    case trial(TrialRecord, new: Bool)
    /// A seed's search ended.
    case seedFinished(SeedResult)
    /// Something the user should know that is not a result (a torch worker failed and its trial runs again).
    case notice(String)
}

/// What a search found: per seed, pooled over seeds, and the caveats (the command line prints it or writes it as JSON).
public struct SearchSummary: Codable, Sendable {
    public var data: String
    public var variant: String?
    public var model: String
    public var optimizer: String
    public var parameters: Int
    public var seeds: [SeedResult]
    public var emcMedian: Double
    public var emcMin: Int
    public var emcMax: Int
    public var emcPerParameter: Double
    public var trials: Int
    public var sampleEpochs: Double
    public var seconds: Double
    public var warnings: [SearchWarning]
    /// The boundary over every trial of every seed: n50 (the EMC estimate) with its interval, n10 and n90.
    public var boundary: BoundaryFit?
    public var refinementTrials: Int
    public var refinementSampleEpochs: Double
    public var budgetBound: Bool
    /// The learning-rate pilot, when the settings asked for one (the optimizer above has the chosen rate).
    public var pilot: [PilotTrial]?
}

/// A caveat on a search's result. Typed, so that each front end can say how to act on it in its own words.
public enum SearchWarning: Codable, Sendable, Equatable {
    /// Trials at these n ran out of the epoch budget: the seed's EMC is a lower bound for that budget.
    case budgetExhausted(seed: Int, n: [Int], budget: String)
    /// Trials at these n stopped at a saddle of the loss (the Hessian check found negative curvature): not fitted, and
    /// not a minimum either, so the seed's EMC is a lower bound there.
    case saddles(seed: Int, n: [Int])
    /// The model fitted every sample there is: the EMC is at least the data size.
    case fittedEverything(samples: Int)
    /// n50 grew by this fraction (interval above 0) from half the budget to all of it, from the same trials (nil: no
    /// trial had fitted by half the budget): the budget, not a minimum, decides the boundary.
    case budgetDecides(gain: Double?, halfBudgetN50: Double?)
    /// Summaries written before the budget check: fitted trials near the boundary used this share of the budget.
    case budgetBound(share: Double)
    /// Refinement stopped at its cap with the interval still wider than the target.
    case intervalWide(halfWidth: Double, target: Double, cap: Int)
    /// The log holds `trials` trials of the same data, model and optimizer from the native trainer at other arithmetic
    /// revisions (`revisions`; this run's is `current`): not reused and never pooled with this run's.
    case otherArithmetic(trials: Int, revisions: [Int], current: Int)
}

/// One EMC search, ready to run: the data opened, the specs parsed, the configuration resolved and checked
/// (including that the model and batch fit in memory). What `emc run`, sweeps, benchmarks and tests call.
public final class SearchRun {
    public let settings: SearchSettings
    public let view: DatasetView
    public private(set) var config: SearchConfig

    /// The trials at once and the threads of each this run uses (`SearchSettings.parallelism` on this machine's cores).
    public var parallelism: (jobs: Int, threads: Int) { settings.parallelism(seeds: settings.seeds) }

    public init(_ settings: SearchSettings) throws {
        self.settings = settings
        try settings.check()
        let fit = try settings.fitOptions()
        view = try DatasetView(directory: settings.data)
        let model = settings.model.value
        let optimizer = settings.optimizer.value
        guard let train = view.manifest.splits["train"], train.samples > 0 else { throw EMCError(.missing, "no train split with samples", file: settings.data) }
        let shape = Self.inputShape(view)
        // The native trainer's buffers must fit this machine's memory; torch allocates its own (an out-of-memory is its error).
        if settings.trainer == .native { try model.checkMemory(input: shape, classes: view.classes.count, maxBatch: max(fit.batch, fit.evalBatch)) }
        if fit.hessianCheck != .off && settings.trainer == .native { try model.checkHessianSupport(input: shape, classes: view.classes.count) }
        // A researcher's own model: the worker builds it once now (an error before any trial) and says its size and source.
        var parameters: Int
        var source: String?
        if model.family == .python {
            (parameters, source) = try Self.describe(model, data: settings.data, classes: view.classes.count,
                                                     options: TorchWorkerOptions(python: settings.python, timeout: settings.workerTimeout ?? TorchWorkerOptions.defaultTimeout))
        } else {
            parameters = try model.parameterCount(input: shape, classes: view.classes.count)
        }
        let variant = view.manifest.variant.map { ([$0.labelTransform].compactMap { $0 } + $0.inputTransforms).joined(separator: "; ") }
        config = SearchConfig(dataDirectory: settings.data, dataName: view.manifest.name, dataContentId: view.manifest.contentId, variant: variant,
                              model: model, optimizer: optimizer, fit: fit, normalize: settings.normalize.rawValue,
                              start: settings.start ?? 10 * view.classes.count, resolution: settings.resolution, seeds: settings.seeds,
                              maxSamples: train.samples, parameters: parameters)
        config.modelSource = source
        config.rootContentId = view.root.manifest.contentId
        config.firstSeed = settings.firstSeed ?? 0
        config.trainer = settings.trainer
        config.precision = settings.precision
        config.protocolName = settings.protocolName
    }

    /// A `py:` model as the worker builds it: its trainable parameters and its source's hash (a clear error when the file
    /// does not import, the callable returns no module, or its output does not have one value per class).
    static func describe(_ model: ModelSpec, data: String, classes: Int, options: TorchWorkerOptions) throws -> (Int, String) {
        let worker = try TorchWorker(options: options)
        defer { worker.shutdown() }
        let answer: [String: Any]
        do {
            answer = try worker.call("describe", ["model": model.description, "data": data, "classes": classes])
        } catch let failure as WorkerFailure {
            throw EMCError(.library, "the torch worker failed while building \(model): \(failure.message)")
        }
        if let error = answer["error"] as? [String: Any] {
            throw EMCError(.invalidArgument, "\(model): \(error["message"] as? String ?? "the worker cannot build it")")
        }
        guard let result = answer["result"] as? [String: Any], let parameters = result["parameters"] as? Int, let source = result["source"] as? String else {
            throw EMCError(.library, "the torch worker described \(model) without its parameters and source")
        }
        return (parameters, source)
    }

    /// The torch workers' options these settings give.
    public var workerOptions: TorchWorkerOptions {
        var options = TorchWorkerOptions(python: settings.python, timeout: settings.workerTimeout ?? TorchWorkerOptions.defaultTimeout)
        options.device = settings.device ?? "cpu"
        return options
    }

    /// The torch trainer's fitter for this run's configuration, with the settings' worker options.
    public func makeTorchFitter() throws -> TorchFitter { try TorchFitter(view: view, config: config, options: workerOptions) }

    /// The fitter of `config` (the configuration, or a pilot's candidate): the native trainer, or the torch trainer.
    func makeFitter(_ config: SearchConfig, subsetOptions: SubsetOptions, events: @escaping (SearchEvent) -> Void) throws -> Fitter {
        switch settings.trainer {
        case .native:
            let fitter = TrainingFitter(view: view, config: config, subsetOptions: subsetOptions)
            fitter.threads = parallelism.threads
            fitter.evaluateTest = settings.evaluateTest
            if let folder = settings.checkpointDirectory {
                try FileSystem.createDirectory(folder)
                fitter.checkpoints = (folder, settings.checkpointInterval)
            }
            if parallelism.jobs == 1 { fitter.onEpoch = { n, report in events(.epoch(n: n, report: report)) } }
            return fitter
        case .torch:
            let fitter = try TorchFitter(view: view, config: config, options: workerOptions)
            fitter.evaluateTest = settings.evaluateTest
            if let folder = settings.checkpointDirectory {
                try FileSystem.createDirectory(folder)
                fitter.checkpoints = (folder, settings.checkpointInterval)
            }
            if parallelism.jobs == 1 { fitter.onEpoch = { n, report in events(.epoch(n: n, report: report)) } }
            fitter.onRetry = { events(.notice($0)) }
            return fitter
        }
    }

    /// The shape of one sample of `view`, as the trainer sees it.
    static func inputShape(_ view: DatasetView) -> FeatureShape {
        let schema = view.schema
        return schema.kind == .image ? FeatureShape(height: schema.height, width: schema.width, channels: schema.channels) : .vector(schema.features)
    }

    /// What the search will do at most, without training: trials per seed (doubling from the start to the data
    /// size, then bisection to the resolution) and the sample-epochs they cost if every trial used its whole budget.
    public var plan: SearchPlan {
        var doublings: [Int] = []
        var n = min(config.start, config.maxSamples)
        while true {
            doublings.append(n)
            if n >= config.maxSamples { break }
            n = min(config.maxSamples, n * 2)
        }
        let bisections = Int(ceil(log2(1 / config.resolution))) + 1
        let top = doublings.last ?? config.start
        let perSeed = doublings.count + bisections
        let fullBatch = config.optimizer.kind == .gd
        let cost = { (n: Int) in Double(n) * Double(self.config.fit.epochBudget(samples: n, fullBatch: fullBatch)) }
        let sampleEpochs = doublings.map(cost).reduce(0, +) + Double(bisections) * cost(top)
        // At an assumed boundary: the doublings below it, the first size at or above it twice (the failure and its
        // confirmation), and the bisection's trials, each no larger than that size.
        let assumed = max(1, min(config.parameters, config.maxSamples))
        let below = doublings.prefix { $0 < assumed }
        let first = doublings.first { $0 >= assumed } ?? top
        let atAssumed = below.map(cost).reduce(0, +) + Double(2 + bisections) * cost(first)
        return SearchPlan(seeds: config.seeds, maxTrialsPerSeed: perSeed, doublingSizes: doublings,
                          maxSampleEpochs: sampleEpochs * Double(config.seeds), parameters: config.parameters,
                          assumedEMC: assumed, sampleEpochsAtAssumedEMC: min(atAssumed, sampleEpochs) * Double(config.seeds))
    }

    /// What one trial's rate is measured on: the model, one sample's shape, the classes, the batch (a full-batch
    /// optimizer's at the evaluation batch) and the optimizer.
    public var rateProbe: (model: ModelSpec, shape: FeatureShape, classes: Int, batch: Int, optimizer: OptimizerSpec) {
        let batch = config.optimizer.kind == .gd ? FitOptions.minimumEvaluationBatch : config.fit.batch
        return (config.model, Self.inputShape(view), view.classes.count, batch, config.optimizer)
    }

    /// Trains the search's trial at (seed, n, replicate), as the search would, with the loss Hessian checked at its final
    /// parameters whatever its outcome (`emc hessian`). Nothing is written to the log.
    public func checkedTrial(n: Int, seed: Int, replicate: Int = 0, onEpoch: ((EpochReport) -> Void)? = nil) throws -> FitOutcome {
        guard n >= 1, n <= config.maxSamples else { throw EMCError(.invalidArgument, "n must be between 1 and the train split's \(config.maxSamples) samples, not \(n)") }
        var checked = config
        if checked.fit.hessianCheck == .off || checked.fit.hessianCheck == .converged { checked.fit.hessianCheck = .final }
        try config.model.checkHessianSupport(input: Self.inputShape(view), classes: view.classes.count)
        var subsetOptions = SubsetOptions()
        subsetOptions.normalize = settings.normalize
        subsetOptions.threads = settings.threads ?? EMCEnvironment.cpuCount
        let fitter = TrainingFitter(view: view, config: checked, subsetOptions: subsetOptions)
        fitter.threads = settings.threads ?? EMCEnvironment.cpuCount
        fitter.evaluateTest = false
        fitter.onEpoch = { _, report in onEpoch?(report) }
        return try fitter.fit(n: n, seed: seed, replicate: replicate)
    }

    /// Runs every seed's search, appending each trial to the log, and summarises.
    public func execute(events: @escaping (SearchEvent) -> Void = { _ in }) throws -> SearchSummary {
        let start = Clock.now()
        let log = try ResultsLog(path: settings.log)
        var subsetOptions = SubsetOptions()
        subsetOptions.normalize = settings.normalize
        subsetOptions.threads = parallelism.threads
        let pilot = try runPilot(log: log, subsetOptions: subsetOptions, events: events)
        // Epoch progress makes sense for one trial at a time.
        let fitter = try makeFitter(config, subsetOptions: subsetOptions, events: events)
        defer { (fitter as? TorchFitter)?.close() }
        let earlier = Self.otherArithmetic(log.records, config: config)
        let search = EMCSearch(config: config, log: log, fitter: fitter)
        search.rules = settings.rules
        search.jobs = parallelism.jobs
        search.trialThreads = settings.trainer == .native ? parallelism.threads : 1
        search.gapN = settings.gapN
        events(.started(config))
        search.onTrial = { record, new in events(.trial(record, new: new)) }
        let outcome = try search.run()
        let results = outcome.seeds
        for result in results { events(.seedFinished(result)) }
        var warnings: [SearchWarning] = earlier.map { [$0] } ?? []
        warnings += results.filter { !$0.budgetExhausted.isEmpty }.map {
            .budgetExhausted(seed: $0.seed, n: $0.budgetExhausted, budget: config.fit.budget.description)
        }
        warnings += results.compactMap { r in r.saddles.map { .saddles(seed: r.seed, n: $0) } }
        if results.contains(where: { $0.firstUnfitted == nil }) { warnings.append(.fittedEverything(samples: config.maxSamples)) }
        if let c = outcome.budgetCheck, c.bound { warnings.append(.budgetDecides(gain: c.gain, halfBudgetN50: c.halfBudgetN50)) }
        if let b = outcome.boundary, !outcome.targetReached, settings.rules.refinementCap > 0 {
            warnings.append(.intervalWide(halfWidth: b.relativeHalfWidth, target: settings.rules.targetHalfWidth, cap: settings.rules.refinementCap))
        }
        let emcs = results.map { Double($0.emc) }
        return SearchSummary(data: config.dataName, variant: config.variant, model: config.model.description, optimizer: config.optimizer.description,
                             parameters: config.parameters, seeds: results, emcMedian: median(emcs), emcMin: Int(emcs.min() ?? 0),
                             emcMax: Int(emcs.max() ?? 0), emcPerParameter: median(emcs) / Double(config.parameters),
                             trials: results.reduce(0) { $0 + $1.trials } + outcome.refinementTrials,
                             sampleEpochs: results.reduce(0) { $0 + $1.sampleEpochs } + outcome.refinementSampleEpochs,
                             seconds: Clock.now() - start, warnings: warnings, boundary: outcome.boundary,
                             refinementTrials: outcome.refinementTrials, refinementSampleEpochs: outcome.refinementSampleEpochs,
                             budgetBound: outcome.budgetBound, pilot: pilot)
    }

    /// The warning for `records` of `config`'s data, variant, model and optimizer that emc's own trainer wrote at another
    /// arithmetic revision of the model than `config`'s (their configurations differ by it, so this run starts afresh
    /// beside them); nil when there are none or `config` trains with torch.
    public static func otherArithmetic(_ records: [TrialRecord], config: SearchConfig) -> SearchWarning? {
        guard config.trainer == .native else { return nil }
        let current = config.model.arithmeticRevision
        let others = records.filter {
            $0.config != config.configHash && $0.dataContentId == config.dataContentId && $0.variant == config.variant
                && $0.model == config.model.description && $0.optimizer == config.optimizer.description
                && ($0.trainer?.kind ?? .native) == .native && ($0.trainer?.arithmetic ?? 1) != current
        }
        guard !others.isEmpty else { return nil }
        return .otherArithmetic(trials: others.count, revisions: Set(others.map { $0.trainer?.arithmetic ?? 1 }).sorted(), current: current)
    }

    /// The learning-rate pilot (`SearchSettings.lrGrid`): one trial per rate at the pilot's n, seed 0, the rates in
    /// parallel with `jobs`; the configuration takes the rate that fitted in the fewest steps. Nil without a grid.
    func runPilot(log: ResultsLog, subsetOptions: SubsetOptions, events: @escaping (SearchEvent) -> Void) throws -> [PilotTrial]? {
        guard let grid = settings.lrGrid else { return nil }
        let n = min(config.maxSamples, settings.pilotN ?? SearchSettings.defaultPilotN)
        let slots = ResultSlots<PilotTrial>(grid.count)
        let searches = try grid.map { lr -> EMCSearch in
            var candidate = config
            candidate.optimizer.lr = lr
            let fitter = try makeFitter(candidate, subsetOptions: subsetOptions, events: { _ in })
            let search = EMCSearch(config: candidate, log: log, fitter: fitter)
            search.onTrial = { record, new in events(.trial(record, new: new)) }
            return search
        }
        try parallelFor(grid.count, threads: parallelism.jobs) { i in
            let r = try searches[i].trial(seed: 0, n: n, replicate: 0, role: .pilot).record
            slots.set(i, PilotTrial(lr: grid[i], n: n, result: r.result, fitStep: r.fitStep, wrong: r.wrong, loss: r.loss))
        }
        var trials = (0..<grid.count).map { slots.get($0)! }
        let best = trials.indices.min { trials[$0].score.lexicographicallyPrecedes(trials[$1].score) }!
        trials[best].chosen = true
        config.optimizer.lr = trials[best].lr
        return trials
    }
}

/// One rate of the learning-rate pilot.
public struct PilotTrial: Codable, Sendable {
    public var lr: Double
    public var n: Int
    public var result: FitOutcome.Result
    public var fitStep: Int?
    public var wrong: Int
    public var loss: Double
    public var chosen = false

    /// Lower is better: fitted before not, then fewer steps, fewer wrong, lower loss (a diverged loss last).
    var score: [Double] { [fitStep == nil ? 1 : 0, Double(fitStep ?? 0), Double(wrong), loss.isFinite ? loss : .infinity, lr] }
}

/// An upper bound on a search's work, for a dry run.
public struct SearchPlan: Codable, Sendable {
    public var seeds: Int
    public var maxTrialsPerSeed: Int
    /// The sizes the doubling phase visits (the bisection then works inside the first bracket).
    public var doublingSizes: [Int]
    /// Sample-epochs if every trial ran its whole epoch budget (training only).
    public var maxSampleEpochs: Double
    public var parameters: Int
    /// Sample-epochs if the boundary were at `assumedEMC` (the parameter count, or the data size if smaller): doubling
    /// to the first size at or above it, that failure confirmed, then the bisection there, every trial using its whole
    /// budget. A planning figure, not a prediction: the EMC is what the search measures.
    public var assumedEMC: Int = 0
    public var sampleEpochsAtAssumedEMC: Double = 0
    /// The cost in time on this machine, when measured (`emc run --dry-run`, `emc sweep --dry-run`): training samples
    /// per second of one trial at the search's batch and threads, and the seconds of the two figures above with the
    /// search's trials `jobs` at a time. Evaluation passes and a learning-rate pilot are not counted.
    public var samplesPerSecond: Double?
    public var jobs: Int?
    public var threads: Int?
    public var maxSeconds: Double?
    public var secondsAtAssumedEMC: Double?

    /// Fills in the time figures from a measured rate of one trial, with `jobs` trials at once on `threads` each.
    public mutating func time(samplesPerSecond rate: Double, jobs: Int, threads: Int) {
        samplesPerSecond = rate
        self.jobs = jobs
        self.threads = threads
        let parallel = Double(max(1, min(jobs, seeds)))
        maxSeconds = maxSampleEpochs / rate / parallel
        secondsAtAssumedEMC = sampleEpochsAtAssumedEMC / rate / parallel
    }
}
