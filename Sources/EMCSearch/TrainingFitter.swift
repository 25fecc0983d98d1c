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

    public init(view: DatasetView, config: SearchConfig, subsetOptions: SubsetOptions) {
        self.view = view
        self.config = config
        self.subsetOptions = subsetOptions
    }

    /// Measure each trained model's accuracy on the test split (a forward pass; the generalization gap at any n).
    public var evaluateTest = true

    public func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
        var options = subsetOptions
        options.seed = UInt64(seed)
        let subset = try Subset(view: view, split: "train", count: n, options: options)
        var fit = config.fit
        fit.seed = SearchConfig.trialSeed(seed: seed, n: n, replicate: replicate)
        fit.evalBatch = min(fit.evalBatch, max(fit.batchSize, n))
        let model = try config.model.build(input: subset.shape, classes: view.classes.count, maxBatch: max(fit.batchSize, fit.evalBatch))
        model.initialize(seed: fit.seed)
        var outcome = try Trainer(model: model, data: subset, optimizer: config.optimizer, options: fit).fit { [onEpoch] report in onEpoch?(n, report) }
        if evaluateTest, let testSplit = view.manifest.splits["test"], testSplit.samples > 0 {
            var testOptions = subsetOptions
            testOptions.prefetchBatches = 0
            let test = try Subset(view: view, split: "test", count: testSplit.samples, options: testOptions)
            var evalOptions = fit
            evalOptions.evalBatch = min(config.fit.evalBatch, model.maxBatch)
            let (_, wrong) = try Trainer(model: model, data: test, optimizer: config.optimizer, options: evalOptions).fullPass(gradient: false)
            outcome.testAccuracy = Double(test.count - wrong) / Double(test.count)
        }
        return outcome
    }
}
