import CBLAS
import CTrainerKernels
import Foundation
import EMCCore

/// OpenBLAS: the matrix products under every layer, and its thread setting.
public enum BLAS {
    /// How OpenBLAS was built (version, kernel, threading), as it reports at run time.
    /// The corresponding C function is `openblas_get_config`.
    public static var configuration: String { openblas_get_config().map { String(cString: $0) } ?? "unknown" }

    /// The CPU kernel OpenBLAS chose at run time (e.g. "Haswell", "Zen").
    /// The corresponding C function is `openblas_get_corename`.
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// The kernel to ask OpenBLAS for (through `OPENBLAS_CORETYPE`, read when the library loads) when it fell back to its
    /// generic SSE3 kernels ("Prescott") on a CPU it does not recognise but that has AVX-512 or AVX2: Debian's OpenBLAS
    /// 0.3.21 does not know Intel's Sapphire and Emerald Rapids (family 6, models 143 and 207), and its Prescott kernels
    /// reach a quarter of the SkylakeX kernels' sgemm speed there (docs/benchmarks.md). Nil when OpenBLAS chose a kernel
    /// itself, when the user set `OPENBLAS_CORETYPE`, or when the CPU lacks both extensions.
    public static func preferredCore() -> String? {
        preferredCore(current: coreName, requested: getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }, cpuFlags: cpuFlags())
    }

    /// The rule of `preferredCore()` on given facts: OpenBLAS's current kernel, the user's `OPENBLAS_CORETYPE`, the CPU's flags.
    public static func preferredCore(current: String, requested: String?, cpuFlags flags: Set<String>) -> String? {
        guard requested == nil, current.lowercased() == "prescott" else { return nil }
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return "SkylakeX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    /// The CPU's feature flags as Linux lists them (empty elsewhere).
    static func cpuFlags() -> Set<String> {
        // /proc files report size 0, so read to the end rather than by size.
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// OpenBLAS's thread count. The corresponding C functions are `openblas_get_num_threads` and
    /// `openblas_set_num_threads`.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// Puts OpenBLAS on one thread, once per process (every `Model` calls it; the commands call it at start-up too).
    ///
    /// OpenBLAS splits a product among its threads differently at each thread count, and the rounding follows the
    /// split: on this project's machine 6,660 of the 8,192 outputs of a 128×784 · 784×64 product (an MLP's first
    /// layer) differ in their last bits between 1 and 2 threads, and so do whole training runs after a few steps. emc's
    /// records must not depend on the thread count, so OpenBLAS always runs on one thread and emc splits the work itself
    /// (`ThreadTeam`: `--threads`), where no sum is split. An `EMC_THREADS` above 1 is reported once on stderr as ignored.
    public static func useOneThread() { _ = oneThread }

    private static let oneThread: Void = {
        threads = 1
        // EMC_THREADS once set OpenBLAS's thread count; a value above 1 now draws this note and nothing else.
        if let text = getenv("EMC_THREADS").map({ String(cString: $0) }), let requested = Int(text), requested > 1 {
            StandardStreams.error("emc: EMC_THREADS=\(requested) is ignored: OpenBLAS rounds products differently at each thread count, "
                + "and emc's results must not depend on it. Give a trial threads with --threads (the same bits at any count).\n")
        }
    }()

    public enum Transpose: Sendable { case none, transpose }

    /// C = alpha * op(A) * op(B) + beta * C on row-major Float32 matrices, where op(A) is m×k and
    /// op(B) is k×n; `lda`, `ldb`, `ldc` are row strides. With a `ThreadTeam` current, the rows of C are split over its
    /// threads at the multiple of rows `rowGrain` found for this product's shape, which leaves every element's bits as
    /// one call computes them. The corresponding C function is `cblas_sgemm`.
    @inline(__always)
    public static func sgemm(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                             alpha: Float, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let threads = Parallel.threads, minimum = minimumSplitRows(n: n, k: k)
        if threads > 1, m <= rowSplitLimit, Parallel.partCount(m, grain: 1, minimum: minimum, threads: threads) > 1,
           let grain = rowGrain(ProductShape(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta), threads: threads) {
            Parallel.ranges(m, grain: grain, minimum: max(grain, minimum)) { rows, _ in
                serialSgemm(transA, transB, m: rows.count, n: n, k: k, alpha: alpha,
                            a: transA == .none ? a + rows.lowerBound * lda : a + rows.lowerBound, lda: lda, b: b, ldb: ldb,
                            beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
            }
            return
        }
        serialSgemm(transA, transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// The fewest multiply-adds a part of a product split over the team takes. Twice `Parallel.minimumMultiplyAdds`: on the
    /// AVX-512 host of docs/benchmarks.md, splitting an MLP's 3.2M-multiply-add products (mlp:width=32) in two made its
    /// step 1.04–2.7× slower on two threads than on one, where 2²¹ a part keeps them whole (0.99×) and still splits the
    /// small EfficientNet's pointwise products.
    static let minimumSplitMultiplyAdds = 1 << 21

    /// The fewest rows of C a part of a split product takes (`minimumSplitMultiplyAdds`).
    static func minimumSplitRows(n: Int, k: Int) -> Int { max(1, minimumSplitMultiplyAdds / max(1, n * k)) }

    /// One call of cblas_sgemm on the calling thread.
    @inline(__always)
    static func serialSgemm(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                            alpha: Float, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor,
                    transA == .none ? CblasNoTrans : CblasTrans,
                    transB == .none ? CblasNoTrans : CblasTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// The most rows a product may have for `sgemm` to split it. OpenBLAS (0.3.21, Zen kernels) computes the rows from
    /// 104,508 on of a single call differently from the same rows in a call of their own, whatever the other dimensions:
    /// a product that tall runs whole.
    public static let rowSplitLimit = 65_536

    /// What decides how OpenBLAS computes a product: the transposes, the dimensions, alpha and beta.
    public struct ProductShape: Hashable, Sendable {
        public var transA: Transpose, transB: Transpose
        public var m: Int, n: Int, k: Int
        public var alpha: Float, beta: Float

        public init(transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float) {
            (self.transA, self.transB, self.m, self.n, self.k, self.alpha, self.beta) = (transA, transB, m, n, k, alpha, beta)
        }
    }

    /// The candidate multiples of rows at which a product's output may split: OpenBLAS's row tiles (4 to 16 rows on
    /// x86) and their multiples.
    static let grainCandidates = [4, 8, 12, 16, 24, 32, 48, 64, 96, 192]

    /// The multiple of rows at which `sgemm` splits a product of this shape over `threads` threads with every element's
    /// bits unchanged, or nil when none does (the product then runs whole, on one thread).
    ///
    /// OpenBLAS computes an element by an order that can depend on its row's position within the kernel's row tile (on
    /// Zen and Haswell a tile of 12 rows: rows 0–5 and 6–11 of a tile round differently), on whether the row falls in the
    /// tail after the last whole tile, and on the size of the call: small products take other kernels (on SkylakeX and
    /// its successors a "small matrix" kernel below 10⁶ multiply-adds and a direct one for some untransposed products),
    /// whose order differs again, so a part of a product can be computed differently from the same rows in the whole. No
    /// single multiple is right for every shape; emc finds one per shape, once per process: the smallest candidate whose
    /// split, into exactly the parts `sgemm` will use, gives the bits of one call on test values of that shape.
    public static func rowGrain(_ shape: ProductShape, threads: Int) -> Int? { grain(shape, threads: threads, axis: .rows) }

    /// The multiple of columns at which `sgemmSplittingColumns` splits a product of this shape over `threads` threads
    /// with every element's bits unchanged, or nil when none does: found as `rowGrain` is, on the columns.
    public static func columnGrain(_ shape: ProductShape, threads: Int) -> Int? { grain(shape, threads: threads, axis: .columns) }

    /// Which of C's dimensions a product splits over the team.
    public enum SplitAxis: Hashable, Sendable { case rows, columns }

    static func grain(_ shape: ProductShape, threads: Int, axis: SplitAxis) -> Int? {
        let key = GrainKey(shape: shape, threads: threads, axis: axis)
        grains.lock.lock()
        defer { grains.lock.unlock() }
        if let known = grains.found[key] { return known }
        useOneThread()
        let (count, minimum) = splitDimension(shape, axis: axis)
        var tried: Set<[Range<Int>]> = []
        var grain: Int?
        for candidate in grainCandidates {
            let parts = Parallel.partCount(count, grain: candidate, minimum: max(candidate, minimum), threads: threads)
            guard parts > 1 else { break }
            let split = (0..<parts).map { Parallel.range($0, of: parts, count: count, grain: candidate) }
            guard tried.insert(split).inserted else { continue }
            if splitKeepsBits(shape, split, axis: axis) { grain = candidate; break }
        }
        grains.found[key] = grain
        return grain
    }

    /// The length of C's dimension `axis` and the fewest of its rows or columns a part takes (each part at least
    /// `minimumSplitMultiplyAdds`).
    static func splitDimension(_ shape: ProductShape, axis: SplitAxis) -> (count: Int, minimum: Int) {
        axis == .rows ? (shape.m, minimumSplitRows(n: shape.n, k: shape.k)) : (shape.n, minimumSplitRows(n: shape.m, k: shape.k))
    }

    private struct GrainKey: Hashable { var shape: ProductShape, threads: Int, axis: SplitAxis }
    private final class Grains: @unchecked Sendable {
        let lock = NSLock()
        var found: [GrainKey: Int?] = [:]
    }
    private static let grains = Grains()

    /// Whether computing the rows (or columns) of a product of this shape in the calls `split` gives the bits of one call,
    /// on test values (a multiplicative hash in [−1, 1): cheap, and with all the bits a rounding difference needs).
    static func splitKeepsBits(_ shape: ProductShape, _ split: [Range<Int>], axis: SplitAxis) -> Bool {
        let (m, n, k) = (shape.m, shape.n, shape.k)
        func values(_ count: Int, _ salt: Int) -> [Float] {
            (0..<count).map { i in Float(UInt32(truncatingIfNeeded: (i &+ salt) &* -1_640_531_535) >> 8) / Float(1 << 23) - 1 }
        }
        let a = values(m * k, 1), b = values(k * n, 2), c0 = values(m * n, 3)
        let (lda, ldb) = (shape.transA == .transpose ? m : k, shape.transB == .transpose ? k : n)
        var whole = c0, parts = c0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                whole.withUnsafeMutableBufferPointer { pc in
                    serialSgemm(shape.transA, shape.transB, m: m, n: n, k: k, alpha: shape.alpha, a: pa.baseAddress!, lda: lda,
                                b: pb.baseAddress!, ldb: ldb, beta: shape.beta, c: pc.baseAddress!, ldc: n)
                }
                parts.withUnsafeMutableBufferPointer { pc in
                    for range in split {
                        switch axis {
                        case .rows:
                            serialSgemm(shape.transA, shape.transB, m: range.count, n: n, k: k, alpha: shape.alpha,
                                        a: pa.baseAddress! + range.lowerBound * (shape.transA == .transpose ? 1 : lda), lda: lda,
                                        b: pb.baseAddress!, ldb: ldb, beta: shape.beta, c: pc.baseAddress! + range.lowerBound * n, ldc: n)
                        case .columns:
                            serialSgemm(shape.transA, shape.transB, m: m, n: range.count, k: k, alpha: shape.alpha, a: pa.baseAddress!, lda: lda,
                                        b: pb.baseAddress! + range.lowerBound * (shape.transB == .transpose ? ldb : 1), ldb: ldb,
                                        beta: shape.beta, c: pc.baseAddress! + range.lowerBound, ldc: n)
                        }
                    }
                }
            }
        }
        return zip(whole, parts).allSatisfy { $0.bitPattern == $1.bitPattern }
    }

    /// C = alpha · op(A) · op(B) + beta · C as `sgemm`, but with a team current the columns of C split over its threads
    /// (at the shape's `columnGrain`), each thread reading only its columns' part of op(B): for products whose B is the
    /// larger operand (a layer's weights against a batch of inputs), so that each thread reads, and keeps in its own
    /// cache, the weights it owns (`Model.parameterParts`). `prepare(columns)` runs first in each part (a bias written
    /// into those columns of C). Falls back to `sgemm`'s row split where no column grain keeps the bits.
    public static func sgemmSplittingColumns(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                                             alpha: Float, a: UnsafePointer<Float>, lda: Int,
                                             b: UnsafePointer<Float>, ldb: Int,
                                             beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                                             prepare: (Range<Int>) -> Void) -> Bool {
        let threads = Parallel.threads
        let shape = ProductShape(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta)
        let minimum = splitDimension(shape, axis: .columns).minimum
        guard threads > 1, m <= rowSplitLimit, Parallel.partCount(n, grain: 1, minimum: minimum, threads: threads) > 1,
              let grain = columnGrain(shape, threads: threads) else { return false }
        Parallel.ranges(n, grain: grain, minimum: max(grain, minimum)) { columns, _ in
            prepare(columns)
            serialSgemm(transA, transB, m: m, n: columns.count, k: k, alpha: alpha, a: a, lda: lda,
                        b: transB == .transpose ? b + columns.lowerBound * ldb : b + columns.lowerBound, ldb: ldb,
                        beta: beta, c: c + columns.lowerBound, ldc: ldc)
        }
        return true
    }

    /// Which version of emc's own kernel for C += Aᵀ·B runs: the CPU's (`hardwareLevel`), or `.generic` (every such
    /// product to OpenBLAS) when `EMC_TALL_GEMM=0` says so, for benchmarks.
    public static let tallLevel: KernelLevel = {
        if let value = getenv("EMC_TALL_GEMM"), String(cString: value) == "0" { return .generic }
        return hardwareLevel
    }()

    /// What the CPU can run of emc's own kernels (the tall product and the direct convolution), whatever
    /// `EMC_TALL_GEMM` says.
    public static let hardwareLevel = KernelLevel(rawValue: emc_gemm_tall_level()) ?? .generic

    /// Whether C[m×n] += Aᵀ·B with a summation of length k goes to emc's tall kernel rather than OpenBLAS: when C is small
    /// and k long, where OpenBLAS spends as long packing the operands as multiplying them. The bounds are measured on
    /// every layer of the benchmark models (docs/benchmarks.md, "The weight-gradient product").
    public static func prefersTallKernel(m: Int, n: Int, k: Int) -> Bool {
        tallLevel > .generic && k >= 2048 && min(m, n) <= 64 && m * n <= 12288
    }

    /// C[m×n] += Aᵀ·B by emc's tall kernel whatever the shape, at `level` (at most what the CPU runs; default the chosen
    /// one); false (nothing done) when the CPU has no version of it. Each element is the fused multiply-add chain over k
    /// in order, at every level.
    public static func accumulateTransposedProductWithTallKernel(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                                                b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                                                                level: KernelLevel = tallLevel) -> Bool {
        emc_gemm_tall_accumulate(min(level, hardwareLevel).rawValue, Int32(m), Int32(n), k, a, lda, b, ldb, c, ldc) != 0
    }

    /// C[m×n] += Aᵀ·B on row-major Float32, A k×m and B k×n: every layer's weight gradient. Goes to emc's tall kernel
    /// when `prefersTallKernel` (with a team current, its columns or rows split over the threads: each element is the
    /// same chain over k whichever part computes it), to `sgemm` otherwise (rows split at the shape's `rowGrain`).
    @inline(__always)
    public static func accumulateTransposedProduct(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                                   b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard prefersTallKernel(m: m, n: n, k: k) else {
            sgemm(.transpose, .none, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: 1, c: c, ldc: ldc)
            return
        }
        if Parallel.threads > 1 && m * n * k >= 2 * Parallel.minimumMultiplyAdds {
            // Columns in whole 8-float vectors when there are enough of them, else rows.
            if n >= 16 {
                Parallel.ranges(n, grain: 8) { columns, _ in
                    _ = accumulateTransposedProductWithTallKernel(m: m, n: columns.count, k: k, a: a, lda: lda, b: b + columns.lowerBound,
                                                                  ldb: ldb, c: c + columns.lowerBound, ldc: ldc)
                }
            } else {
                Parallel.ranges(m) { rows, _ in
                    _ = accumulateTransposedProductWithTallKernel(m: rows.count, n: n, k: k, a: a + rows.lowerBound, lda: lda, b: b,
                                                                  ldb: ldb, c: c + rows.lowerBound * ldc, ldc: ldc)
                }
            }
            return
        }
        _ = accumulateTransposedProductWithTallKernel(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
    }

    /// A safe, checked sgemm on arrays (row-major, no transposes): returns A(m×k) · B(k×n).
    public static func multiply(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) throws -> [Float] {
        guard a.count == m * k, b.count == k * n else {
            throw EMCError(.invalidArgument, "matrix sizes do not match", expected: "\(m * k) and \(k * n) values",
                           found: "\(a.count) and \(b.count)")
        }
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    sgemm(.none, .none, m: m, n: n, k: k, alpha: 1, a: pa.baseAddress!, lda: k,
                          b: pb.baseAddress!, ldb: n, beta: 0, c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }
}

/// The versions of emc's own C kernels (`CTrainerKernels`): what `emc_gemm_tall_level` reports the CPU runs, and what
/// each kernel call is given.
public enum KernelLevel: Int32, Sendable, Comparable, CustomStringConvertible {
    /// Neither AVX2 nor AVX-512: OpenBLAS and im2row do everything.
    case generic = 0
    /// AVX2 with FMA.
    case avx2 = 1
    case avx512 = 2

    public static func < (a: KernelLevel, b: KernelLevel) -> Bool { a.rawValue < b.rawValue }

    public var description: String { ["none", "AVX2", "AVX-512"][Int(rawValue)] }

    /// A kernel's return code: 1 when it ran. Every call site has checked the level first, so 0 is a bug in emc, not
    /// in the input: it stops the process rather than leave a layer's output unwritten.
    static func ran(_ code: Int32, _ kernel: StaticString) {
        guard code == 1 else { preconditionFailure("\(kernel) did not run (returned \(code)) although the CPU's level \(BLAS.hardwareLevel) allows it") }
    }
}
