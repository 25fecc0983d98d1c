import Foundation

/// Which trainer trains a search's trials: emc's own (`native`), or PyTorch through the worker (`torch`,
/// docs/torch-worker.md). Part of a configuration's identity: the two never pool.
public enum TrainerKind: String, Sendable, Codable, CaseIterable, Hashable {
    case native
    case torch

    /// The precision policy that is part of a torch configuration's identity (float32, TF32 off, deterministic
    /// algorithms): a torch upgrade or another device does not split a configuration, a change of policy does.
    public static let torchPrecisionPolicy = "float32-deterministic"
}

/// The torch trainer's arithmetic: float32 throughout (the default), or bfloat16 autocast for the training steps'
/// forward passes (the weights, gradients and optimizer stay float32; every pass that judges a fit runs in float32).
/// Part of a configuration's identity and of each record.
public enum TorchPrecision: String, Sendable, Codable, CaseIterable, Hashable {
    case float32
    case bf16

    /// The policy as a configuration's canonical text and the records write it.
    public var policy: String { self == .float32 ? TrainerKind.torchPrecisionPolicy : "bf16-autocast-deterministic" }
}

/// What trained a trial, as its record says: the trainer, and for the torch trainer the worker, torch version, device,
/// threads and which of the stated guarantees held (float32, TF32 off, deterministic algorithms).
public struct TrainerRecord: Codable, Sendable, Equatable {
    public var kind: TrainerKind
    public var precision: String
    public var worker: String?
    public var torch: String?
    public var device: String?
    public var deterministic: Bool?
    public var tf32: Bool?
    public var threads: Int?
    /// The parameter count of the model the worker built (checked against emc's own count of the spec).
    public var parameters: Int?
    /// The native trainer's arithmetic revision of the model (`ModelSpec.arithmeticRevision`), from revision 2 on: what
    /// tells a report's rows of two revisions apart (their configurations differ by it, their specs do not).
    public var arithmetic: Int?
    /// Samples per micro-batch of the native trainer's sums over a batch (`ModelSpec.microBatchSamples`), where the
    /// model's arithmetic sums by micro-batches: a setting of its arithmetic revision, recorded with it.
    public var microBatch: Int?

    public init(kind: TrainerKind, precision: String = "float32") {
        self.kind = kind
        self.precision = precision
    }

    /// emc's own trainer: float32 on OpenBLAS, deterministic per kernel set (the record's provenance names it).
    public static let native = TrainerRecord(kind: .native)
}
