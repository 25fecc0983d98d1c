/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
/// counter-based generator behind every random choice in emc.
///
/// A block of four 32-bit words is a pure function of a 64-bit key and a 128-bit counter, so the
/// k-th random number of any stream can be computed directly, on any thread, in any order. That
/// is what makes a shuffle, a random label or a noise image depend only on (seed, sample index).
public enum Philox4x32 {
    public typealias Counter = (UInt32, UInt32, UInt32, UInt32)
    public typealias Key = (UInt32, UInt32)

    @inline(__always)
    static func mulhilo(_ a: UInt32, _ b: UInt32) -> (hi: UInt32, lo: UInt32) {
        let product = UInt64(a) &* UInt64(b)
        return (UInt32(truncatingIfNeeded: product >> 32), UInt32(truncatingIfNeeded: product))
    }

    /// The ten-round block function, exactly as Random123's `philox4x32_R(10, ctr, key)`.
    @inline(__always)
    public static func block(counter: Counter, key: Key) -> Counter {
        var c = counter
        var k = key
        for round in 0..<10 {
            if round > 0 {
                k.0 &+= 0x9E37_79B9
                k.1 &+= 0xBB67_AE85
            }
            let (hi0, lo0) = mulhilo(0xD251_1F53, c.0)
            let (hi1, lo1) = mulhilo(0xCD9E_8D57, c.2)
            c = (hi1 ^ c.1 ^ k.0, lo1, hi0 ^ c.3 ^ k.1, lo0)
        }
        return c
    }
}

/// Well-known stream numbers, so two features never draw the same numbers by accident.
public enum RandomStream: UInt32, Sendable {
    case shuffle = 1
    case labels = 2
    case labelNoise = 3
    case mergeClasses = 4
    case inputNoise = 5
    case permutation = 6
    case subset = 7
    case epochOrder = 8
    case initialization = 9
    case split = 10
    case synthetic = 11
    case hessian = 12
    case test = 0xFFFF
}

/// A stateless random source: `(seed, stream)` names a sequence and `index` picks its element.
///
/// The counter is (index low, index high, stream, attempt); the key is the 64-bit seed. Each
/// index owns one block of four words; `attempt` gives it more blocks when a rejection sampler
/// needs them. Every method is a pure function of its arguments.
public struct CounterRNG: Sendable, Hashable {
    public let seed: UInt64
    public let stream: UInt32

    public init(seed: UInt64, stream: UInt32) {
        self.seed = seed
        self.stream = stream
    }

    public init(seed: UInt64, stream: RandomStream) {
        self.init(seed: seed, stream: stream.rawValue)
    }

    /// A generator for a sub-stream (e.g. one per layer or per epoch), derived by hashing.
    public func derived(_ salt: UInt64) -> CounterRNG {
        let w = block(index: salt, attempt: 0xFFFF_FFFF)
        return CounterRNG(seed: UInt64(w.0) | UInt64(w.1) << 32, stream: stream)
    }

    /// Four random words for `index`.
    @inline(__always)
    public func block(index: UInt64, attempt: UInt32 = 0) -> Philox4x32.Counter {
        Philox4x32.block(
            counter: (UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32), stream, attempt),
            key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    }

    /// One random 32-bit word for `index`.
    @inline(__always)
    public func word(_ index: UInt64) -> UInt32 { block(index: index).0 }

    /// One random 64-bit word for `index`.
    @inline(__always)
    public func word64(_ index: UInt64) -> UInt64 {
        let b = block(index: index)
        return UInt64(b.0) | UInt64(b.1) << 32
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    @inline(__always)
    public func uniform(_ index: UInt64) -> Float {
        Float(word(index) >> 8) * 0x1p-24
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    @inline(__always)
    public func uniformDouble(_ index: UInt64) -> Double {
        Double(word64(index) >> 11) * 0x1p-53
    }

    /// A uniform integer in 0..<bound with no modulo bias (Lemire's multiply-and-reject).
    public func int(_ index: UInt64, below bound: UInt32) -> UInt32 {
        precondition(bound > 0, "CounterRNG.int needs a positive bound")
        let threshold = (0 &- bound) % bound
        var attempt: UInt32 = 0
        while true {
            let b = block(index: index, attempt: attempt)
            for lane in 0..<4 {
                let x = lane == 0 ? b.0 : lane == 1 ? b.1 : lane == 2 ? b.2 : b.3
                let m = UInt64(x) &* UInt64(bound)
                if UInt32(truncatingIfNeeded: m) >= threshold { return UInt32(truncatingIfNeeded: m >> 32) }
            }
            attempt &+= 1
        }
    }

    /// Two independent standard normal values for `index` (Box-Muller on two 32-bit uniforms).
    @inline(__always)
    public func normalPair(_ index: UInt64) -> (Double, Double) {
        let b = block(index: index)
        // u1 in (0, 1] so the logarithm is finite; 32 bits each, plenty for Float outputs.
        let u1 = (Double(b.0) + 1) * 0x1p-32
        let u2 = Double(b.1) * 0x1p-32
        let r = (-2 * _log(u1)).squareRoot()
        let theta = 2 * Double.pi * u2
        return (r * _cos(theta), r * _sin(theta))
    }

    /// One standard normal value for `index`.
    @inline(__always)
    public func normal(_ index: UInt64) -> Double { normalPair(index).0 }

    /// A sequential generator over this stream starting at `index`, for algorithms that want
    /// Swift's `RandomNumberGenerator` (a Fisher-Yates shuffle, say). Deterministic: the n-th
    /// call returns word n of the stream.
    public func sequence(startingAt index: UInt64 = 0) -> PhiloxGenerator {
        PhiloxGenerator(rng: self, position: index)
    }
}

/// `RandomNumberGenerator` over a `CounterRNG` stream: call n gives the 64-bit word for index n.
public struct PhiloxGenerator: RandomNumberGenerator, Sendable {
    public let rng: CounterRNG
    /// The index of the next word.
    public private(set) var position: UInt64

    public mutating func next() -> UInt64 {
        defer { position &+= 1 }
        return rng.word64(position)
    }
}

extension CounterRNG {
    /// A random permutation of 0..<count (Fisher-Yates driven by this stream), as UInt32 indices.
    public func permutation(count: Int) -> [UInt32] {
        var order = [UInt32](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = UInt32(i) }
            initialized = count
        }
        order.withUnsafeMutableBufferPointer { p in
            var i = count - 1
            while i > 0 {
                let j = Int(int(UInt64(i), below: UInt32(i + 1)))
                p.swapAt(i, j)
                i -= 1
            }
        }
        return order
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
@inline(__always) func _sin(_ x: Double) -> Double { Glibc.sin(x) }
#else
import Darwin
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Darwin.cos(x) }
@inline(__always) func _sin(_ x: Double) -> Double { Darwin.sin(x) }
#endif

/// The order samples are visited in during training epoch `epoch`: a pure function of (seed, epoch,
/// count), shared by the trainer and the data pipeline so a prefetcher knows what comes next, and so a
/// resumed run sees the same sequence.
public func epochOrder(seed: UInt64, epoch: Int, count: Int) -> [UInt32] {
    CounterRNG(seed: seed, stream: .epochOrder).derived(UInt64(epoch)).permutation(count: count)
}
