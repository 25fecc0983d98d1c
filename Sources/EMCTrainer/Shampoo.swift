import CBLAS
import CLAPACKE
import EMCCore
import Foundation

/// Where a model's parameter tensors lie in its flat store, and which are matrices (Shampoo preconditions those).
public struct ParameterTensorLayout: Sendable, Equatable {
    public var offset: Int
    public var count: Int
    /// rows × cols = count for a weight matrix (a linear layer's out × in, a convolution's C_out × k·k·C_in); nil for a
    /// vector (a bias).
    public var rows: Int?
    public var cols: Int?

    public init(offset: Int, count: Int, rows: Int? = nil, cols: Int? = nil) {
        self.offset = offset
        self.count = count
        self.rows = rows
        self.cols = cols
    }
}

/// Shampoo's per-matrix state (Gupta, Koren, Singer 2018), as docs/methods.md and the optimizer spec describe: for each
/// block of each weight matrix, the statistics L ← β2·L + G·Gᵀ and R ← β2·R + Gᵀ·G (in Double, started at ε·I) and
/// their inverse fourth roots, recomputed every `freq` steps by a symmetric eigendecomposition with eigenvalues
/// floored at ε.
final class ShampooState {
    final class Block {
        let rowStart: Int, rows: Int, colStart: Int, cols: Int
        var left: [Double], right: [Double]
        var leftRoot: [Float], rightRoot: [Float]

        init(rowStart: Int, rows: Int, colStart: Int, cols: Int, eps: Double) {
            self.rowStart = rowStart
            self.rows = rows
            self.colStart = colStart
            self.cols = cols
            left = ShampooState.identity(rows, scale: eps)
            right = ShampooState.identity(cols, scale: eps)
            leftRoot = [Float](repeating: 0, count: rows * rows)
            rightRoot = [Float](repeating: 0, count: cols * cols)
        }
    }

    struct Matrix {
        let offset: Int, rows: Int, cols: Int
        let blocks: [Block]
    }

    let matrices: [Matrix]
    /// Every block with its matrix, in order: the work `precondition` hands out.
    private let blocks: [(matrix: Matrix, block: Block)]
    /// Scratch of `largest`² floats for each thread working on blocks at once: the Gram matrix, the block, the product.
    private var scratch: [UnsafeMutablePointer<Float>] = []
    private let largest: Int

    init(layout: [ParameterTensorLayout], blockSize: Int, eps: Double) {
        var matrices: [Matrix] = []
        var largest = 1
        for t in layout {
            guard let rows = t.rows, let cols = t.cols, rows > 1, cols > 1 else { continue }
            // Split each dimension into near-equal parts of at most blockSize.
            func parts(_ n: Int) -> [(Int, Int)] {
                let k = (n + blockSize - 1) / blockSize
                return (0..<k).map { i in (i * n / k, (i + 1) * n / k - i * n / k) }
            }
            var blocks: [Block] = []
            for (r0, r) in parts(rows) {
                for (c0, c) in parts(cols) {
                    blocks.append(Block(rowStart: r0, rows: r, colStart: c0, cols: c, eps: eps))
                    largest = max(largest, r, c)
                }
            }
            matrices.append(Matrix(offset: t.offset, rows: rows, cols: cols, blocks: blocks))
        }
        self.matrices = matrices
        blocks = matrices.flatMap { m in m.blocks.map { (m, $0) } }
        self.largest = largest
    }

    deinit { for s in scratch { s.deallocate() } }

    static func identity(_ n: Int, scale: Double) -> [Double] {
        var m = [Double](repeating: 0, count: n * n)
        for i in 0..<n { m[i * n + i] = scale }
        return m
    }

    /// The inverse fourth root of the symmetric matrix `a` (n×n), eigenvalues floored at `eps`, as Float.
    static func inverseFourthRoot(_ a: [Double], n: Int, eps: Double) -> [Float] {
        var m = a
        var values = [Double](repeating: 0, count: n)
        let info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "V")), Int8(UInt8(ascii: "U")), Int32(n), &m, Int32(n), &values)
        guard info == 0 else {
            // A failed decomposition (non-finite statistics): the identity scaled as if every eigenvalue were ε.
            var out = [Float](repeating: 0, count: n * n)
            for i in 0..<n { out[i * n + i] = Float(pow(eps, -0.25)) }
            return out
        }
        // root = V · diag(max(λ, ε)^(−1/4)) · Vᵀ; V's columns are the eigenvectors (row-major m[i*n + k] = V[i][k]).
        var scaled = m
        for k in 0..<n {
            let f = pow(max(values[k], eps), -0.25)
            for i in 0..<n { scaled[i * n + k] *= f }
        }
        var root = [Double](repeating: 0, count: n * n)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(n), blasint(n), blasint(n), 1, scaled, blasint(n), m, blasint(n), 0, &root, blasint(n))
        return root.map { Float($0) }
    }

    /// Updates every block's statistics from `gradient` (the whole flat store), recomputes the roots when `refresh`,
    /// and writes the preconditioned direction L^(−1/4)·M·R^(−1/4) of `momentum` into `direction` at each matrix's place.
    func precondition(gradient: UnsafePointer<Float>, momentum: UnsafePointer<Float>, direction: UnsafeMutablePointer<Float>,
                      beta2: Double, eps: Double, refresh: Bool) {
        // Blocks are independent: with a team, each thread takes a run of them (every block computed as on one thread).
        while scratch.count < Parallel.threads {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 3 * largest * largest)
            buffer.initialize(repeating: 0, count: 3 * largest * largest)
            scratch.append(buffer)
        }
        let blocks = self.blocks, scratch = self.scratch, largest = self.largest
        Parallel.ranges(blocks.count) { chosen, part in
            let gram = scratch[part], block = gram + largest * largest, product = block + largest * largest
            for (matrix, b) in blocks[chosen] {
                let (r, c) = (b.rows, b.cols)
                // Copy the block of G into a contiguous r×c buffer.
                for i in 0..<r {
                    (block + i * c).update(from: gradient + matrix.offset + (b.rowStart + i) * matrix.cols + b.colStart, count: c)
                }
                Self.accumulate(&b.left, n: r, transposeFirst: false, r: r, c: c, beta2: beta2, block: block, gram: gram)
                Self.accumulate(&b.right, n: c, transposeFirst: true, r: r, c: c, beta2: beta2, block: block, gram: gram)
                if refresh {
                    b.leftRoot = Self.inverseFourthRoot(b.left, n: r, eps: eps)
                    b.rightRoot = Self.inverseFourthRoot(b.right, n: c, eps: eps)
                }
                // P = Lroot · M_block · Rroot.
                for i in 0..<r {
                    (block + i * c).update(from: momentum + matrix.offset + (b.rowStart + i) * matrix.cols + b.colStart, count: c)
                }
                b.leftRoot.withUnsafeBufferPointer { l in
                    BLAS.sgemm(.none, .none, m: r, n: c, k: r, alpha: 1, a: l.baseAddress!, lda: r, b: block, ldb: c,
                               beta: 0, c: product, ldc: c)
                }
                b.rightRoot.withUnsafeBufferPointer { rr in
                    BLAS.sgemm(.none, .none, m: r, n: c, k: c, alpha: 1, a: product, lda: c, b: rr.baseAddress!, ldb: c,
                               beta: 0, c: direction + matrix.offset + b.rowStart * matrix.cols + b.colStart, ldc: matrix.cols)
                }
            }
        }
    }

    /// stats ← β2·stats + G·Gᵀ (or Gᵀ·G), G the r×c block in `block`: the product's upper triangle by `ssyrk` in Float,
    /// the sum in Double (the eigendecomposition reads the upper triangle only).
    private static func accumulate(_ stats: inout [Double], n: Int, transposeFirst: Bool, r: Int, c: Int, beta2: Double,
                                   block: UnsafePointer<Float>, gram: UnsafeMutablePointer<Float>) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, transposeFirst ? CblasTrans : CblasNoTrans, blasint(n), blasint(transposeFirst ? r : c),
                    1, block, blasint(c), 0, gram, blasint(n))
        stats.withUnsafeMutableBufferPointer { s in
            for i in 0..<n {
                for j in i..<n { s[i * n + j] = beta2 * s[i * n + j] + Double(gram[i * n + j]) }
            }
        }
    }
}
