import Foundation
import EMCCore
import EMCTrainer

/// One line of the results log: a trial (n, seed → outcome). Logs written before every trial was evaluated on the
/// test split also hold `final` lines (a retraining at the EMC point with its test accuracy); reports still read them.
public struct TrialRecord: Codable, Sendable, Equatable {
    /// How non-finite numbers (a diverged trial's loss) are written in the log: as the strings "nan", "inf", "-inf".
    public static let nonFiniteEncoding = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(
        positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    public static let nonFiniteDecoding = JSONDecoder.NonConformingFloatDecodingStrategy.convertFromString(
        positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

    public enum Kind: String, Codable, Sendable { case trial, final }

    /// The record format written now. Version 1 (no `schema` field) had no replicates, fit epochs or provenance;
    /// such logs still read, their missing fields nil.
    public static let currentSchema = 2

    /// What produced a record, so a figure can be traced to the code and machine that made it.
    public struct Provenance: Codable, Sendable, Equatable {
        public var emc: String
        public var commit: String?
        public var cpu: String
        /// The BLAS and the kernel set it chose (results are repeatable per kernel set, not across them).
        public var blas: String
        public var threads: Int

        public init(emc: String, commit: String?, cpu: String, blas: String, threads: Int) {
            self.emc = emc
            self.commit = commit
            self.cpu = cpu
            self.blas = blas
            self.threads = threads
        }
    }

    public var kind: Kind
    /// Hash of the full configuration including the seed: the resume key.
    public var key: String
    /// Hash of the configuration without the seed: groups a configuration's seeds in reports.
    public var config: String
    public var seed: Int
    public var n: Int
    public var result: FitOutcome.Result
    public var fitted: Bool
    public var reason: String
    public var epochs: Int
    public var steps: Int
    public var loss: Double
    public var trainAccuracy: Double
    public var wrong: Int
    public var gradientNorm: Double?
    public var seconds: Double
    /// The trained model's accuracy on the test split, when the search evaluated it (and on the `final` lines of
    /// older logs).
    public var testAccuracy: Double?
    /// Descriptive fields, so a report can be made from the log alone.
    public var data: String
    public var variant: String?
    public var model: String
    public var optimizer: String
    public var parameters: Int
    public var lossHistory: [Double]?
    /// The data's content id, and that of the unperturbed set at the bottom of its variant chain (absent in logs
    /// written before they were recorded). Reports pair a random-label variant with its true-label base by these.
    public var dataContentId: String?
    public var rootContentId: String?
    /// Record format (nil: version 1).
    public var schema: Int?
    /// Which initialisation at (seed, n): 0 is the first trial, 1 and up confirm or refine (nil: 0).
    public var replicate: Int?
    /// Epoch and optimizer step at which the trial fitted (fitted trials only).
    public var fitEpoch: Int?
    public var fitStep: Int?
    /// First epoch at which the wrong count reached each threshold ("0.99", "0.995", "0.999").
    public var thresholdEpochs: [String: Int]?
    /// The loss Hessian's check at the trial's final parameters (`--hessian-check`).
    public var hessian: HessianCheck?
    /// The epoch this trial resumed from after a kill (its checkpoint); the rest of the record is what an uninterrupted
    /// trial's would be, but for the seconds.
    public var resumedFromEpoch: Int?
    /// How a model with batch normalisation was judged (`FitOutcome.batchNormDecision`: "eval-recomputed"); nil without.
    public var batchNorm: String?
    /// Why the search ran this trial (nil in logs that predate roles).
    public var role: TrialRole?
    public var provenance: Provenance?
    /// What trained the trial: the native trainer, or torch with its version, device and guarantees (nil in logs
    /// written before there was a choice: the native trainer).
    public var trainer: TrainerRecord?
    /// The training settings a report groups by and shows when they differ (nil in logs that predate them):
    /// batch size, the budget as a person reads it, this trial's budget in epochs, and the fit threshold.
    public var batch: Int?
    public var budget: String?
    public var epochBudget: Int?
    public var fitThreshold: Double?
    /// The fit check's cadence in steps when not every epoch (`TrainingRules.checkEvery`), and the named protocol the
    /// settings came from ("paper", or "paper (budget scaled: ...)").
    public var checkEvery: Int?
    public var `protocol`: String?

    /// The replicate, 0 for logs that predate replicates.
    public var replicateIndex: Int { replicate ?? 0 }

    public var sampleEpochs: Double { Double(n) * Double(epochs) }

    public init(kind: Kind, key: String, config: String, seed: Int, n: Int, result: FitOutcome.Result, fitted: Bool, reason: String,
                epochs: Int, steps: Int, loss: Double, trainAccuracy: Double, wrong: Int, gradientNorm: Double?, seconds: Double,
                testAccuracy: Double?, data: String, variant: String?, model: String, optimizer: String, parameters: Int, lossHistory: [Double]?) {
        self.kind = kind
        self.key = key
        self.config = config
        self.seed = seed
        self.n = n
        self.result = result
        self.fitted = fitted
        self.reason = reason
        self.epochs = epochs
        self.steps = steps
        self.loss = loss
        self.trainAccuracy = trainAccuracy
        self.wrong = wrong
        self.gradientNorm = gradientNorm
        self.seconds = seconds
        self.testAccuracy = testAccuracy
        self.data = data
        self.variant = variant
        self.model = model
        self.optimizer = optimizer
        self.parameters = parameters
        self.lossHistory = lossHistory
    }
}

/// Why the search ran a trial; the log writes its raw value.
public enum TrialRole: String, Codable, Sendable, CaseIterable {
    /// Doubling and bisection: replicate 0 of its seed at that n.
    case search
    /// A second initialisation after a failure: replicate 1.
    case confirm
    /// Placed on either side of n50 to narrow the boundary's interval: replicate `EMCSearch.refinementReplicateBase` + k.
    case refine
    /// Every seed trained at one common n, for the generalization gap there: replicate `EMCSearch.gapReplicate`.
    case gap
    /// A learning-rate pilot's trial: replicate 0 of seed 0 at the pilot's n, one configuration per rate.
    case pilot
}

extension TrialRecord {
    /// The largest epoch count, budget or seed a record may hold (2³¹): beyond it a record is damaged or forged, and
    /// the arithmetic of reports (budget curves, sample-epochs) would overflow.
    public static let countLimit = TrainingRules.countLimit

    /// Checks every number a report computes with against its range; the error names the field and the range.
    public func validate() throws {
        func check(_ name: String, _ value: Int?, _ range: ClosedRange<Int>) throws {
            if let value, !range.contains(value) {
                throw EMCError(.format, "field `\(name)` is \(value), outside \(range.lowerBound)…\(range.upperBound)", place: .field(name))
            }
        }
        let limit = Self.countLimit
        try check("n", n, 1...(1 << 40))
        try check("seed", seed, 0...limit)
        try check("replicate", replicate, 0...limit)
        try check("epochs", epochs, 0...limit)
        try check("steps", steps, 0...(1 << 50))
        try check("epochBudget", epochBudget, 1...limit)
        try check("fitEpoch", fitEpoch, 0...limit)
        try check("fitStep", fitStep, 0...(1 << 50))
        try check("wrong", wrong, 0...n)
        try check("parameters", parameters, 0...(1 << 50))
        try check("batch", batch, 1...limit)
        try check("checkEvery", checkEvery, 1...limit)
        for (key, epoch) in thresholdEpochs ?? [:] { try check("thresholdEpochs.\(key)", epoch, 0...limit) }
        for (name, value) in [("seconds", seconds), ("trainAccuracy", trainAccuracy)] where !(value.isFinite && value >= 0) {
            throw EMCError(.format, "field `\(name)` is \(value), not a finite number ≥ 0", place: .field(name))
        }
        for (name, value) in [("key", key), ("config", config), ("data", data), ("model", model), ("optimizer", optimizer)] where value.isEmpty {
            throw EMCError(.format, "field `\(name)` is empty", place: .field(name))
        }
        if let t = fitThreshold, !(t > 0 && t <= 1) {
            throw EMCError(.format, "field `fitThreshold` is \(t), outside (0, 1]", place: .field("fitThreshold"))
        }
    }

    /// Part of its seed's own search (doubling, bisection, confirmations): the trials that decide the seed's EMC.
    /// Not a refinement trial (pooled over seeds), a trial at the common gap n, or a learning-rate pilot.
    public var isSeedSearch: Bool {
        kind == .trial && role != .pilot && role != .gap && role != .refine && replicateIndex < EMCSearch.refinementReplicateBase
    }

    /// The trial as the boundary fit takes it: its n, whether it fitted, and its seed (the subset it trained on).
    public var observation: (n: Int, fitted: Bool, seed: Int) { (n, fitted, seed) }

    /// Enters the boundary fit p(fit | n): the seeds' searches and the refinement. Gap trials (trained after the
    /// search, at an n chosen for comparing models) and pilots (their rate was chosen on their outcome) do not.
    public var entersBoundary: Bool {
        kind == .trial && role != .pilot && role != .gap && replicateIndex < EMCSearch.gapReplicate
    }
}

/// The one definition of a seed's EMC (docs/methods.md), used by `emc run`, `emc report`, the CSVs and `--json`.
public enum SeedEMC {
    /// From the trials of one seed's own search (`isSeedSearch`; others are ignored): the first unfitted n is the
    /// smallest n where the search's failure was confirmed (two failed initialisations), or, for a search without
    /// confirmations (none in the log), the smallest failed n; the EMC is the largest fitted n below it (every fitted n
    /// when there is none). 0 when nothing below it fitted.
    public static func of(_ trials: [TrialRecord]) -> (emc: Int, firstUnfitted: Int?) {
        let own = trials.filter(\.isSeedSearch)
        var failures: [Int: Int] = [:]
        for t in own where !t.fitted { failures[t.n, default: 0] += 1 }
        let confirms = own.contains { $0.replicateIndex >= 1 }
        let firstUnfitted = confirms ? failures.filter { $0.value >= 2 }.keys.min() : failures.keys.min()
        let emc = own.filter { $0.fitted && $0.n < (firstUnfitted ?? Int.max) }.map(\.n).max() ?? 0
        return (emc, firstUnfitted)
    }
}
