import EMCCore
import EMCTrainer
import Testing
import Foundation
import CTrainerKernels

/// The versions of emc's kernels this CPU runs (1 AVX2, 2 AVX-512).
private let kernelLevels: [KernelLevel] = [.avx2, .avx512].filter { $0 <= BLAS.hardwareLevel }

/// Seeded standard-normal draws, one after another.
private func normalDraws(seed: UInt64) -> () -> Float {
    let rng = CounterRNG(seed: seed, stream: .test)
    var draws: UInt64 = 0
    return { draws += 1; return Float(rng.normal(draws)) }
}

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

@Suite("emc's tall kernel for C += Aᵀ·B")
struct TallKernelTests {
    /// Every element must be the fused multiply-add chain over k in order, bit for bit, at every level the CPU runs,
    /// on shapes that exercise each tile and mask (m and n around the tile sizes, k across slab boundaries, padded
    /// strides), and nothing outside C's m×n may change.
    @Test("equals the in-order fused multiply-add chain bit for bit, at every level; leaves the padding alone")
    func exact() throws {
        let levels = kernelLevels, random = normalDraws(seed: 5)
        for (m, n, k) in [(1, 1, 1), (3, 7, 255), (4, 8, 256), (5, 15, 257), (8, 16, 600), (9, 17, 3), (13, 24, 300),
                          (17, 25, 513), (8, 31, 100), (12, 32, 64), (7, 33, 70), (16, 47, 90), (20, 72, 40), (2, 100, 9)] {
            let lda = m + 3, ldb = n + 5, ldc = n + 2
            let a = (0..<(k * lda)).map { _ in random() }, b = (0..<(k * ldb)).map { _ in random() }
            let start = (0..<(m * ldc)).map { _ in random() }
            var expected = start
            for i in 0..<m {
                for j in 0..<n {
                    var sum = start[i * ldc + j]
                    for p in 0..<k { sum = sum.addingProduct(a[p * lda + i], b[p * ldb + j]) }
                    expected[i * ldc + j] = sum
                }
            }
            for level in levels {
                var c = start
                let ran = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                    BLAS.accumulateTransposedProductWithTallKernel(m: m, n: n, k: k, a: pa.baseAddress!, lda: lda, b: pb.baseAddress!,
                                                                    ldb: ldb, c: pc.baseAddress!, ldc: ldc, level: level)
                } } }
                #expect(ran)
                let wrong = (0..<(m * ldc)).filter { c[$0].bitPattern != expected[$0].bitPattern }
                #expect(wrong.isEmpty, "level \(level), m \(m) n \(n) k \(k): \(wrong.count) elements differ, first at \(wrong.first ?? -1)")
            }
        }
    }

    @Test("the layers' dispatcher gives OpenBLAS's product within rounding, whichever kernel it picks")
    func dispatcher() {
        let rng = CounterRNG(seed: 6, stream: .test)
        for (m, n, k) in [(8, 27, 4096), (64, 576, 4096), (10, 16, 128)] {
            let a = (0..<(k * m)).map { Float(rng.normal(UInt64($0))) }, b = (0..<(k * n)).map { Float(rng.normal(UInt64(1 << 30 + $0))) }
            var viaBLAS = [Float](repeating: 1, count: m * n), viaDispatch = viaBLAS
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
                viaBLAS.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemm(.transpose, .none, m: m, n: n, k: k, alpha: 1, a: pa.baseAddress!, lda: m, b: pb.baseAddress!, ldb: n,
                               beta: 1, c: pc.baseAddress!, ldc: n)
                }
                viaDispatch.withUnsafeMutableBufferPointer { pc in
                    BLAS.accumulateTransposedProduct(m: m, n: n, k: k, a: pa.baseAddress!, lda: m, b: pb.baseAddress!, ldb: n,
                                                     c: pc.baseAddress!, ldc: n)
                }
            } }
            let difference = zip(viaBLAS, viaDispatch).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
            let norm = viaBLAS.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
            #expect(difference / norm < 1e-5, "m \(m) n \(n) k \(k)")
        }
    }
}

@Suite("Squeeze-and-excitation's channel gate")
struct ChannelGateTests {
    /// y = x·g, dg += Σ dy·x over the pixels in order, dx += dy·g: the vector loops give the scalar arithmetic's bits
    /// (each product rounded before its sum), at channel counts that fill vectors, leave tails, or are below one vector.
    @Test("the gate's forward, its gradient sums and the input gradient are the scalar loops' bits", arguments: [1, 3, 8, 17, 40, 96])
    func scalarBits(_ c: Int) {
        let random = normalDraws(seed: UInt64(60 + c)), pixels = 49
        let x = (0..<(pixels * c)).map { _ in random() }, dy = (0..<(pixels * c)).map { _ in random() }
        let g = (0..<c).map { _ in random() }, dgStart = (0..<c).map { _ in random() }, dxStart = (0..<(pixels * c)).map { _ in random() }
        var y = [Float](repeating: .nan, count: pixels * c), dg = dgStart, dx = dxStart
        emc_scale_channels(&y, x, g, pixels, c)
        emc_channel_product_sums(&dg, dy, x, pixels, c)
        emc_add_scaled_channels(&dx, dy, g, pixels, c)
        var expectedY = y, expectedDg = dgStart, expectedDx = dxStart
        for p in 0..<pixels {
            for ch in 0..<c {
                let o = p * c + ch
                expectedY[o] = x[o] * g[ch]
                let product = dy[o] * x[o], scaled = dy[o] * g[ch]
                expectedDg[ch] = expectedDg[ch] + product
                expectedDx[o] = expectedDx[o] + scaled
            }
        }
        #expect(y.map(\.bitPattern) == expectedY.map(\.bitPattern), "forward at \(c) channels")
        #expect(dg.map(\.bitPattern) == expectedDg.map(\.bitPattern), "gate gradient at \(c) channels")
        #expect(dx.map(\.bitPattern) == expectedDx.map(\.bitPattern), "input gradient at \(c) channels")
    }
}

@Suite("The vectorisable exp and erf under GELU, SiLU and softmax")
struct ElementaryFunctionTests {
    @Test("emc_exp within 2 ulp of libm's exp, emc_erf within 6e-7 of erf; NaN stays NaN")
    func accuracy() {
        var worstExpUlps = 0.0, worstErf = 0.0
        for i in 0...200_000 {
            let x = -87 + Float(i) * (175.0 / 200_000)
            let reference = Foundation.exp(Double(x))
            let ulp = Double(Float(reference).ulp)
            worstExpUlps = max(worstExpUlps, abs(Double(emc_exp(x)) - reference) / ulp)
            let z = -6 + Float(i) * (12.0 / 200_000)
            worstErf = max(worstErf, abs(Double(emc_erf(z)) - Foundation.erf(Double(z))))
        }
        #expect(worstExpUlps <= 2, "exp: \(worstExpUlps) ulp")
        #expect(worstErf <= 6e-7, "erf: \(worstErf)")
        #expect(emc_exp(.nan).isNaN && emc_erf(.nan).isNaN)
        #expect(emc_exp(-1000) >= 0 && emc_exp(-1000) < 1e-37 && emc_erf(50) == 1 && emc_erf(-50) == -1)
    }

    @Test("softmax rows are positive, sum to 1 and keep their order, also for large logits")
    func softmax() {
        var rows: [Float] = [1, 2, 3, 1000, 1001, 999, -50, -50, -50]
        rows.withUnsafeMutableBufferPointer { emc_softmax_rows($0.baseAddress!, 3, 3) }
        for r in 0..<3 {
            let row = rows[(r * 3)..<(r * 3 + 3)]
            #expect(abs(row.reduce(0, +) - 1) < 1e-6 && row.allSatisfy { $0 > 0 })
        }
        #expect(rows[0] < rows[1] && rows[1] < rows[2] && rows[5] < rows[3] && rows[3] < rows[4])
        #expect(abs(rows[6] - 1.0 / 3) < 1e-7)
        // Rows longer than the 16 lanes (a ViT's 65 tokens): against a Double softmax, the maximum in every position.
        for columns in [16, 17, 65] {
            for top in Set([0, 15, 16, columns - 1]).filter({ $0 < columns }).sorted() {
                var row = (0..<columns).map { Float(sin(Double($0) * 1.7)) * 3 }
                row[top] = 40
                let exps = row.map { Foundation.exp(Double($0) - 40) }, total = exps.reduce(0, +)
                row.withUnsafeMutableBufferPointer { emc_softmax_rows($0.baseAddress!, 1, columns) }
                for j in 0..<columns { #expect(abs(Double(row[j]) - exps[j] / total) < 1e-6, "columns \(columns), max at \(top), j \(j)") }
            }
        }
    }
}

@Suite("Direct convolutions (no im2row)")
struct DirectConvolutionTests {
    /// emc_conv_direct at each level the CPU runs must be the in-order fused multiply-add chain over (ky, j), from zero,
    /// bit for bit, for output widths that exercise every tile and mask (1–80 channels); at most 8 output channels, the
    /// G = 4 or 2 chains over the taps j ≡ g (mod G), added in order.
    @Test("the kernel equals the in-order FMA chains bit for bit at every level")
    func kernelExact() {
        let levels = kernelLevels, random = normalDraws(seed: 8)
        for (m, cout, k, c, wp) in [(37, 8, 3, 3, 9), (50, 16, 3, 8, 10), (29, 24, 3, 5, 7), (20, 40, 3, 4, 6), (17, 64, 1, 6, 5),
                                     (31, 80, 3, 2, 8), (13, 1, 5, 3, 9), (26, 33, 3, 1, 6), (41, 5, 3, 8, 10), (23, 3, 3, 7, 9),
                                     (35, 4, 1, 6, 7), (19, 7, 3, 1, 5), (44, 12, 3, 8, 11), (40, 48, 3, 8, 9)] {
            let xCount = (m - 1 + (k - 1) * wp) * c + k * c
            let x = (0..<xCount).map { _ in random() }, w = (0..<(k * k * c * cout)).map { _ in random() }
            let groups = cout <= 4 ? 4 : cout <= 8 ? 2 : 1
            var expected = [Float](repeating: 0, count: m * cout)
            for q in 0..<m {
                for co in 0..<cout {
                    var partial = [Float](repeating: 0, count: groups)
                    for ky in 0..<k {
                        for j in 0..<(k * c) {
                            partial[j % groups] = partial[j % groups].addingProduct(x[(q + ky * wp) * c + j], w[(ky * k * c + j) * cout + co])
                        }
                    }
                    var sum = partial[0]
                    for g in 1..<groups { sum += partial[g] }
                    expected[q * cout + co] = sum
                }
            }
            var scratch = [Float](repeating: .nan, count: max(1, emc_conv_direct_scratch(Int32(cout), Int32(k), Int32(c))))
            for level in levels {
                var y = [Float](repeating: .nan, count: m * cout)
                let ran = x.withUnsafeBufferPointer { px in w.withUnsafeBufferPointer { pw in y.withUnsafeMutableBufferPointer { py in
                    emc_conv_direct(level.rawValue, m, Int32(cout), Int32(k), Int32(c), wp, px.baseAddress!, pw.baseAddress!, py.baseAddress!, &scratch)
                } } }
                #expect(ran == 1)
                let wrong = (0..<(m * cout)).filter { y[$0].bitPattern != expected[$0].bitPattern }
                #expect(wrong.isEmpty, "level \(level), m \(m) cout \(cout) k \(k) c \(c): \(wrong.count) differ")
            }
        }
    }

    /// The dense form writes each valid grid position's row, plus the bias, where compacting the grid would put it, and
    /// nothing else: bit for bit the grid form followed by the compaction and the bias.
    @Test("the dense form equals the grid form compacted, with the bias, and writes nothing outside the images")
    func denseExact() {
        let levels = kernelLevels, random = normalDraws(seed: 18)
        for (batch, h, w, k, c, cout) in [(2, 5, 4, 3, 3, 8), (3, 4, 6, 3, 8, 20), (2, 3, 3, 5, 2, 40), (1, 6, 5, 3, 4, 1), (2, 4, 4, 1, 5, 17),
                                          (2, 3, 37, 3, 8, 8), (1, 2, 29, 3, 4, 16), (1, 2, 21, 3, 3, 64), (2, 3, 13, 3, 2, 3)] {
            let hp = h + k - 1, wp = w + k - 1, m = batch * hp * wp
            let x = (0..<((m + k * wp + k) * c)).map { _ in random() }, weights = (0..<(k * k * c * cout)).map { _ in random() }
            let bias = (0..<cout).map { _ in random() }
            var scratch = [Float](repeating: .nan, count: max(1, emc_conv_direct_scratch(Int32(cout), Int32(k), Int32(c))))
            for level in levels {
                var gridOut = [Float](repeating: 0, count: m * cout)
                _ = emc_conv_direct(level.rawValue, m, Int32(cout), Int32(k), Int32(c), wp, x, weights, &gridOut, &scratch)
                var expected = [Float](repeating: .nan, count: batch * h * w * cout + 5)
                for b in 0..<batch { for oy in 0..<h { for ox in 0..<w { for co in 0..<cout {
                    expected[((b * h + oy) * w + ox) * cout + co] = gridOut[((b * hp + oy) * wp + ox) * cout + co] + bias[co]
                } } } }
                var dense = [Float](repeating: .nan, count: expected.count)
                var shape = emc_grid_shape(paddedHeight: hp, paddedWidth: wp, height: h, width: w, stride: 1)
                _ = emc_conv_direct_dense(level.rawValue, batch, Int32(cout), Int32(k), Int32(c), &shape, x, weights, &dense, bias, &scratch)
                #expect(dense.map(\.bitPattern) == expected.map(\.bitPattern), "level \(level), \(batch)×\(h)×\(w)×\(c) → \(cout), k \(k)")
            }
        }
    }

    /// At stride S the dense form's output (oy, ox) reads the padded rows S·oy + ky from column S·ox: each output the same
    /// chains (grouped at ≤ 8 channels) over exactly those taps, bit for bit at every level, and nothing written past the
    /// output.
    @Test("the strided dense form equals the chains over each output's strided patch, bit for bit at every level")
    func stridedExact() {
        let levels = kernelLevels, random = normalDraws(seed: 28)
        for (batch, hp, wp, k, c, cout, stride) in [(2, 9, 9, 3, 8, 16, 2), (1, 10, 11, 3, 8, 8, 2), (2, 8, 7, 1, 16, 32, 2),
                                                   (1, 11, 9, 3, 3, 5, 3), (2, 7, 8, 3, 4, 2, 2), (1, 9, 10, 3, 5, 48, 2)] {
            let ho = (hp - k) / stride + 1, wo = (wp - k) / stride + 1
            let x = (0..<(batch * hp * wp * c)).map { _ in random() }, weights = (0..<(k * k * c * cout)).map { _ in random() }
            let bias = (0..<cout).map { _ in random() }
            let groups = cout <= 4 ? 4 : cout <= 8 ? 2 : 1
            var expected = [Float](repeating: .nan, count: batch * ho * wo * cout + 7)
            for b in 0..<batch { for oy in 0..<ho { for ox in 0..<wo { for co in 0..<cout {
                var partial = [Float](repeating: 0, count: groups)
                for ky in 0..<k {
                    let row = ((b * hp + stride * oy + ky) * wp + stride * ox) * c
                    for j in 0..<(k * c) { partial[j % groups] = partial[j % groups].addingProduct(x[row + j], weights[(ky * k * c + j) * cout + co]) }
                }
                var sum = partial[0]
                for g in 1..<groups { sum += partial[g] }
                expected[((b * ho + oy) * wo + ox) * cout + co] = sum + bias[co]
            } } } }
            var scratch = [Float](repeating: .nan, count: max(1, emc_conv_direct_scratch(Int32(cout), Int32(k), Int32(c))))
            for level in levels {
                var dense = [Float](repeating: .nan, count: expected.count)
                var shape = emc_grid_shape(paddedHeight: hp, paddedWidth: wp, height: ho, width: wo, stride: stride)
                _ = emc_conv_direct_dense(level.rawValue, batch, Int32(cout), Int32(k), Int32(c), &shape, x, weights, &dense, bias, &scratch)
                #expect(dense.map(\.bitPattern) == expected.map(\.bitPattern), "level \(level), \(batch)×\(hp)×\(wp)×\(c) → \(cout), k \(k), stride \(stride)")
            }
        }
    }

    /// The weight gradient over runs, kernel row by kernel row: at every level and whichever tile (pairs at ≤ 8 outputs
    /// and ≤ 24-float kernel rows with AVX-512; the channels in lanes where a kernel row has fewer columns than there are
    /// channels: one or two vectors of them, masked tails, several kernel rows a pass or kernel rows in chunks), each
    /// element the in-order FMA chain over the runs' rows, bit for bit.
    @Test("the convolution weight gradient is the in-order chain over the runs at every level, pairs or not, whole, by columns or by channels")
    func weightGradientExact() {
        let levels = kernelLevels, random = normalDraws(seed: 38)
        for (cout, k, cin, stride) in [(8, 3, 3, 1), (8, 3, 8, 1), (5, 3, 1, 1), (3, 3, 7, 2), (8, 1, 16, 2), (4, 3, 4, 1), (16, 3, 8, 1),
                                       (8, 3, 9, 1), (2, 5, 3, 1), (32, 3, 1, 1), (32, 3, 3, 1), (24, 3, 3, 2), (40, 3, 1, 1),
                                       (16, 5, 3, 1), (64, 3, 3, 1), (12, 3, 3, 1), (48, 1, 3, 2), (32, 3, 9, 1), (20, 7, 1, 1)] {
            let images = 2, height = 5, width = 6, ho = (height - 1) / stride + 1, wo = (width - 1) / stride + 1
            let hp = height + k - 1, wp = width + k - 1, n = k * cin, patch = k * n
            let x = (0..<(images * hp * wp * cin)).map { _ in random() }, dy = (0..<(images * ho * wo * cout)).map { _ in random() }
            let start = (0..<patch * cout).map { _ in random() }
            let runDy = (0..<(images * ho)).map { $0 * wo * cout }
            let runX = (0..<(images * ho)).map { (($0 / ho) * hp + stride * ($0 % ho)) * wp * cin }
            var expected = start
            for co in 0..<cout {
                for ky in 0..<k {
                    for j in 0..<n {
                        var c = start[co * patch + ky * n + j]
                        for r in 0..<(images * ho) {
                            for q in 0..<wo { c = c.addingProduct(dy[runDy[r] + q * cout + co], x[runX[r] + ky * wp * cin + q * stride * cin + j]) }
                        }
                        expected[co * patch + ky * n + j] = c
                    }
                }
            }
            // The bias's sums: each channel's plain sum in row order (emc_sum_rows's general path), from its start.
            let biasStart = (0..<cout).map { _ in random() }
            var expectedBias = biasStart
            for r in 0..<(images * ho) { for q in 0..<wo { for co in 0..<cout { expectedBias[co] += dy[runDy[r] + q * cout + co] } } }
            for level in levels {
                var dW = start, db = biasStart
                let ran = emc_conv_weight_gradient(level.rawValue, Int32(cout), Int32(k), Int32(cin), images * ho, wo, dy, cout, runDy, x, stride * cin,
                                                   runX, wp * cin, &dW, &db)
                #expect(ran == 1)
                #expect(dW.map(\.bitPattern) == expected.map(\.bitPattern), "level \(level), \(cin) → \(cout), k \(k), stride \(stride)")
                #expect(db.map(\.bitPattern) == expectedBias.map(\.bitPattern), "level \(level), \(cin) → \(cout), k \(k): the bias's sums")
                // Split by columns of the kernel rows (as two or three threads take them, and one column at a time): the
                // same chains. A part that skipped its columns, or wrote a neighbour's, would leave or change an element.
                // The last part sums the bias.
                for cuts in [[0, n / 2, n], [0, n / 3, 2 * n / 3, n], [0, 1, n], Array(0...n)] {
                    var split = start, splitBias = biasStart
                    splitBias.withUnsafeMutableBufferPointer { db in
                        for (c0, c1) in zip(cuts, cuts.dropFirst()) where c1 > c0 {
                            #expect(emc_conv_weight_gradient_columns(level.rawValue, Int32(cout), Int32(k), Int32(cin), Int32(c0), Int32(c1),
                                                                     images * ho, wo, dy, cout, runDy, x, stride * cin, runX, wp * cin, &split,
                                                                     c1 == n ? db.baseAddress : nil) == 1)
                        }
                    }
                    #expect(split.map(\.bitPattern) == expected.map(\.bitPattern), "level \(level), \(cin) → \(cout), k \(k), columns cut at \(cuts)")
                    #expect(splitBias.map(\.bitPattern) == expectedBias.map(\.bitPattern), "level \(level), \(cin) → \(cout), k \(k), columns cut at \(cuts): the bias's sums")
                }
                // Split by output channels (as threads take them where the columns do not split): the same chains, each
                // part its channels' bias sums.
                for cuts in [[0, cout / 2, cout], [0, cout / 3, 2 * cout / 3, cout], [0, 1, cout]] {
                    var split = start, splitBias = biasStart
                    dy.withUnsafeBufferPointer { dy in
                        split.withUnsafeMutableBufferPointer { dW in
                            splitBias.withUnsafeMutableBufferPointer { db in
                                for (c0, c1) in zip(cuts, cuts.dropFirst()) where c1 > c0 {
                                    #expect(emc_conv_weight_gradient(level.rawValue, Int32(c1 - c0), Int32(k), Int32(cin), images * ho, wo,
                                                                     dy.baseAddress! + c0, cout, runDy, x, stride * cin, runX, wp * cin,
                                                                     dW.baseAddress! + c0 * patch, db.baseAddress! + c0) == 1)
                                }
                            }
                        }
                    }
                    #expect(split.map(\.bitPattern) == expected.map(\.bitPattern), "level \(level), \(cin) → \(cout), k \(k), channels cut at \(cuts)")
                    #expect(splitBias.map(\.bitPattern) == expectedBias.map(\.bitPattern), "level \(level), \(cin) → \(cout), k \(k), channels cut at \(cuts): the bias's sums")
                }
                // Columns past the kernel row: refused, dW and db untouched.
                var refused = start, refusedBias = biasStart
                #expect(emc_conv_weight_gradient_columns(level.rawValue, Int32(cout), Int32(k), Int32(cin), 0, Int32(n + 1), images * ho, wo, dy,
                                                         cout, runDy, x, stride * cin, runX, wp * cin, &refused, &refusedBias) == -1)
                #expect(refused == start && refusedBias == biasStart)
            }
        }
    }

    /// A strided layer's input gradient by phases against the adjoint of the strided convolution summed in Double, and
    /// the two levels bit for bit (kernels 1 and 3 at strides 2 and 3: phases with no taps, cin ≤ 8 grouped or not).
    @Test("the phase-wise input gradient of a strided convolution is its adjoint, the same bits at every level")
    func transposedGradient() {
        let levels = kernelLevels, random = normalDraws(seed: 48)
        for (h, w, cin, cout, k, stride) in [(8, 8, 8, 16, 3, 2), (7, 9, 3, 8, 3, 2), (8, 6, 16, 32, 1, 2), (9, 9, 4, 12, 3, 3),
                                             (6, 7, 20, 5, 3, 2), (5, 5, 2, 3, 1, 3)] {
            let p = (k - 1) / 2, ho = (h + 2 * p - k) / stride + 1, wo = (w + 2 * p - k) / stride + 1, images = 2
            let weights = (0..<(cout * k * k * cin)).map { _ in random() }, dy = (0..<(images * ho * wo * cout)).map { _ in random() }
            // The reference: dx[b][iy][ix][ci] = Σ dy[b][oy][ox][co] W[co][ky][kx][ci] over S·oy + ky − P = iy, S·ox + kx − P = ix.
            var reference = [Double](repeating: 0, count: images * h * w * cin)
            for b in 0..<images { for oy in 0..<ho { for ox in 0..<wo { for ky in 0..<k { for kx in 0..<k {
                let iy = stride * oy + ky - p, ix = stride * ox + kx - p
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                for co in 0..<cout { for ci in 0..<cin {
                    reference[((b * h + iy) * w + ix) * cin + ci] += Double(dy[((b * ho + oy) * wo + ox) * cout + co])
                        * Double(weights[((co * k + ky) * k + kx) * cin + ci])
                } }
            } } } } }
            let offset = (k + stride - 1) / stride - 1
            let gh = offset + max(ho, (h - 1 + p) / stride + 1), gw = offset + max(wo, (w - 1 + p) / stride + 1)
            var grid = [Float](repeating: 0, count: images * gh * gw * cout)
            for b in 0..<images { for oy in 0..<ho { for ox in 0..<wo { for co in 0..<cout {
                grid[((b * gh + oy + offset) * gw + ox + offset) * cout + co] = dy[((b * ho + oy) * wo + ox) * cout + co]
            } } } }
            var scratch = [Float](repeating: .nan, count: emc_conv_transposed_scratch(Int32(cin), Int32(k), Int32(cout)))
            var results: [[Float]] = []
            for level in levels {
                var dx = [Float](repeating: .nan, count: images * h * w * cin)
                _ = emc_conv_transposed(level.rawValue, images, Int32(cin), Int32(k), Int32(cout), Int32(stride), Int32(p), h, w, grid, gh, gw,
                                        weights, &dx, &scratch)
                let error = zip(dx, reference).map { abs(Double($0) - $1) }.max() ?? 0
                #expect(error < 1e-4, "level \(level), \(h)×\(w)×\(cin) → \(cout), k \(k), stride \(stride): max error \(error)")
                results.append(dx)
            }
            if results.count == 2 { #expect(results[0].map(\.bitPattern) == results[1].map(\.bitPattern), "levels differ, k \(k) stride \(stride)") }
        }
    }

    /// The direct path runs a batch in passes of a few images (`passBytes`): one image per pass and the whole batch in
    /// one give the same outputs, weight and bias gradients and input gradients, bit for bit, at strides 1 and 2.
    @Test("passes of one image and one pass of the whole batch give the same bits")
    func passes() throws {
        try #require(BLAS.hardwareLevel > .generic)
        for (h, cin, cout, k, stride) in [(9, 8, 8, 3, 1), (10, 3, 16, 3, 2), (8, 16, 32, 1, 2), (7, 4, 24, 3, 1)] {
            let shape = FeatureShape(height: h, width: h + 1, channels: cin)
            let layers = [1, 1 << 30].map {
                Conv2D(input: shape, outChannels: cout, kernel: k, stride: stride, padding: (k - 1) / 2, direct: true, passBytes: $0)
            }
            let n = layers[0].parameterCount, batch = 5
            let rng = CounterRNG(seed: 58, stream: .test)
            let parameters = (0..<n).map { Float(rng.normal(UInt64($0))) * 0.3 }
            let x = (0..<(batch * shape.count)).map { Float(rng.normal(UInt64(1 << 20 + $0))) }
            let dy = (0..<(batch * layers[0].outputShape.count)).map { Float(rng.normal(UInt64(1 << 24 + $0))) }
            var results: [[UInt32]] = []
            for layer in layers {
                var p = parameters, g = [Float](repeating: 0, count: n)
                var y = [Float](repeating: 0, count: dy.count), dx = [Float](repeating: 0, count: x.count)
                p.withUnsafeMutableBufferPointer { pp in g.withUnsafeMutableBufferPointer { pg in
                    layer.bind(parameters: pp.baseAddress!, gradients: pg.baseAddress!, maxBatch: batch)
                    x.withUnsafeBufferPointer { px in dy.withUnsafeBufferPointer { pdy in
                        y.withUnsafeMutableBufferPointer { py in dx.withUnsafeMutableBufferPointer { pdx in
                            layer.forward(px.baseAddress!, py.baseAddress!, batch: batch)
                            layer.backward(input: px.baseAddress!, output: py.baseAddress!, gradOutput: pdy.baseAddress!,
                                           gradInput: pdx.baseAddress!, batch: batch)
                        } }
                    } }
                } }
                results.append((y + g + dx).map(\.bitPattern))
            }
            #expect(results[0] == results[1], "\(shape) → \(cout), k \(k), stride \(stride)")
        }
    }

    @Test("a direct layer's workspace estimate still counts the rows its R-operator allocates")
    func workspace() throws {
        try #require(BLAS.hardwareLevel > .generic)
        let shape = FeatureShape(height: 16, width: 16, channels: 8)
        let direct = Conv2D(input: shape, outChannels: 8, kernel: 3, padding: 1, direct: true)
        let im2row = Conv2D(input: shape, outChannels: 8, kernel: 3, padding: 1, direct: false)
        let d = try #require(direct.workspaceBytes(maxBatch: 64)), r = try #require(im2row.workspaceBytes(maxBatch: 64))
        #expect(d > r, "direct \(d) bytes, im2row \(r)")
    }

    /// The direct path and im2row on the same weights and batches: outputs, weight and bias gradients and input gradients
    /// within rounding; a smaller batch after a full one (stale rows after the batch must not leak in).
    @Test("the direct path gives im2row's outputs and gradients, batch after batch")
    func matchesIm2row() throws {
        try #require(BLAS.hardwareLevel > .generic)
        for (h, w, cin, cout, k, stride) in [(7, 9, 3, 8, 3, 1), (8, 8, 16, 16, 3, 1), (5, 6, 4, 40, 5, 1), (6, 5, 2, 3, 1, 1),
                                             (8, 8, 8, 16, 3, 2), (9, 7, 8, 16, 3, 2), (8, 8, 8, 16, 1, 2), (7, 9, 4, 32, 3, 2),
                                             (6, 6, 3, 5, 3, 2), (5, 5, 16, 4, 1, 1), (9, 9, 6, 12, 3, 3)] {
            let shape = FeatureShape(height: h, width: w, channels: cin)
            let direct = Conv2D(input: shape, outChannels: cout, kernel: k, stride: stride, padding: (k - 1) / 2, direct: true)
            let reference = Conv2D(input: shape, outChannels: cout, kernel: k, stride: stride, padding: (k - 1) / 2, direct: false)
            #expect(direct.usesDirect && !reference.usesDirect)
            let maxBatch = 4, n = direct.parameterCount
            let rng = CounterRNG(seed: 9, stream: .test)
            let parameters = (0..<n).map { Float(rng.normal(UInt64($0))) * 0.3 }
            var stores: [(UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>)] = []
            for layer in [direct, reference] {
                let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: n), g = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
                _ = p.initialize(from: parameters); g.initialize(repeating: 0)
                layer.bind(parameters: p.baseAddress!, gradients: g.baseAddress!, maxBatch: maxBatch)
                stores.append((p, g))
            }
            defer { for (p, g) in stores { p.deallocate(); g.deallocate() } }
            for (round, batch) in [4, 2, 3].enumerated() {
                let x = (0..<(batch * shape.count)).map { Float(rng.normal(UInt64(1 << 20 + round * 100_000 + $0))) }
                let dy = (0..<(batch * direct.outputShape.count)).map { Float(rng.normal(UInt64(1 << 24 + round * 100_000 + $0))) }
                var outputs: [[Float]] = [], inputGradients: [[Float]] = []
                for layer in [direct, reference] {
                    var y = [Float](repeating: 0, count: dy.count), dx = [Float](repeating: 0, count: x.count)
                    x.withUnsafeBufferPointer { px in dy.withUnsafeBufferPointer { pdy in
                        y.withUnsafeMutableBufferPointer { py in dx.withUnsafeMutableBufferPointer { pdx in
                            layer.forward(px.baseAddress!, py.baseAddress!, batch: batch)
                            layer.backward(input: px.baseAddress!, output: py.baseAddress!, gradOutput: pdy.baseAddress!,
                                           gradInput: pdx.baseAddress!, batch: batch)
                        } }
                    } }
                    outputs.append(y); inputGradients.append(dx)
                }
                func relative(_ a: [Float], _ b: [Float]) -> Double {
                    let d = zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +)
                    return (d / max(1e-30, b.map { Double($0) * Double($0) }.reduce(0, +))).squareRoot()
                }
                let label = "\(h)×\(w)×\(cin)→\(cout) k\(k) stride \(stride) batch \(batch)"
                #expect(relative(outputs[0], outputs[1]) < 1e-6, "output \(label)")
                #expect(relative(inputGradients[0], inputGradients[1]) < 1e-6, "input gradient \(label)")
                #expect(relative(Array(stores[0].1), Array(stores[1].1)) < 1e-6, "weight and bias gradients \(label)")
            }
        }
    }
}

@Suite("Max-pool and column-sum kernels")
struct PoolingKernelTests {
    /// The by-4 path and the general path against a scalar reference, on inputs full of ties (values from {0, 1, 2}):
    /// the first maximum in window order wins, as PyTorch's.
    @Test("max-pool forward picks the first maximum of each window, for 1–32 channels")
    func maxpoolTies() {
        for (c, k, s) in [(1, 2, 2), (3, 2, 2), (4, 2, 2), (8, 2, 2), (12, 3, 2), (4, 3, 1), (16, 2, 2), (32, 2, 2), (48, 3, 1)] {
            let batch = 2, h = 7, w = 6
            let ho = (h - k) / s + 1, wo = (w - k) / s + 1
            let x = (0..<(batch * h * w * c)).map { Float(($0 * 7 + $0 / 5) % 3) }
            var y = [Float](repeating: -1, count: batch * ho * wo * c), argmax = [Int32](repeating: -1, count: y.count)
            x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { py in argmax.withUnsafeMutableBufferPointer { pa in
                emc_maxpool_forward(py.baseAddress!, pa.baseAddress!, px.baseAddress!, Int32(batch), Int32(h), Int32(w), Int32(c),
                                    Int32(k), Int32(s), Int32(ho), Int32(wo))
            } } }
            for b in 0..<batch { for oy in 0..<ho { for ox in 0..<wo { for ch in 0..<c {
                var best: Float = -.infinity, at = -1
                for ky in 0..<k { for kx in 0..<k {
                    let i = ((oy * s + ky) * w + ox * s + kx) * c + ch
                    if x[b * h * w * c + i] > best { best = x[b * h * w * c + i]; at = i }
                } }
                let o = ((b * ho + oy) * wo + ox) * c + ch
                #expect(y[o] == best && Int(argmax[o]) == at, "c \(c) k \(k) s \(s) at \(o)")
            } } } }
        }
    }

    /// Tiling windows (written once, no clearing) and the others (cleared, then scattered): each input gets its window's
    /// gradient where it was the recorded maximum and zero elsewhere, also in rows and columns no window covers. dx starts
    /// as garbage, which both paths must overwrite.
    @Test("max-pool backward routes each gradient to its window's maximum and zeroes the rest, tiled or not")
    func maxpoolBackward() {
        for (c, k, s, h, w) in [(4, 2, 2, 8, 6), (8, 2, 2, 8, 6), (12, 2, 2, 6, 4), (32, 2, 2, 4, 4), (16, 2, 2, 7, 5), (8, 3, 1, 6, 6), (3, 2, 2, 4, 4)] {
            let batch = 2
            let ho = (h - k) / s + 1, wo = (w - k) / s + 1
            let x = (0..<(batch * h * w * c)).map { Float(($0 * 7 + $0 / 5) % 11) }
            let dy = (0..<(batch * ho * wo * c)).map { Float($0 + 1) }
            var y = [Float](repeating: 0, count: dy.count), argmax = [Int32](repeating: 0, count: dy.count)
            var dx = [Float](repeating: .nan, count: x.count)
            emc_maxpool_forward(&y, &argmax, x, Int32(batch), Int32(h), Int32(w), Int32(c), Int32(k), Int32(s), Int32(ho), Int32(wo))
            emc_maxpool_backward_windows(&dx, argmax, dy, Int32(batch), Int32(h), Int32(w), Int32(c), Int32(k), Int32(s), Int32(ho), Int32(wo))
            var expected = [Float](repeating: 0, count: x.count)
            for b in 0..<batch { for j in 0..<(ho * wo * c) { expected[b * h * w * c + Int(argmax[b * ho * wo * c + j])] += dy[b * ho * wo * c + j] } }
            #expect(dx.map(\.bitPattern) == expected.map(\.bitPattern), "c \(c) k \(k) s \(s) \(h)×\(w)")
        }
    }

    @Test("column sums equal a Double sum, for columns that divide 16 and others")
    func sumRows() {
        for columns in [1, 2, 4, 8, 16, 3, 10, 17] {
            let rows = 37
            let x = (0..<(rows * columns)).map { Float(sin(Double($0))) }
            var out = (0..<columns).map { Float($0) }
            x.withUnsafeBufferPointer { px in out.withUnsafeMutableBufferPointer { emc_sum_rows($0.baseAddress!, px.baseAddress!, rows, columns) } }
            for c in 0..<columns {
                let expected = Double(c) + (0..<rows).map { Double(x[$0 * columns + c]) }.reduce(0, +)
                #expect(abs(Double(out[c]) - expected) < 1e-5, "columns \(columns), column \(c)")
            }
        }
    }
}

@Suite("Depthwise convolution kernels")
struct DepthwiseKernelTests {
    /// The layer's definition as plain loops over (pixel, ky, kx), multiply then add: what the C kernels must equal bit
    /// for bit (they promise that order and no contraction, so every instruction-set clone agrees).
    @Test("forward, filter and input gradients equal the tap-by-tap reference bit for bit, strides 1 and 2, 1–40 channels")
    func matchesReference() {
        for (c, k, s, p) in [(1, 3, 1, 1), (8, 3, 1, 1), (24, 5, 2, 2), (40, 3, 2, 1), (17, 3, 1, 0), (16, 1, 1, 0)] {
            let batch = 2, h = 7, w = 6
            let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
            let rng = CounterRNG(seed: 9, stream: .test)
            let x = (0..<(batch * h * w * c)).map { Float(rng.normal(UInt64($0))) }
            let dy = (0..<(batch * ho * wo * c)).map { Float(rng.normal(UInt64(1 << 30 | $0))) }
            let wt = (0..<(k * k * c)).map { Float(rng.normal(UInt64(1 << 40 | $0))) }  // tap-major [t][c]
            var y = (0..<(batch * ho * wo * c)).map { Float($0 % 7) * 0.25 }, dw = wt.map { $0 * 0.5 }
            var dx = x.map { $0 * 0.125 }
            var (ry, rdw, rdx) = (y, dw, dx)
            for b in 0..<batch { for oy in 0..<ho { for ox in 0..<wo { for ky in 0..<k { for kx in 0..<k {
                let iy = oy * s - p + ky, ix = ox * s - p + kx
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                let o = ((b * ho + oy) * wo + ox) * c, i = ((b * h + iy) * w + ix) * c, t = (ky * k + kx) * c
                for ch in 0..<c {
                    ry[o + ch] += wt[t + ch] * x[i + ch]
                    rdw[t + ch] += dy[o + ch] * x[i + ch]
                    rdx[i + ch] += dy[o + ch] * wt[t + ch]
                }
            } } } } }
            let args = (Int32(batch), Int32(h), Int32(w), Int32(c), Int32(k), Int32(s), Int32(p), Int32(ho), Int32(wo))
            emc_depthwise_forward(&y, x, wt, args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7, args.8)
            emc_depthwise_filter_gradient(&dw, dy, x, args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7, args.8)
            emc_depthwise_input_gradient(&dx, dy, wt, args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7, args.8)
            #expect(y.map(\.bitPattern) == ry.map(\.bitPattern), "forward, c \(c) k \(k) s \(s) p \(p)")
            #expect(dw.map(\.bitPattern) == rdw.map(\.bitPattern), "filter gradient, c \(c) k \(k) s \(s) p \(p)")
            #expect(dx.map(\.bitPattern) == rdx.map(\.bitPattern), "input gradient, c \(c) k \(k) s \(s) p \(p)")
        }
    }
}

@Suite("Batch-norm kernels")
struct BatchNormKernelTests {
    /// Channel counts that take the 16-lane layout (1, 2, 4, 8, 16) and the row layout (3, 24, 40), with row counts whose
    /// element count is not a multiple of 16 (the lanes' tail), against sums in Double and the formulas in Double.
    /// With a fused ReLU, y = max(0, γ·x̂ + β) and backward's dy is masked by y > 0: the mask the kernels recompute from x
    /// must be the forward's, element for element (checked against the y the apply kernel wrote).
    @Test("moments, the affine map, the gradient sums and the input gradient match Double references, lane and row layouts, with and without a fused ReLU",
          arguments: [false, true])
    func matchesDouble(relu: Bool) {
        for c in [1, 2, 4, 8, 16, 3, 24, 40] {
            let rows = 37
            let rng = CounterRNG(seed: 21, stream: .test)
            let x = (0..<(rows * c)).map { Float(rng.normal(UInt64($0)) * 2 + 0.5) }
            let dy = (0..<(rows * c)).map { Float(rng.normal(UInt64(1 << 30 | $0))) }
            var sum = [Double](repeating: 1, count: c), squares = [Double](repeating: 2, count: c)
            emc_channel_moments(&sum, &squares, x, rows, c)
            var mean = [Float](repeating: 0, count: c), istd = mean, gamma = mean, beta = mean, meanDy = mean, meanDyH = mean
            for ch in 0..<c {
                let xs = (0..<rows).map { Double(x[$0 * c + ch]) }
                let s = xs.reduce(0, +), q = xs.map { $0 * $0 }.reduce(0, +)
                #expect(abs(sum[ch] - 1 - s) < 1e-9 && abs(squares[ch] - 2 - q) < 1e-9, "moments, c \(c) channel \(ch)")
                mean[ch] = Float(s / Double(rows))
                istd[ch] = Float(1 / (q / Double(rows) - s * s / Double(rows * rows) + 1e-5).squareRoot())
                gamma[ch] = Float(ch + 1) * 0.5
                beta[ch] = Float(ch) * 0.25 - 1
                meanDy[ch] = Float(ch) * 0.01
                meanDyH[ch] = -Float(ch) * 0.02
            }
            let fused: Int32 = relu ? 1 : 0
            var y = [Float](repeating: 0, count: x.count), dx = y
            emc_batchnorm_apply(&y, x, mean, istd, gamma, beta, rows, c, fused)
            var sumDy = [Double](repeating: 0, count: c), sumDyH = sumDy
            emc_channel_gradient_sums(&sumDy, &sumDyH, dy, x, mean, istd, gamma, beta, rows, c, fused)
            emc_batchnorm_input_gradient(&dx, dy, x, mean, istd, gamma, beta, meanDy, meanDyH, rows, c, fused)
            var referenceDy = [Double](repeating: 0, count: c), referenceDyH = referenceDy, masked = 0
            for i in 0..<x.count {
                let ch = i % c
                let h = (Double(x[i]) - Double(mean[ch])) * Double(istd[ch])
                let affine = Double(gamma[ch]) * h + Double(beta[ch])
                #expect(abs(Double(y[i]) - (relu ? max(0, affine) : affine)) < 1e-5, "apply, c \(c) at \(i)")
                let g = relu && !(y[i] > 0) ? 0 : Double(dy[i])
                if g == 0 { masked += 1 }
                let d = Double(gamma[ch]) * Double(istd[ch]) * (g - Double(meanDy[ch]) - h * Double(meanDyH[ch]))
                #expect(abs(Double(dx[i]) - d) < 1e-5 * max(1, abs(d)), "input gradient, c \(c) at \(i)")
                referenceDy[ch] += g
                referenceDyH[ch] += g * h
            }
            if relu { #expect(masked > x.count / 10 && masked < x.count, "the ReLU cuts some values and not all, c \(c)") }
            for ch in 0..<c {
                #expect(abs(sumDy[ch] - referenceDy[ch]) < 1e-9, "Σ dy, c \(c) channel \(ch)")
                #expect(abs(sumDyH[ch] - referenceDyH[ch]) < 1e-4, "Σ dy·x̂, c \(c) channel \(ch)")
            }
        }
    }
}
