import EMCCore
import EMCTrainer
import Foundation
import Testing

@Suite("Lanczos")
struct LanczosTests {
    /// A = Q·diag(λ)·Qᵀ with a seeded random orthogonal Q.
    static func matrix(_ values: [Double], seed: UInt64) -> [Double] {
        let n = values.count
        let rng = CounterRNG(seed: seed, stream: .test)
        var q = (0..<(n * n)).map { rng.normal(UInt64($0)) }
        for i in 0..<n {
            for _ in 0..<2 {
                for j in 0..<i {
                    let d = (0..<n).map { q[i * n + $0] * q[j * n + $0] }.reduce(0, +)
                    for k in 0..<n { q[i * n + k] -= d * q[j * n + k] }
                }
            }
            let norm = (0..<n).map { q[i * n + $0] * q[i * n + $0] }.reduce(0, +).squareRoot()
            for k in 0..<n { q[i * n + k] /= norm }
        }
        var a = [Double](repeating: 0, count: n * n)
        for r in 0..<n { for c in 0..<n { for k in 0..<n { a[r * n + c] += q[k * n + r] * values[k] * q[k * n + c] } } }
        return a
    }

    @Test("finds the extreme eigenvalues of a known matrix to 1e-6 relative, with small residuals")
    func known() throws {
        let n = 120
        // A spectrum with a negative end (a saddle's Hessian) and a positive end, bulk in between.
        let values = (0..<n).map { i -> Double in i == 0 ? -2.5 : (i == n - 1 ? 40 : (i == n - 2 ? 31 : Double(i) / Double(n) * 10 - 1)) }
        let a = Self.matrix(values, seed: 5)
        let result = try Lanczos.run(dimension: n, steps: 40, seed: 1) { x in
            (0..<n).map { r in (0..<n).map { a[r * n + $0] * x[$0] }.reduce(0, +) }
        }
        #expect(result.steps == 40)
        #expect(abs(result.lambdaMax - 40) <= 1e-6 * 40, "λmax \(result.lambdaMax)")
        #expect(abs(result.lambdaMin + 2.5) <= 1e-6 * 2.5, "λmin \(result.lambdaMin)")
        #expect(result.residuals.last! < 1e-5 && result.residuals.first! < 1e-5)
        // The same seed gives the same numbers.
        let again = try Lanczos.run(dimension: n, steps: 40, seed: 1) { x in
            (0..<n).map { r in (0..<n).map { a[r * n + $0] * x[$0] }.reduce(0, +) }
        }
        #expect(again == result)
    }

    @Test("an invariant subspace ends the iteration early; a bad operator is an error")
    func edges() throws {
        // The identity: one step spans an invariant subspace.
        let result = try Lanczos.run(dimension: 10, steps: 40, seed: 0) { $0 }
        #expect(result.steps == 1 && abs(result.lambdaMax - 1) < 1e-12)
        #expect(throws: EMCError.self) { _ = try Lanczos.run(dimension: 5, steps: 3, seed: 0) { _ in [1, 2] } }
        #expect(throws: EMCError.self) { _ = try Lanczos.run(dimension: 3, steps: 3, seed: 0) { _ in [.nan, 0, 0] } }
    }
}
