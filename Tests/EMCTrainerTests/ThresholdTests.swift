import EMCCore
import EMCTrainer
import Testing

@Suite("The fit threshold's allowance of wrong samples")
struct ThresholdTests {
    /// The thresholds as exact fractions, and the allowance ⌊n·(1 − t)⌋ = ⌊n·(den − num) / den⌋ in integers.
    static let thresholds: [(value: Double, num: Int, den: Int)] = [(0.8, 8, 10), (0.9, 9, 10), (0.95, 95, 100), (0.99, 99, 100),
                                                                    (0.995, 995, 1000), (0.999, 999, 1000), (1.0, 1, 1)]

    @Test("every n from 1 to 20,000 at 0.8, 0.9, 0.95, 0.99, 0.995, 0.999 and 1: exactly the rational allowance")
    func exact() throws {
        for t in Self.thresholds {
            var options = FitOptions()
            options.fitThreshold = t.value
            var wrongAt: [Int] = []
            for n in 1...20_000 where options.allowedWrong(n) != n * (t.den - t.num) / t.den { wrongAt.append(n) }
            #expect(wrongAt.isEmpty, "threshold \(t.value): \(wrongAt.count) values of n differ, the first \(wrongAt.prefix(5))")
            #expect(FitOutcome.allowedWrong(10, threshold: t.value) == 10 * (t.den - t.num) / t.den)
        }
        // The example: 0.9 at n = 10 allows one wrong sample.
        var options = FitOptions()
        options.fitThreshold = 0.9
        #expect(options.allowedWrong(10) == 1)
        // Large n and many decimals do not overflow.
        #expect(FitOutcome.allowedWrong(1 << 40, threshold: 0.5) == 1 << 39)
        #expect(FitOutcome.allowedWrong(1_000_000_000, threshold: 0.123456789) == 876_543_211)
        #expect(FitOutcome.allowedWrong(1 << 40, threshold: 0.999999999) == (1 << 40) / 1_000_000_000)
    }
}
