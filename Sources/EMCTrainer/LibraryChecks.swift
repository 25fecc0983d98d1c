import EMCCore
import Foundation

extension BLAS {
    /// `emc doctor`'s checks of OpenBLAS and LAPACKE: a 2×2 product and a 2×2 solve, with the kernels chosen.
    public static func libraryChecks() -> [LibraryCheck] {
        [
            LibraryCheck.run("OpenBLAS", configuration, detail: "core \(coreName)"
                  + (getenv("EMC_BLAS_CORE_CHOSEN") != nil ? " (chosen by emc: OpenBLAS did not recognise this CPU and fell back to its generic Prescott kernels)" : "")
                  + ", \(threads) thread(s); emc's own kernels: "
                  + (hardwareLevel == .generic ? "none (this CPU has neither AVX2 nor AVX-512: OpenBLAS and im2row for everything)" : hardwareLevel.description)
                  + (hardwareLevel > .generic && tallLevel == .generic ? " (weight-gradient products sent to OpenBLAS by EMC_TALL_GEMM=0)" : "")) {
                let c = try multiply([1, 2, 3, 4], [5, 6, 7, 8], m: 2, n: 2, k: 2)
                guard c == [19, 22, 43, 50] else { throw LibraryCheck.mismatch("sgemm gave \(c)") }
                return "2×2 sgemm = [19, 22; 43, 50]"
            },
            LibraryCheck.run("LAPACKE", "LAPACK " + LAPACK.version + " (run time, via ilaver)") {
                let x = try LAPACK.solve([2, 1, 1, 3], [3, 5], n: 2)
                guard abs(x[0] - 0.8) < 1e-12, abs(x[1] - 1.4) < 1e-12 else { throw LibraryCheck.mismatch("dgesv gave \(x)") }
                return "2×2 dgesv solve x = [0.8, 1.4]"
            },
        ]
    }
}
