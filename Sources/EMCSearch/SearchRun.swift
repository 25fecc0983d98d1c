import EMCCore
import EMCPipeline
import EMCTrainer
import EMCVariants
import Foundation

/// The settings of one EMC search, as a user gives them (`emc run`'s options, one cell of an experiment
/// manifest, one task of a sweep). Typed and Codable: the same value crosses from the command line, from a
/// manifest and to a sweep's child process.
public struct SearchSettings: Codable, Sendable, Hashable {
    /// The shard set or variant folder.
    public var data: String
    public var model: String
    public var optimizer = "sgd:lr=0.01,momentum=0.9"
    public var batch = 128
    /// Epoch budget per trial.
    public var epochs = 300
    /// A step budget instead (optimizer steps per trial; schedules then run over steps). Compare optimizers at equal steps.
    public var steps: Int?
    /// With an epoch budget, at least this many optimizer steps per trial whatever n is (0: off). The PyTorch reference
    /// search used 2,000: without it, a trial at n = 100 gets 300 steps of batch 128.
    public var minSteps = 2000
    /// Fraction of samples that must be classified correctly (1.0: all).
    public var fitThreshold = 1.0
    /// Convergence: epochs without relative loss improvement above `minImprovement`, and a full-batch gradient
    /// norm below `gradientTolerance`, mean a minimum that does not fit.
    public var patience = 20
    public var minImprovement = 1e-3
    public var gradientTolerance = 1e-3
    public var normalize: Normalization = .standard
    public var seeds = 1
    /// First n of the doubling phase (nil: 10 × the number of classes).
    public var start: Int?
    /// Per-seed bisection stops when the bracket is within this fraction of the EMC. Coarse by default: the pooled
    /// boundary (n50 and its interval) is the precise figure, and its refinement places trials where they inform it.
    public var resolution = SearchSettings.defaultResolution
    public static let defaultResolution = 0.25
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
    /// Seeds searched at once, each trial on one thread (records are the same as with one).
    public var jobs = 1
    /// Confirmations, boundary refinement and its cap.
    public var rules = SearchRules()
    /// The loss Hessian check (Lanczos steps and the tolerance on λ_min/λ_max): which trials, see `HessianCheckMode`.
    public var hessianCheck = HessianCheckMode.off
    public var hessianSteps = 40
    public var hessianTolerance = 1e-3
    /// Where trials save checkpoints (every `checkpointInterval` seconds) and resume from them after a kill; nil: none.
    /// Records do not depend on it.
    public var checkpointDirectory: String?
    public var checkpointInterval = 300.0

    public init(data: String, model: String) {
        self.data = data
        self.model = model
    }

    /// Every range check that needs no data: the trainer's options and the search's own.
    public func check() throws {
        _ = try fitOptions()
        guard (1...10_000).contains(seeds) else { throw EMCError(.invalidArgument, "the number of seeds must be between 1 and 10000, not \(seeds)") }
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
    }

    /// The trainer's options, after every range check (each error names its setting).
    public func fitOptions() throws -> FitOptions {
        func bad(_ what: String) -> EMCError { EMCError(.invalidArgument, what) }
        guard (1...(1 << 20)).contains(batch) else { throw bad("the batch size must be between 1 and 1048576, not \(batch)") }
        // Budgets up to 2³¹ (a record's limit): beyond it the epoch budget's arithmetic would overflow.
        let limit = TrialRecord.countLimit
        guard (1...limit).contains(epochs) else { throw bad("the epoch budget must be between 1 and \(limit), not \(epochs)") }
        if let steps { guard (1...limit).contains(steps) else { throw bad("the step budget must be between 1 and \(limit), not \(steps)") } }
        guard (0...limit).contains(minSteps) else { throw bad("the minimum number of steps must be between 0 and \(limit), not \(minSteps)") }
        guard (1...limit).contains(patience) else { throw bad("the patience must be between 1 and \(limit), not \(patience)") }
        guard fitThreshold > 0 && fitThreshold <= 1 else { throw bad("the fit threshold must be in (0, 1], not \(fitThreshold)") }
        guard fitThreshold == 1 || FitOutcome.decimalFraction(fitThreshold) != nil else {
            throw bad("the fit threshold \(fitThreshold) has more than 9 decimals; give it as a decimal such as 0.995")
        }
        guard minImprovement.isFinite, minImprovement >= 0 else { throw bad("the minimum improvement must be a finite number ≥ 0, not \(minImprovement)") }
        guard gradientTolerance.isFinite, gradientTolerance >= 0 else { throw bad("the gradient tolerance must be a finite number ≥ 0, not \(gradientTolerance)") }
        guard (1...1000).contains(hessianSteps) else { throw bad("the Hessian check's Lanczos steps must be between 1 and 1000, not \(hessianSteps)") }
        guard hessianTolerance.isFinite, hessianTolerance >= 0 else { throw bad("the Hessian tolerance must be a finite number ≥ 0, not \(hessianTolerance)") }
        var f = FitOptions()
        f.hessianCheck = hessianCheck
        f.hessian.steps = hessianSteps
        f.hessian.tolerance = hessianTolerance
        f.batchSize = batch
        f.maxEpochs = epochs
        f.maxSteps = steps
        f.minSteps = steps == nil ? minSteps : 0
        f.fitThreshold = fitThreshold
        f.patience = patience
        f.minRelativeImprovement = minImprovement
        f.gradientTolerance = gradientTolerance
        f.evalBatch = max(batch, FitOptions.minimumEvaluationBatch)
        return f
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
    /// Fitted trials near the boundary used this share of the budget: the budget, not a minimum, decides the boundary.
    case budgetBound(share: Double)
    /// Refinement stopped at its cap with the interval still wider than the target.
    case intervalWide(halfWidth: Double, target: Double, cap: Int)
}

/// One EMC search, ready to run: the data opened, the specs parsed, the configuration resolved and checked
/// (including that the model and batch fit in memory). What `emc run`, sweeps, benchmarks and tests call.
public final class SearchRun {
    public let settings: SearchSettings
    public let view: DatasetView
    public private(set) var config: SearchConfig

    public init(_ settings: SearchSettings) throws {
        self.settings = settings
        try settings.check()
        let fit = try settings.fitOptions()
        view = try DatasetView(directory: settings.data)
        let model = try ModelSpec(parsing: settings.model)
        let optimizer = try OptimizerSpec(parsing: settings.optimizer)
        guard let train = view.manifest.splits["train"], train.samples > 0 else { throw EMCError(.missing, "no train split with samples", file: settings.data) }
        let shape = Self.inputShape(view)
        try model.checkMemory(input: shape, classes: view.classes.count, maxBatch: max(fit.batchSize, fit.evalBatch))
        if fit.hessianCheck != .off { try model.checkHessianSupport(input: shape, classes: view.classes.count) }
        let variant = view.manifest.variant.map { ([$0.labelTransform].compactMap { $0 } + $0.inputTransforms).joined(separator: "; ") }
        config = SearchConfig(dataDirectory: settings.data, dataName: view.manifest.name, dataContentId: view.manifest.contentId, variant: variant,
                              model: model, optimizer: optimizer, fit: fit, normalize: settings.normalize.rawValue,
                              start: settings.start ?? 10 * view.classes.count, resolution: settings.resolution, seeds: settings.seeds,
                              maxSamples: train.samples, parameters: try model.parameterCount(input: shape, classes: view.classes.count))
        config.rootContentId = view.root.manifest.contentId
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
        return SearchPlan(seeds: config.seeds, maxTrialsPerSeed: perSeed, doublingSizes: doublings,
                          maxSampleEpochs: sampleEpochs * Double(config.seeds), parameters: config.parameters)
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
        subsetOptions.threads = max(1, EMCEnvironment.cpuCount - 1)
        let fitter = TrainingFitter(view: view, config: checked, subsetOptions: subsetOptions)
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
        subsetOptions.threads = max(1, EMCEnvironment.cpuCount - 1)
        let pilot = try runPilot(log: log, subsetOptions: subsetOptions, events: events)
        let fitter = TrainingFitter(view: view, config: config, subsetOptions: subsetOptions)
        if let folder = settings.checkpointDirectory {
            try FileSystem.createDirectory(folder)
            fitter.checkpoints = (folder, settings.checkpointInterval)
        }
        let search = EMCSearch(config: config, log: log, fitter: fitter)
        search.rules = settings.rules
        search.jobs = settings.jobs
        search.gapN = settings.gapN
        fitter.evaluateTest = settings.evaluateTest
        if settings.jobs > 1 { fitter.subsetOptions.threads = 1 }
        events(.started(config))
        // Epoch progress makes sense for one trial at a time.
        if settings.jobs == 1 { fitter.onEpoch = { n, report in events(.epoch(n: n, report: report)) } }
        search.onTrial = { record, new in events(.trial(record, new: new)) }
        let outcome = try search.run()
        let results = outcome.seeds
        for result in results { events(.seedFinished(result)) }
        var warnings: [SearchWarning] = results.filter { !$0.budgetExhausted.isEmpty }.map {
            .budgetExhausted(seed: $0.seed, n: $0.budgetExhausted, budget: config.fit.budgetDescription)
        }
        warnings += results.compactMap { r in r.saddles.map { .saddles(seed: r.seed, n: $0) } }
        if results.contains(where: { $0.firstUnfitted == nil }) { warnings.append(.fittedEverything(samples: config.maxSamples)) }
        if outcome.budgetBound, let share = outcome.boundaryBudgetShare { warnings.append(.budgetBound(share: share)) }
        if let b = outcome.boundary, !outcome.targetReached {
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

    /// The learning-rate pilot (`SearchSettings.lrGrid`): one trial per rate at the pilot's n, seed 0, the rates in
    /// parallel with `jobs`; the configuration takes the rate that fitted in the fewest steps. Nil without a grid.
    func runPilot(log: ResultsLog, subsetOptions: SubsetOptions, events: @escaping (SearchEvent) -> Void) throws -> [PilotTrial]? {
        guard let grid = settings.lrGrid else { return nil }
        let n = min(config.maxSamples, settings.pilotN ?? SearchSettings.defaultPilotN)
        let slots = ResultSlots<PilotTrial>(grid.count)
        var options = subsetOptions
        if settings.jobs > 1 { options.threads = 1 }
        let searches = grid.map { lr -> EMCSearch in
            var candidate = config
            candidate.optimizer.lr = lr
            let fitter = TrainingFitter(view: view, config: candidate, subsetOptions: options)
            fitter.evaluateTest = settings.evaluateTest
            let search = EMCSearch(config: candidate, log: log, fitter: fitter)
            search.onTrial = { record, new in events(.trial(record, new: new)) }
            return search
        }
        try parallelFor(grid.count, threads: settings.jobs) { i in
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
}
