import EMCCore
import Foundation

/// Where and how often a trial saves its state, so that a killed trial (a cluster's time limit, `scancel`, a node
/// failure) resumes where it was and ends with the same record as an uninterrupted one.
public struct CheckpointOptions: Sendable, Codable, Equatable {
    /// The checkpoint file of this trial (written atomically: a temporary file renamed over it).
    public var path: String
    /// Seconds between saves (at the first epoch boundary after it has passed; 0: every epoch).
    public var interval: Double
    /// For tests: stop with an error once this many epochs have run, as a kill would (nil in real use).
    public var interruptAfterEpoch: Int?

    public init(path: String, interval: Double = 300) {
        self.path = path
        self.interval = interval
    }
}

/// Everything a trial needs to go on: the parameters, the optimizer's state, and the fit loop's own (the epoch, the
/// step count, the loss history, the plateau schedule's factor and drops, the convergence rule's next check, the
/// thresholds reached). Epoch orders come from the counter-based generator by (seed, epoch), so the epoch is the
/// generator's position. `identity` ties it to one trial: a checkpoint of another trial, model or rule is ignored.
struct TrainingCheckpoint: Codable {
    /// Version 2: the digest covers every field (version 1's checksum covered the arrays only, and is not read).
    static let format = "emc-checkpoint/2"
    var format = TrainingCheckpoint.format
    var identity: String
    var epoch: Int
    var steps: Int
    var history: [Double]
    var scale: Double
    var drops: [Int]
    var lastPlateauDrop: Int
    var nextConvergenceCheck: Int
    var plateauNote: String
    var thresholdEpochs: [String: Int]
    var elapsed: Double
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
              c.epoch >= 1, c.epoch <= epochBudget, c.history.count == c.epoch, c.steps >= 0, c.lastPlateauDrop >= 0, c.lastPlateauDrop <= c.epoch,
              c.nextConvergenceCheck >= 0, c.drops.allSatisfy({ $0 >= 0 && $0 <= c.epoch }), c.scale.isFinite, c.scale > 0,
              c.elapsed.isFinite, c.elapsed >= 0, c.thresholdEpochs.values.allSatisfy({ $0 >= 0 && $0 <= c.epoch }),
              c.optimizer.steps >= 0 else { return nil }
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
