import EMCCore
import EMCTrainer
import Foundation

/// Everything that determines a search's trials. Its hash keys the results log.
public struct SearchConfig: Sendable {
    /// Data: the shard set (or variant) folder, its name and content id.
    public var dataDirectory: String
    public var dataName: String
    public var dataContentId: String
    public var variant: String?
    /// The content id of the unperturbed set at the bottom of the data's variant chain (the data's own when it is no variant).
    public var rootContentId: String?
    public var model: ModelSpec
    public var optimizer: OptimizerSpec
    public var fit: FitOptions
    public var normalize: String
    /// First n of the doubling phase (default 10 × classes).
    public var start: Int
    /// Bisection stops when (first unfitted − last fitted) ≤ resolution × last fitted.
    public var resolution: Double
    public var seeds: Int
    /// The first seed this run searches (seeds `firstSeed ..< firstSeed + seeds`): a later run adds seeds to a log.
    public var firstSeed = 0
    public var seedRange: Range<Int> { firstSeed ..< firstSeed + seeds }
    /// The largest n there is (the train split's size).
    public var maxSamples: Int
    public var parameters: Int
    /// Who trains the trials. The torch trainer adds a line to the canonical text (with its precision policy); a native
    /// configuration's text, and so every native log's keys, are what they always were.
    public var trainer = TrainerKind.native
    /// A `py:` model's source hash (SHA-256 of its file, from the worker): an edited model never pools with the old one.
    public var modelSource: String?
    /// The torch trainer's arithmetic (its policy is in the trainer line).
    public var precision = TorchPrecision.float32
    /// The named protocol the settings came from, for the records (not part of the identity: the settings are).
    public var protocolName: String?

    public init(dataDirectory: String, dataName: String, dataContentId: String, variant: String?, model: ModelSpec,
                optimizer: OptimizerSpec, fit: FitOptions, normalize: String, start: Int, resolution: Double, seeds: Int,
                maxSamples: Int, parameters: Int) {
        self.dataDirectory = dataDirectory
        self.dataName = dataName
        self.dataContentId = dataContentId
        self.variant = variant
        self.model = model
        self.optimizer = optimizer
        self.fit = fit
        self.normalize = normalize
        self.start = start
        self.resolution = resolution
        self.seeds = seeds
        self.maxSamples = maxSamples
        self.parameters = parameters
    }

    /// The canonical text of the configuration (without the seed).
    public var canonical: String {
        let rules = fit.rules.canonicalLines
        return (["emc-search/1", "data:\(dataContentId)", "variant:\(variant ?? "-")", "model:\(model)", "optimizer:\(optimizer)"]
                + rules.main + ["normalize:\(normalize)"] + rules.tail + trainerLines + arithmeticLines).joined(separator: "\n")
    }

    /// The native trainer's arithmetic revision of the model (`ModelSpec.arithmeticRevision`), from revision 2 on
    /// (earlier logs keep their keys).
    private var arithmeticLines: [String] {
        let revision = model.arithmeticRevision
        return trainer == .native && revision > 1 ? ["arithmetic:\(model.family.rawValue)/\(revision)"] : []
    }

    private var trainerLines: [String] {
        (trainer == .native ? [] : ["trainer:\(trainer.rawValue),\(precision.policy)"]) + (modelSource.map { ["modelsource:\($0)"] } ?? [])
    }

    public var configHash: String { SHA256.hex(canonical) }

    /// The resume key of one seed's trials.
    public func key(seed: Int) -> String { SHA256.hex(canonical + "\nseed:\(seed)") }

    /// The initialisation and epoch-order seed of the trial at (seed, n, replicate): a fresh model per trial. Replicate 0
    /// keeps the seed trials had before replicates existed, so older logs resume.
    public static func trialSeed(seed: Int, n: Int, replicate: Int = 0) -> UInt64 {
        let rng = CounterRNG(seed: UInt64(seed), stream: .initialization)
        return replicate == 0 ? rng.word64(UInt64(n)) : rng.derived(UInt64(replicate)).word64(UInt64(n))
    }
}
