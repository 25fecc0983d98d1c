import EMCCore

/// An input transform, applied when a sample is read: a pure function of (seed, the sample's original
/// index, its values).
///
/// - gaussian: the sample is replaced by noise with the base set's per-channel (per-feature) mean and
///   standard deviation; 8-bit images are rounded and clipped to 0...255.
/// - permute: one seeded permutation of pixel positions (channels kept together), the same for every
///   sample; for tabular data, of feature positions.
/// - permuteEach: a different seeded permutation for each sample.
public enum InputTransform: Sendable, Equatable, CustomStringConvertible {
    case gaussian(seed: UInt64)
    case permute(seed: UInt64)
    case permuteEach(seed: UInt64)

    public var description: String {
        switch self {
        case .gaussian(let s): return "inputs=gaussian,seed=\(s)"
        case .permute(let s): return "inputs=permute,seed=\(s)"
        case .permuteEach(let s): return "inputs=permute-each,seed=\(s)"
        }
    }

    /// Parses `description`'s form back (strictly: unknown or repeated keys and bad numbers are errors).
    public init(parsing text: String) throws {
        var o = try SpecOptions(text, spec: text)
        guard o.has("inputs") else { throw EMCError(.invalidArgument, "'\(text)' is not an input transform (inputs=gaussian, permute or permute-each)") }
        let kind = try o.choice("inputs", default: "", from: ["gaussian", "permute", "permute-each"])
        let seed = try o.seed()
        try o.rejectUnused()
        switch kind {
        case "gaussian": self = .gaussian(seed: seed)
        case "permute": self = .permute(seed: seed)
        default: self = .permuteEach(seed: seed)
        }
    }
}

/// An input transform made ready for one dataset: precomputed permutation and statistics, so that
/// `apply` does no setup per sample. Thread-safe (immutable).
public struct PreparedInputTransform: Sendable {
    public let transform: InputTransform
    public let schema: SampleSchema
    let positions: Int
    let width: Int
    let permutation: [UInt32]
    let mean: [Double]
    let std: [Double]

    /// `mean` and `std` are the base set's per-channel (images) or per-feature (tabular) statistics.
    public init(_ transform: InputTransform, schema: SampleSchema, mean: [Double], std: [Double]) throws {
        self.transform = transform
        self.schema = schema
        width = schema.kind == .image ? schema.channels : 1
        positions = schema.kind == .image ? schema.height * schema.width : schema.features
        self.mean = mean
        self.std = std
        if case .gaussian = transform {
            guard mean.count == schema.statisticsWidth, std.count == schema.statisticsWidth else {
                throw EMCError(.invalidArgument, "gaussian inputs need the base set's statistics (\(schema.statisticsWidth) values)")
            }
        }
        if case .permute(let seed) = transform {
            permutation = CounterRNG(seed: seed, stream: .permutation).permutation(count: positions)
        } else {
            permutation = []
        }
    }

    /// Transforms one sample's bytes in place (`scratch` must hold `schema.sampleBytes`).
    public func apply(_ sample: UnsafeMutableRawBufferPointer, index: UInt64, scratch: UnsafeMutableRawBufferPointer) {
        switch transform {
        case .gaussian(let seed):
            let rng = CounterRNG(seed: seed, stream: .inputNoise).derived(index)
            if schema.kind == .image {
                let p = sample.bindMemory(to: UInt8.self)
                @inline(__always) func pixel(_ z: Double, _ i: Int) -> UInt8 {
                    let c = i % width
                    return UInt8(max(0, min(255, (mean[c] + std[c] * z).rounded())))
                }
                var i = 0
                while i < p.count {
                    let (a, b) = rng.normalPair(UInt64(i / 2))
                    p[i] = pixel(a, i)
                    if i + 1 < p.count { p[i + 1] = pixel(b, i + 1) }
                    i += 2
                }
            } else {
                let f = sample.bindMemory(to: Float.self)
                for j in 0..<f.count { f[j] = Float(mean[j] + std[j] * rng.normal(UInt64(j))) }
            }
        case .permute:
            permute(sample, by: permutation, scratch: scratch)
        case .permuteEach(let seed):
            let order = CounterRNG(seed: seed, stream: .permutation).derived(index).permutation(count: positions)
            permute(sample, by: order, scratch: scratch)
        }
    }

    /// out position j takes input position order[j] (each position is `width` channels of the sample's element size).
    private func permute(_ sample: UnsafeMutableRawBufferPointer, by order: [UInt32], scratch: UnsafeMutableRawBufferPointer) {
        let unit = sample.count / positions
        scratch.copyMemory(from: UnsafeRawBufferPointer(sample))
        for (j, source) in order.enumerated() {
            (sample.baseAddress! + j * unit).copyMemory(from: scratch.baseAddress! + Int(source) * unit, byteCount: unit)
        }
    }

    /// The permutation shared by every sample (`permute` only).
    public var sharedPermutation: [UInt32] { permutation }
}
