import EMCCore
import EMCTransforms
import Foundation
import Testing

@Suite("Label and input transforms")
struct TransformTests {
    @Test("random labels are uniform (chi-square) and a pure function of (seed, index)")
    func randomUniform() {
        let seed: UInt64 = 42
        let t = LabelTransform.random(classes: 10, seed: seed)
        var counts = [Int](repeating: 0, count: 10)
        for i in 0..<100_000 { counts[Int(t.apply(index: UInt64(i), label: 3, inputClasses: 10, map: nil))] += 1 }
        let chi2 = counts.reduce(0.0) { $0 + pow(Double($1) - 10_000, 2) / 10_000 }
        #expect(chi2 < 27.88, "chi-square \(chi2), counts \(counts), seed \(seed)")
        #expect(t.apply(index: 77, label: 0, inputClasses: 10, map: nil) == t.apply(index: 77, label: 9, inputClasses: 10, map: nil))
    }

    @Test("label noise changes a fraction p ± 3σ, always to a different class", arguments: [0.1, 0.5, 0.9])
    func noise(p: Double) {
        let seed: UInt64 = 7
        let t = LabelTransform.noise(probability: p, seed: seed)
        let n = 50_000
        var changed = 0
        for i in 0..<n {
            let label = UInt32(i % 10)
            let out = t.apply(index: UInt64(i), label: label, inputClasses: 10, map: nil)
            #expect(out < 10)
            if out != label { changed += 1 }
        }
        let sigma = (Double(n) * p * (1 - p)).squareRoot()
        #expect(abs(Double(changed) - Double(n) * p) < 3 * sigma, "changed \(changed) of \(n) at p = \(p), seed \(seed)")
    }

    @Test("merges are balanced and consistent (the same class always maps to the same group)")
    func merge() throws {
        let block = LabelTransform.merge(classes: 5, mode: .block, seed: 0)
        #expect(block.mergeMap(inputClasses: 10, coarseOfFine: nil) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
        let random = LabelTransform.merge(classes: 5, mode: .random, seed: 3)
        let map = random.mergeMap(inputClasses: 10, coarseOfFine: nil)!
        #expect((0..<5).allSatisfy { g in map.filter { $0 == g }.count == 2 })
        #expect(map != block.mergeMap(inputClasses: 10, coarseOfFine: nil)!)
        #expect(map == LabelTransform.merge(classes: 5, mode: .random, seed: 3).mergeMap(inputClasses: 10, coarseOfFine: nil)!)
        for i in 0..<100 { #expect(random.apply(index: UInt64(i), label: 7, inputClasses: 10, map: map) == UInt32(map[7])) }
        let coarse = (0..<100).map { $0 / 5 }
        let superclass = LabelTransform.merge(classes: 20, mode: .superclass, seed: 0)
        try superclass.validate(inputClasses: 100, coarseOfFine: coarse)
        #expect(superclass.mergeMap(inputClasses: 100, coarseOfFine: coarse) == coarse)
        #expect(throws: EMCError.self) { try superclass.validate(inputClasses: 10, coarseOfFine: nil) }
        #expect(throws: EMCError.self) { try LabelTransform.merge(classes: 11, mode: .block, seed: 0).validate(inputClasses: 10, coarseOfFine: nil) }
        #expect(throws: EMCError.self) { try LabelTransform.noise(probability: 1.5, seed: 0).validate(inputClasses: 10, coarseOfFine: nil) }
    }

    @Test("transform specs round-trip through their text form")
    func specs() throws {
        for t: LabelTransform in [.random(classes: 7, seed: 3), .noise(probability: 0.25, seed: 1), .merge(classes: 2, mode: .random, seed: 9)] {
            #expect(try LabelTransform(parsing: t.description) == t)
        }
        for t: InputTransform in [.gaussian(seed: 1), .permute(seed: 2), .permuteEach(seed: 3)] {
            #expect(try InputTransform(parsing: t.description) == t)
        }
    }

    @Test("the permutation is a bijection of pixel positions, channels kept together, the same for every sample")
    func permute() throws {
        let schema = SampleSchema.image(height: 4, width: 5, channels: 3)
        let t = try PreparedInputTransform(.permute(seed: 5), schema: schema, mean: [0, 0, 0], std: [1, 1, 1])
        let perm = t.sharedPermutation
        #expect(Set(perm).count == 20)
        var scratch = [UInt8](repeating: 0, count: 60)
        for index in [UInt64(0), 99] {
            var sample = (0..<60).map { UInt8($0) }
            sample.withUnsafeMutableBytes { s in scratch.withUnsafeMutableBytes { t.apply(s, index: index, scratch: $0) } }
            for j in 0..<20 { for c in 0..<3 { #expect(sample[j * 3 + c] == UInt8(Int(perm[j]) * 3 + c)) } }
        }
        let each = try PreparedInputTransform(.permuteEach(seed: 5), schema: schema, mean: [0, 0, 0], std: [1, 1, 1])
        var a = (0..<60).map { UInt8($0) }, b = a
        a.withUnsafeMutableBytes { s in scratch.withUnsafeMutableBytes { each.apply(s, index: 1, scratch: $0) } }
        b.withUnsafeMutableBytes { s in scratch.withUnsafeMutableBytes { each.apply(s, index: 2, scratch: $0) } }
        #expect(a != b)
        #expect(Set(a) == Set(b))
    }

    @Test("gaussian inputs have the base's per-channel mean and std")
    func gaussian() throws {
        let schema = SampleSchema.image(height: 32, width: 32, channels: 3)
        let mean = [60.0, 128.0, 200.0], std = [20.0, 30.0, 10.0]
        let t = try PreparedInputTransform(.gaussian(seed: 4), schema: schema, mean: mean, std: std)
        var sums = [Double](repeating: 0, count: 3), squares = [Double](repeating: 0, count: 3)
        var scratch = [UInt8](repeating: 0, count: schema.sampleBytes)
        let samples = 50
        for index in 0..<samples {
            var sample = [UInt8](repeating: 0, count: schema.sampleBytes)
            sample.withUnsafeMutableBytes { s in scratch.withUnsafeMutableBytes { t.apply(s, index: UInt64(index), scratch: $0) } }
            for (i, v) in sample.enumerated() { sums[i % 3] += Double(v); squares[i % 3] += Double(v) * Double(v) }
        }
        let n = Double(samples * 1024)
        for c in 0..<3 {
            let m = sums[c] / n, s = (squares[c] / n - m * m).squareRoot()
            #expect(abs(m - mean[c]) < 1, "channel \(c) mean \(m)")
            #expect(abs(s - std[c]) < 1, "channel \(c) std \(s)")
        }
        let tab = try PreparedInputTransform(.gaussian(seed: 4), schema: .tabular(features: 2), mean: [1, -1], std: [2, 0.5])
        var f: [Float] = [0, 0]
        var fs = [UInt8](repeating: 0, count: 8)
        f.withUnsafeMutableBytes { s in fs.withUnsafeMutableBytes { tab.apply(s, index: 3, scratch: $0) } }
        #expect(f[0] != 0 && f[1] != 0)
        #expect(throws: EMCError.self) { _ = try PreparedInputTransform(.gaussian(seed: 0), schema: schema, mean: [1], std: [1]) }
    }

    @Test("transform specs are parsed strictly: a bad seed, an unknown key or a repeated one is an error, never seed 0",
          arguments: ["labels=random,classes=10,seed=abc", "inputs=permute,seed=-1", "label-noise=0.1,seed=1,seed=2",
                      "merge-classes=2,mode=diagonal", "inputs=permute,sigma=2", "label-noise=1.5", "labels=random"])
    func strictParsing(text: String) throws {
        let e = #expect(throws: EMCError.self) {
            if text.hasPrefix("inputs") { _ = try InputTransform(parsing: text) } else { _ = try LabelTransform(parsing: text) }
        }
        #expect(e?.kind == .invalidArgument)
        for t in [LabelTransform.random(classes: 7, seed: 3), .noise(probability: 0.25, seed: 9), .merge(classes: 2, mode: .random, seed: 1)] {
            #expect(try LabelTransform(parsing: t.description) == t)
        }
        #expect(try InputTransform(parsing: InputTransform.permuteEach(seed: 5).description) == .permuteEach(seed: 5))
    }
}
