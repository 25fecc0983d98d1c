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

    func train(n: Int, seed: Int, replicate: Int = 0) throws -> (FitOutcome, Model, FitOptions) {
        var options = subsetOptions
        options.seed = UInt64(seed)
        let subset = try Subset(view: view, split: "train", count: n, options: options)
        var fit = config.fit
        fit.seed = SearchConfig.trialSeed(seed: seed, n: n, replicate: replicate)
        fit.evalBatch = min(fit.evalBatch, max(fit.batchSize, n))
        let model = try config.model.build(input: subset.shape, classes: view.classes.count, maxBatch: max(fit.batchSize, fit.evalBatch))
        model.initialize(seed: fit.seed)
        let trainer = try Trainer(model: model, data: subset, optimizer: config.optimizer, options: fit)
        let outcome = try trainer.fit { [onEpoch] report in onEpoch?(n, report) }
        return (outcome, model, fit)
    }

    public func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome { try train(n: n, seed: seed, replicate: replicate).0 }

    /// Retrains at (n, seed) (deterministic: the same model as the trial) and measures test accuracy.
    public func evaluate(n: Int, seed: Int) throws -> (outcome: FitOutcome, testAccuracy: Double?) {
        let (outcome, model, fit) = try train(n: n, seed: seed)
        guard let testSplit = view.manifest.splits["test"], testSplit.samples > 0 else { return (outcome, nil) }
        var options = subsetOptions
        options.prefetchBatches = 0
        let test = try Subset(view: view, split: "test", count: testSplit.samples, options: options)
        var evalOptions = fit
        evalOptions.evalBatch = min(fit.evalBatch, model.maxBatch)
        let (_, wrong) = try Trainer(model: model, data: test, optimizer: config.optimizer, options: evalOptions).fullPass(gradient: false)
        return (outcome, Double(test.count - wrong) / Double(test.count))
    }
}
