import EMCCore
import Testing

@Suite("Philox4x32-10 and CounterRNG")
struct PhiloxTests {
    /// Random123's kat_vectors, the three "philox4x32 10" lines: counter, key → output.
    @Test("matches the published Random123 known answers", arguments: [
        ((0x0000_0000, 0x0000_0000, 0x0000_0000, 0x0000_0000), (0x0000_0000, 0x0000_0000) as (UInt32, UInt32),
         (0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8)),
        ((0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff), (0xffff_ffff, 0xffff_ffff),
         (0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd)),
        ((0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), (0xa409_3822, 0x299f_31d0),
         (0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1)),
    ] as [((UInt32, UInt32, UInt32, UInt32), (UInt32, UInt32), (UInt32, UInt32, UInt32, UInt32))])
    func knownAnswers(counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32),
                      expected: (UInt32, UInt32, UInt32, UInt32)) {
        let out = Philox4x32.block(counter: counter, key: key)
        #expect([out.0, out.1, out.2, out.3] == [expected.0, expected.1, expected.2, expected.3])
    }

    @Test("is a pure function of (seed, stream, index)")
    func stateless() {
        let a = CounterRNG(seed: 42, stream: .labels)
        let b = CounterRNG(seed: 42, stream: .labels)
        let forward = (0..<1000).map { a.word(UInt64($0)) }
        let backward = (0..<1000).reversed().map { b.word(UInt64($0)) }.reversed()
        #expect(forward == Array(backward))
        #expect(CounterRNG(seed: 43, stream: .labels).word(0) != a.word(0))
        #expect(CounterRNG(seed: 42, stream: .inputNoise).word(0) != a.word(0))
    }

    @Test("uniform integers below k are uniform (chi-square) with no modulo bias")
    func boundedIntegersUniform() {
        let seed: UInt64 = 20261123
        let rng = CounterRNG(seed: seed, stream: .test)
        let k: UInt32 = 10, n = 100_000
        var counts = [Int](repeating: 0, count: Int(k))
        for i in 0..<n {
            let v = rng.int(UInt64(i), below: k)
            counts[Int(v)] += 1
        }
        let expected = Double(n) / Double(k)
        let chi2 = counts.reduce(0.0) { $0 + pow2(Double($1) - expected) / expected }
        // 9 degrees of freedom: P(chi2 > 27.88) = 0.001.
        #expect(chi2 < 27.88, "chi-square \(chi2) for counts \(counts), seed \(seed)")
    }

    @Test("a bound that is not a power of two stays in range and hits every value")
    func oddBound() {
        let rng = CounterRNG(seed: 7, stream: .test)
        let bound: UInt32 = 3_000_000_019 // > 2^31: rejection happens often
        var seenHigh = false
        for i in 0..<10_000 {
            let v = rng.int(UInt64(i), below: bound)
            #expect(v < bound)
            if v > 2_500_000_000 { seenHigh = true }
        }
        #expect(seenHigh)
        #expect((0..<100).allSatisfy { rng.int(UInt64($0), below: 1) == 0 })
    }

    @Test("uniform floats lie in [0, 1) with mean 1/2 and variance 1/12")
    func uniformFloats() {
        let rng = CounterRNG(seed: 99, stream: .test)
        let n = 200_000
        var sum = 0.0, sumSq = 0.0
        for i in 0..<n {
            let u = Double(rng.uniform(UInt64(i)))
            #expect(u >= 0 && u < 1)
            sum += u
            sumSq += u * u
        }
        let mean = sum / Double(n), variance = sumSq / Double(n) - mean * mean
        #expect(abs(mean - 0.5) < 0.005)
        #expect(abs(variance - 1.0 / 12) < 0.002)
    }

    @Test("normals have mean 0, variance 1, skew 0 and kurtosis 3")
    func normalMoments() {
        let rng = CounterRNG(seed: 5, stream: .inputNoise)
        var values: [Double] = []
        for i in 0..<100_000 {
            let (a, b) = rng.normalPair(UInt64(i))
            values.append(a)
            values.append(b)
        }
        let n = Double(values.count)
        let mean = values.reduce(0, +) / n
        let m2 = values.reduce(0) { $0 + pow2($1 - mean) } / n
        let m3 = values.reduce(0) { $0 + pow2($1 - mean) * ($1 - mean) } / n
        let m4 = values.reduce(0) { $0 + pow2(pow2($1 - mean)) } / n
        // Standard errors at n = 200k: mean 0.0022, variance 0.0032, skew 0.0055, kurtosis 0.011.
        #expect(abs(mean) < 0.01)
        #expect(abs(m2 - 1) < 0.015)
        #expect(abs(m3 / pow(m2, 1.5)) < 0.03)
        #expect(abs(m4 / (m2 * m2) - 3) < 0.06)
        #expect(values.allSatisfy { $0.isFinite })
    }

    @Test("permutation is a bijection and depends only on the seed")
    func permutation() {
        let rng = CounterRNG(seed: 11, stream: .shuffle)
        let p = rng.permutation(count: 10_000)
        #expect(Set(p).count == 10_000)
        #expect(p.max() == 9_999)
        #expect(p == CounterRNG(seed: 11, stream: .shuffle).permutation(count: 10_000))
        #expect(p != CounterRNG(seed: 12, stream: .shuffle).permutation(count: 10_000))
        #expect(rng.permutation(count: 0).isEmpty)
        #expect(rng.permutation(count: 1) == [0])
    }

    @Test("the sequential generator walks the stream's 64-bit words")
    func sequentialGenerator() {
        let rng = CounterRNG(seed: 3, stream: .test)
        var g = rng.sequence(startingAt: 10)
        #expect(g.next() == rng.word64(10))
        #expect(g.next() == rng.word64(11))
        #expect(rng.derived(1) != rng.derived(2))
        #expect(rng.derived(1) == rng.derived(1))
    }
}

func pow2(_ x: Double) -> Double { x * x }
#if canImport(Glibc)
import Glibc
#endif
