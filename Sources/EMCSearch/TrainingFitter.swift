import EMCCore
import EMCPipeline
import EMCVariants
import EMCTrainer

/// The real fitter: the seed's nested subset of n samples, a freshly initialised model seeded by (seed, n),
/// trained by the configured optimizer and rules.
public final class TrainingFitter: Fitter {
    public let view: DatasetView
    public let config: SearchConfig
    public var subsetOptions: SubsetOptions
    public var onEpoch: ((Int, EpochReport) -> Void)?
    /// The test split, decoded once per thread that evaluates and reused by every later trial on it.
    private var testSets: ObjectPool<Subset>!

    public init(view: DatasetView, config: SearchConfig, subsetOptions: SubsetOptions) {
        self.view = view
        self.config = config
        self.subsetOptions = subsetOptions
        testSets = ObjectPool { [unowned self] in
            var options = self.subsetOptions
            options.prefetchBatches = 0
            return try Subset(view: self.view, split: "test", count: self.view.manifest.splits["test"]?.samples ?? 0, options: options)
        }
    }

    /// Threads each trial trains on (`ThreadTeam`: the same bits at any count).
    public var threads = 1
    /// Measure each trained model's accuracy on the test split (a forward pass; the generalization gap at any n).
    public var evaluateTest = true
    /// The folder where trials keep checkpoints, and the seconds between saves (nil: no checkpoints).
    public var checkpoints: (folder: String, interval: Double)?

    public func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
        var options = subsetOptions
        options.seed = UInt64(seed)
        let subset = try Subset(view: view, split: "train", count: n, options: options)
        var fit = config.fit
        fit.seed = SearchConfig.trialSeed(seed: seed, n: n, replicate: replicate)
        fit.evalBatch = min(fit.evalBatch, max(fit.batch, n))
        if let checkpoints {
            let name = String(config.key(seed: seed).prefix(16)) + "-n\(n)-r\(replicate).ckpt"
            fit.checkpoint = CheckpointOptions(path: FileSystem.join(checkpoints.folder, name), interval: checkpoints.interval)
        }
        let model = try config.model.build(input: subset.shape, classes: view.classes.count, maxBatch: max(fit.batch, fit.evalBatch),
                                            threads: threads)
        model.initialize(seed: fit.seed)
        let trainer = try Trainer(model: model, data: subset, optimizer: config.optimizer, options: fit)
        var outcome = try trainer.fit { [onEpoch] report in onEpoch?(n, report) }
        if evaluateTest, let testSplit = view.manifest.splits["test"], testSplit.samples > 0 {
            var evalOptions = fit
            evalOptions.evalBatch = min(config.fit.evalBatch, model.maxBatch)
            // A batch-norm model is tested as its fit was judged: with the statistics of its n training samples.
            try trainer.prepareEvaluation()
            defer { model.setMode(.training) }
            let wrong = try testSets.with { test in
                try Trainer(model: model, data: test, optimizer: config.optimizer, options: evalOptions).evaluateAsIs().wrong
            }
            outcome.testAccuracy = Double(testSplit.samples - wrong) / Double(testSplit.samples)
        }
        return outcome
    }
}
