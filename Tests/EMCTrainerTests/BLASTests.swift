import EMCCore
import EMCTrainer
import Testing

@Suite("OpenBLAS and LAPACKE wrappers")
struct BLASTests {
    @Test("sgemm matches a naive product, with and without transposes")
    func sgemm() throws {
        let rng = CounterRNG(seed: 1, stream: .test)
        let m = 7, n = 5, k = 9
        let a = (0..<(m * k)).map { rng.uniform(UInt64($0)) - 0.5 }
        let b = (0..<(k * n)).map { rng.uniform(UInt64(1000 + $0)) - 0.5 }
        let c = try BLAS.multiply(a, b, m: m, n: n, k: k)
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += a[i * k + p] * b[p * n + j] }
                #expect(abs(c[i * n + j] - sum) < 1e-5)
            }
        }
        // Aᵀ stored as k×m, Bᵀ stored as n×k: op(A)·op(B) must give the same C.
        var at = [Float](repeating: 0, count: m * k), bt = [Float](repeating: 0, count: k * n)
        for i in 0..<m { for p in 0..<k { at[p * m + i] = a[i * k + p] } }
        for p in 0..<k { for j in 0..<n { bt[j * k + p] = b[p * n + j] } }
        var c2 = [Float](repeating: 0, count: m * n)
        at.withUnsafeBufferPointer { pa in bt.withUnsafeBufferPointer { pb in c2.withUnsafeMutableBufferPointer { pc in
            BLAS.sgemm(.transpose, .transpose, m: m, n: n, k: k, alpha: 1, a: pa.baseAddress!, lda: m,
                       b: pb.baseAddress!, ldb: k, beta: 0, c: pc.baseAddress!, ldc: n)
        } } }
        for i in 0..<(m * n) { #expect(abs(c2[i] - c[i]) < 1e-5) }
        #expect(throws: EMCError.self) { _ = try BLAS.multiply([1, 2, 3], [1], m: 2, n: 1, k: 2) }
    }

    @Test("thread setting takes effect; the library reports its kernel")
    func threads() {
        BLAS.threads = 1
        #expect(BLAS.threads == 1)
        #expect(!BLAS.coreName.isEmpty && BLAS.coreName != "unknown")
        #expect(BLAS.configuration.contains("OpenBLAS"))
    }

    @Test("LAPACKE solves a system and reports a singular one")
    func solve() throws {
        let x = try LAPACK.solve([4, 1, 0, 1, 3, 1, 0, 1, 2], [1, 2, 3], n: 3)
        let residual = [4 * x[0] + x[1] - 1, x[0] + 3 * x[1] + x[2] - 2, x[1] + 2 * x[2] - 3]
        #expect(residual.allSatisfy { abs($0) < 1e-12 })
        #expect(throws: EMCError.self) { _ = try LAPACK.solve([1, 2, 2, 4], [1, 1], n: 2) }
        #expect(LAPACK.version.split(separator: ".").count == 3)
    }

    @Test("the OpenBLAS kernel emc asks for: only over the generic fallback, never over the user's choice")
    func preferredCore() {
        let avx512: Set<String> = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"]
        #expect(BLAS.preferredCore(current: "Prescott", requested: nil, cpuFlags: avx512) == "SkylakeX")
        #expect(BLAS.preferredCore(current: "Prescott", requested: nil, cpuFlags: ["avx", "avx2", "fma"]) == "Haswell")
        #expect(BLAS.preferredCore(current: "Prescott", requested: nil, cpuFlags: ["sse4_2", "avx"]) == nil)
        #expect(BLAS.preferredCore(current: "Prescott", requested: "Prescott", cpuFlags: avx512) == nil)
        #expect(BLAS.preferredCore(current: "Zen", requested: nil, cpuFlags: avx512) == nil)
        #expect(BLAS.preferredCore(current: "SkylakeX", requested: nil, cpuFlags: avx512) == nil)
    }
}
