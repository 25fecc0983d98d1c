import EMCCore

/// A label transform: a pure function of (seed, a sample's original index, its label).
///
/// - random: a uniform label in 0..<classes for every sample, ignoring the true one.
/// - noise: with probability p (decided per sample by the seed) the label is replaced by a uniformly
///   chosen *different* class; otherwise kept.
/// - merge: `classes` groups of the original classes. block: contiguous ids (class c goes to c·k/K);
///   random: a seeded balanced partition; superclass: CIFAR-100's coarse labels.
public enum LabelTransform: Sendable, Equatable, CustomStringConvertible {
    public enum MergeMode: String, Sendable, Codable, CaseIterable { case block, random, superclass }

    case random(classes: Int, seed: UInt64)
    case noise(probability: Double, seed: UInt64)
    case merge(classes: Int, mode: MergeMode, seed: UInt64)

    /// The class count after the transform, given the class count before it.
    public func outputClasses(input: Int) -> Int {
        switch self {
        case .random(let k, _): return k
        case .noise: return input
        case .merge(let k, _, _): return k
        }
    }

    /// True when labels after the transform are of another label space than before: a merge, or random labels over
    /// another number of classes. Such a transform must relabel every split.
    public func changesLabelSpace(inputClasses: Int) -> Bool {
        switch self {
        case .merge: return true
        case .random(let k, _): return k != inputClasses
        case .noise: return false
        }
    }

    /// Checks the transform makes sense for `classes` input classes (and CIFAR-100's coarse labels).
    public func validate(inputClasses: Int, coarseOfFine: [Int]?) throws {
        switch self {
        case .random(let k, _):
            guard k >= 1 else { throw EMCError(.invalidArgument, "random labels need at least 1 class") }
        case .noise(let p, _):
            guard (0...1).contains(p) else { throw EMCError(.invalidArgument, "label noise must be between 0 and 1, got \(p)") }
            guard inputClasses >= 2 || p == 0 else { throw EMCError(.invalidArgument, "label noise needs at least 2 classes") }
        case .merge(let k, let mode, _):
            guard k >= 1, k <= inputClasses else {
                throw EMCError(.invalidArgument, "cannot merge \(inputClasses) classes into \(k)")
            }
            if mode == .superclass {
                guard let coarse = coarseOfFine, coarse.count == inputClasses, coarse.allSatisfy({ $0 >= 0 && $0 < k }) else {
                    throw EMCError(.invalidArgument, "superclass merging needs coarse labels for every class (CIFAR-100) with \(k) superclasses")
                }
            }
        }
    }

    /// The class map of a merge (old class → new class).
    public func mergeMap(inputClasses: Int, coarseOfFine: [Int]?) -> [Int]? {
        guard case .merge(let k, let mode, let seed) = self else { return nil }
        switch mode {
        case .block: return (0..<inputClasses).map { $0 * k / inputClasses }
        case .random:
            // A seeded permutation of the classes, then contiguous blocks of it: balanced groups.
            let order = CounterRNG(seed: seed, stream: .mergeClasses).permutation(count: inputClasses)
            var map = [Int](repeating: 0, count: inputClasses)
            for (rank, c) in order.enumerated() { map[Int(c)] = rank * k / inputClasses }
            return map
        case .superclass: return coarseOfFine
        }
    }

    /// The new label of the sample with original index `index` and label `label`. `map` is
    /// `mergeMap(...)` for merges (computed once by the caller).
    @inline(__always)
    public func apply(index: UInt64, label: UInt32, inputClasses: Int, map: [Int]?) -> UInt32 {
        switch self {
        case .random(let k, let seed):
            return CounterRNG(seed: seed, stream: .labels).int(index, below: UInt32(k))
        case .noise(let p, let seed):
            let rng = CounterRNG(seed: seed, stream: .labelNoise)
            let b = rng.block(index: index)
            // 53-bit uniform from the first two words decides; the other class comes from attempt 1.
            let u = Double(UInt64(b.0) | UInt64(b.1 >> 11) << 32) * 0x1p-53
            guard u < p else { return label }
            let shift = CounterRNG(seed: seed ^ 0x9E37_79B9_7F4A_7C15, stream: .labelNoise).int(index, below: UInt32(inputClasses - 1))
            return (label + 1 + shift) % UInt32(inputClasses)
        case .merge:
            return UInt32(map![Int(label)])
        }
    }

    public var description: String {
        switch self {
        case .random(let k, let seed): return "labels=random,classes=\(k),seed=\(seed)"
        case .noise(let p, let seed): return "label-noise=\(p),seed=\(seed)"
        case .merge(let k, let mode, let seed): return "merge-classes=\(k),mode=\(mode.rawValue),seed=\(seed)"
        }
    }

    /// Parses `description`'s form back (strictly: unknown or repeated keys and bad numbers are errors).
    public init(parsing text: String) throws {
        var o = try SpecOptions(text, spec: text)
        let seed = try o.seed()
        if o.has("labels") {
            _ = try o.choice("labels", default: "random", from: ["random"])
            self = .random(classes: try o.int("classes", default: 0, in: 1...(1 << 24)), seed: seed)
            guard o.has("classes") else { throw EMCError(.invalidArgument, "'\(text)' needs classes=k") }
        } else if o.has("label-noise") {
            self = .noise(probability: try o.double("label-noise", default: 0, in: 0...1), seed: seed)
        } else if o.has("merge-classes") {
            let k = try o.int("merge-classes", default: 1, in: 1...(1 << 24))
            let mode = MergeMode(rawValue: try o.choice("mode", default: "block", from: MergeMode.allCases.map(\.rawValue)))!
            self = .merge(classes: k, mode: mode, seed: seed)
        } else {
            throw EMCError(.invalidArgument, "'\(text)' is not a label transform (labels=random, label-noise=p or merge-classes=k)")
        }
        try o.rejectUnused()
    }
}
