import CLAPACKE
import EMCCore
import Foundation

/// Lanczos iteration with full re-orthogonalisation on a symmetric operator (a Hessian, through Hessian-vector
/// products): after k steps the tridiagonal matrix's eigenvalues (Ritz values) approximate the operator's extreme
/// eigenvalues. The tridiagonal eigenproblem is LAPACK's `dstev`.
public enum Lanczos {
    public struct Result: Codable, Sendable, Equatable {
        /// Ritz values, ascending.
        public var ritzValues: [Double]
        /// |β_k · z_{k,i}| for each Ritz value: the norm of the residual A·y − θ·y of its Ritz vector.
        public var residuals: [Double]
        public var steps: Int
        public var lambdaMin: Double { ritzValues.first ?? .nan }
        public var lambdaMax: Double { ritzValues.last ?? .nan }
    }

    /// Runs up to `steps` iterations of `multiply` (y = A·x, A symmetric n×n) from a seeded random start vector.
    /// Stops early when the Krylov space becomes invariant (β below 1e-10 of the largest α seen).
    public static func run(dimension n: Int, steps: Int, seed: UInt64, multiply: ([Double]) throws -> [Double]) throws -> Result {
        guard n > 0, steps > 0 else { throw EMCError(.invalidArgument, "Lanczos needs a dimension and a step count above 0") }
        let k = min(steps, n)
        let rng = CounterRNG(seed: seed, stream: .hessian)
        var v = (0..<n).map { rng.normal(UInt64($0)) }
        let norm0 = (v.map { $0 * $0 }.reduce(0, +)).squareRoot()
        v = v.map { $0 / norm0 }
        var basis: [[Double]] = [v]
        var alphas: [Double] = [], betas: [Double] = []
        var scale = 0.0
        for j in 0..<k {
            var w = try multiply(basis[j])
            guard w.count == n else {
                throw EMCError(.format, "the operator returned \(w.count) values, not \(n), at Lanczos step \(j + 1)")
            }
            guard w.allSatisfy(\.isFinite) else {
                throw EMCError(.format, "the Hessian-vector product is not finite at Lanczos step \(j + 1): the loss or the parameters are "
                               + "infinite or NaN (a diverged trial has no curvature to check)")
            }
            let alpha = dot(w, basis[j])
            alphas.append(alpha)
            scale = max(scale, abs(alpha))
            for i in 0..<n { w[i] -= alpha * basis[j][i] + (j > 0 ? betas[j - 1] * basis[j - 1][i] : 0) }
            // Full re-orthogonalisation, twice ("twice is enough").
            for _ in 0..<2 {
                for b in basis {
                    let c = dot(w, b)
                    for i in 0..<n { w[i] -= c * b[i] }
                }
            }
            let beta = dot(w, w).squareRoot()
            if j == k - 1 || beta <= 1e-10 * max(scale, 1e-300) {
                betas.append(beta)
                break
            }
            betas.append(beta)
            basis.append(w.map { $0 / beta })
        }
        let m = alphas.count
        var d = alphas
        var e = Array(betas.prefix(max(0, m - 1)))
        if e.isEmpty { e = [0] }
        var z = [Double](repeating: 0, count: m * m)
        let info = LAPACKE_dstev(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "V")), Int32(m), &d, &e, &z, Int32(m))
        guard info == 0 else { throw EMCError(.library, "LAPACKE_dstev failed (info \(info))") }
        let last = betas.last ?? 0
        // Row-major z: z[i * m + c] is component i of eigenvector c; the residual uses the last component.
        let residuals = (0..<m).map { abs(last * z[(m - 1) * m + $0]) }
        return Result(ritzValues: d, residuals: residuals, steps: m)
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in a.indices { s += a[i] * b[i] }
        return s
    }
}
