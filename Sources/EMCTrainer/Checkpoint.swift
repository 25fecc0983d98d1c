import EMCCore
import Foundation

/// Where and how often a trial saves its state, so that a killed trial (a cluster's time limit, `scancel`, a node
/// failure) resumes where it was and ends with the same record as an uninterrupted one.
public struct CheckpointOptions: Sendable, Codable, Equatable {
    /// The checkpoint file of this trial (written atomically: a temporary file renamed over it).
    public var path: String
    /// Seconds between saves (at the first epoch boundary after it has passed; 0: every epoch).
    public var interval: Double

    public init(path: String, interval: Double = 300) {
        self.path = path
        self.interval = interval
    }
}

/// The fit loop's state between two epochs: the epochs run, the step count, the loss history, the plateau schedule's
/// factor and drops, the convergence rule's next check and its note, the thresholds reached, the seconds spent. The
/// loop keeps nothing else between epochs, so a checkpoint that stores this value resumes a trial exactly.
struct FitLoopState: Codable, Equatable {
    var epoch = 0
    var steps = 0
    var history: [Double] = []
    /// The plateau schedule's learning-rate factor, the epochs it dropped after, and the last of them.
    var scale = 1.0
    var drops: [Int] = []
    var lastPlateauDrop = 0
    /// The first epoch count at which the convergence rule looks again.
    var nextConvergenceCheck: Int
    /// Why the budget ran out, when the loss had plateaued at a large gradient.
    var plateauNote = ""
    /// Per `FitOutcome.thresholds`, the first epoch whose wrong count was within it.
    var thresholdEpochs: [String: Int] = [:]
    /// Seconds of the runs before this one (a resumed trial adds them up).
    var elapsed = 0.0

    init(firstConvergenceCheck: Int) { nextConvergenceCheck = firstConvergenceCheck }

    /// Whether some run of a trial with this epoch budget reaches this state: an epoch in 1...budget with as many losses,
    /// no negative count, no drop or threshold after the epoch, a finite positive scale, a finite elapsed time.
    func isReachable(epochBudget: Int) -> Bool {
        epoch >= 1 && epoch <= epochBudget && history.count == epoch && steps >= 0 && lastPlateauDrop >= 0 && lastPlateauDrop <= epoch
            && nextConvergenceCheck >= 0 && drops.allSatisfy({ $0 >= 0 && $0 <= epoch }) && scale.isFinite && scale > 0
            && elapsed.isFinite && elapsed >= 0 && thresholdEpochs.values.allSatisfy({ $0 >= 0 && $0 <= epoch })
    }

    /// Notes each threshold that `wrong` of n is within, at `epoch`, the first time.
    mutating func reached(_ wrong: Int, of n: Int, epoch: Int) {
        for t in FitOutcome.thresholds where thresholdEpochs[FitOutcome.key(t)] == nil && wrong <= FitOutcome.allowedWrong(n, threshold: t) {
            thresholdEpochs[FitOutcome.key(t)] = epoch
        }
    }

    /// The relative improvement of the best loss of the last `window` epochs over the best before them: nil with too
    /// few epochs, 0 when the best before is not positive (no relative improvement is possible from it).
    func improvement(over window: Int) -> Double? {
        guard history.count > window else { return nil }
        let recent = history.suffix(window).min()!, before = history.dropLast(window).min()!
        return before > 0 ? (before - recent) / before : 0
    }

    /// Whether the best loss before the last `window` epochs is positive (a zero loss cannot improve).
    func canImprove(over window: Int) -> Bool { history.dropLast(window).min().map { $0 > 0 } ?? false }

    /// The plateau schedule, after an epoch: `wait` epochs since the last drop without an improvement of
    /// `minImprovement` drop the rate by gamma, and the convergence rule waits `patience` epochs after it.
    mutating func plateauStep(_ spec: OptimizerSpec, minImprovement: Double, patience: Int) {
        let wait = spec.plateauWait
        guard epoch - lastPlateauDrop >= wait, let gain = improvement(over: wait), !canImprove(over: wait) || gain < minImprovement else { return }
        scale *= spec.gamma
        drops.append(epoch)
        lastPlateauDrop = epoch
        nextConvergenceCheck = epoch + patience
    }

    enum ConvergenceCheck: Equatable {
        /// Not yet the convergence rule's epoch.
        case notDue
        /// Its epoch, and the loss still improves by at least the minimum.
        case improving
        /// Its epoch, and the loss improved less than the minimum over the last `patience` epochs (by this fraction).
        case plateaued(Double)
    }

    /// The convergence rule's look at the loss, after an epoch: whether the loss has plateaued (then the gradient decides).
    func convergenceCheck(patience: Int, minImprovement: Double) -> ConvergenceCheck {
        guard epoch >= nextConvergenceCheck, let gain = improvement(over: patience) else { return .notDue }
        return gain < minImprovement ? .plateaued(gain) : .improving
    }
}

/// Everything a trial needs to go on: the parameters, the optimizer's state and the fit loop's (`FitLoopState`). Epoch
/// orders come from the counter-based generator by (seed, epoch), so the epoch is the generator's position. `identity`
/// ties it to one trial: a checkpoint of another trial, model or rule is ignored.
struct TrainingCheckpoint: Codable {
    /// Version 3: the loop state as one value (versions 1 and 2 are not read: their trials start afresh).
    static let format = "emc-checkpoint/3"
    var format = TrainingCheckpoint.format
    var identity: String
    var loop: FitLoopState
    var parameters: Data
    var optimizer: OptimizerState
    /// SHA-256 of everything restored (the loop state and the arrays: this value encoded with an empty digest): a file
    /// damaged anywhere is not trusted.
    var digest: String

    /// The digest of this state (its own `digest` field left out).
    func computedDigest() throws -> String {
        var copy = self
        copy.digest = ""
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return SHA256.hex(Array(try encoder.encode(copy)))
    }

    /// Writes the state with its digest.
    func write(to path: String) throws {
        var sealed = self
        sealed.digest = try computedDigest()
        try AtomicFileWriter.write(Array(try JSONEncoder().encode(sealed)), to: path)
    }

    /// The checkpoint at `path` when there is one for this trial; nil when there is none, or when it belongs to another
    /// trial, is damaged anywhere (its digest), or holds a loop state no run of this trial reaches (an epoch outside
    /// 1...`epochBudget`, a history of another length, a negative count, a threshold reached after the epoch, a
    /// non-finite scale or time): then the trial starts afresh, which is always correct.
    static func read(_ path: String, identity: String, epochBudget: Int) -> TrainingCheckpoint? {
        guard FileSystem.exists(path), let bytes = try? ReadableFile.contents(of: path),
              let c = try? JSONDecoder().decode(TrainingCheckpoint.self, from: Data(bytes)),
              c.format == format, c.identity == identity, (try? c.computedDigest()) == c.digest,
              c.loop.isReachable(epochBudget: epochBudget), c.optimizer.steps >= 0 else { return nil }
        return c
    }
}

/// An optimizer's state as bytes (Float and Double arrays in this machine's byte order; a checkpoint is read back where
/// it was written, or on a machine of the same kind).
struct OptimizerState: Codable {
    var steps: Int
    var first: Data
    var second: Data
    /// Per Shampoo block: L, R (Double) then their roots (Float), concatenated.
    var shampooBlocks: [Data]
}

extension Data {
    init<T>(copying array: [T]) { self = array.withUnsafeBytes { Data($0) } }

    /// The bytes as `count` values of T, or nil when the size is wrong.
    func values<T>(_: T.Type, count: Int) -> [T]? {
        guard self.count == count * MemoryLayout<T>.stride else { return nil }
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            _ = self.copyBytes(to: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }
}
