import CLAPACKE
import EMCCore

/// LAPACK through LAPACKE (Debian's OpenBLAS is built without it): dense solves for the
/// curvature checks that tell a minimum from a saddle.
public enum LAPACK {
    /// The LAPACK version underneath LAPACKE, as the loaded library reports it at run time.
    /// LAPACKE itself has no version call. The corresponding C function is `ilaver`.
    public static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        ilaver_(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// Solves A x = b for square, row-major A (n×n) by LU with partial pivoting.
    /// The corresponding C function is `LAPACKE_dgesv`.
    public static func solve(_ a: [Double], _ b: [Double], n: Int) throws -> [Double] {
        guard n > 0, a.count == n * n, b.count == n else {
            throw EMCError(.invalidArgument, "solve needs an n×n matrix and n values", expected: "\(n * n) and \(n)",
                           found: "\(a.count) and \(b.count)")
        }
        var matrix = a, rhs = b
        var pivots = [Int32](repeating: 0, count: n)
        let info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, Int32(n), 1, &matrix, Int32(n), &pivots, &rhs, 1)
        if info < 0 { throw EMCError(.library, "LAPACKE_dgesv: argument \(-info) is invalid") }
        if info > 0 { throw EMCError(.invalidArgument, "the matrix is singular (zero pivot at row \(info))") }
        return rhs
    }
}
