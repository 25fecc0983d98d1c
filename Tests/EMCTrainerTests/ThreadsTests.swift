import CTrainerKernels
import EMCCore
import Foundation
@testable import EMCTrainer
import Testing

/// Trains `spec` from seed 1 on `data` with `optimizer` for `epochs` epochs on `threads` threads; returns the final
/// parameters, the outcome and how many jobs the team split.
private func trainOnThreads(_ spec: String, _ optimizer: String, data: InMemoryTrainingData, batch: Int, epochs: Int,
                            threads: Int) throws -> (parameters: [UInt32], outcome: FitOutcome, splitJobs: Int) {
    let model = try ModelSpec(parsing: spec).build(input: data.shape, classes: data.classes, maxBatch: max(batch, 128), threads: threads)
    model.initialize(seed: 1)
    var options = FitOptions()
    options.batch = batch
    options.evalBatch = 128
    options.budget.epochs = epochs
    options.seed = 7
    let trainer = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: optimizer), options: options)
    let outcome = try trainer.fit()
    return (model.parameterValues.map(\.bitPattern), outcome, model.team.splitJobs)
}

@Suite("Training on several threads gives the bits of one thread")
struct ThreadsTests {
    @Test("every family, with every kind of layer and optimizer, trains to the same bits on 1, 2 and 3 threads", arguments: [
        ("mlp:width=64,depth=2", FeatureShape(height: 28, width: 28, channels: 1), "sgd:lr=0.05,momentum=0.9", 48),
        ("mlp:width=64,depth=1", FeatureShape(height: 28, width: 28, channels: 1), "gd:lr=0.1,momentum=0.9", 96),
        ("mlp:width=48,depth=1", FeatureShape(height: 28, width: 28, channels: 1), "shampoo:lr=0.01", 48),
        // More output features than rows: the forward split by columns, the optimizer and the zeroing by parameterParts.
        ("mlp:width=256,depth=1", FeatureShape(height: 28, width: 28, channels: 1), "sgd:lr=0.05,momentum=0.9", 48),
        ("mlp:width=256,depth=1", FeatureShape(height: 28, width: 28, channels: 1), "adam:lr=0.001", 48),
        ("cnn:channels=16,layers=2", FeatureShape(height: 16, width: 16, channels: 3), "adam:lr=0.001", 48),
        ("cnn:channels=72,layers=1", FeatureShape(height: 8, width: 8, channels: 3), "sgd:lr=0.01", 48),
        // At most 8 output channels (the pairs kernel): weight gradients split by columns of the kernel rows.
        ("cnn:channels=4,layers=2", FeatureShape(height: 28, width: 28, channels: 1), "sgd:lr=0.05,momentum=0.9", 96),
        ("cnn:channels=8,layers=2", FeatureShape(height: 16, width: 16, channels: 3), "adam:lr=0.001", 96),
        ("resnet:width=1.5,blocks=1,stages=2", FeatureShape(height: 16, width: 16, channels: 3), "sgd:lr=0.05,momentum=0.9", 48),
        ("resnet:width=0.5,blocks=1,stages=2", FeatureShape(height: 16, width: 16, channels: 3), "adamw:lr=0.001", 48),
        // 16 channels: batch norm's sums in 16 lanes, by micro-batches.
        ("resnet:width=1,blocks=1,stages=1", FeatureShape(height: 16, width: 16, channels: 3), "sgd:lr=0.05,momentum=0.9", 48),
        ("efficientnet:width=0.25,depth=0.25", FeatureShape(height: 16, width: 16, channels: 3), "adam:lr=0.001", 48),
        // Batches of 40 and a last of 16: micro-batches of 16, 16 and 8.
        ("resnet:width=0.5,blocks=1,stages=2,act=tanh", FeatureShape(height: 16, width: 16, channels: 3), "sgd:lr=0.05", 40),
        // Batches of 96 at 32×32 (six micro-batches).
        ("efficientnet:width=0.25,depth=0.25", FeatureShape(height: 32, width: 32, channels: 3), "sgd:lr=0.01,momentum=0.9", 96),
        ("vit:dim=32,depth=1,heads=2,patch=4", FeatureShape(height: 16, width: 16, channels: 3), "adam:lr=0.001", 48),
        // A whole block, then the class token's (products longer than 64: OpenBLAS's paths), and mean pooling.
        ("vit:dim=72,depth=2,heads=2,patch=8", FeatureShape(height: 16, width: 16, channels: 3), "sgd:lr=0.01,momentum=0.9", 48),
        ("vit:dim=32,depth=1,heads=2,patch=4,pool=mean", FeatureShape(height: 16, width: 16, channels: 3), "adamw:lr=0.001", 48),
    ])
    func sameBits(spec: String, shape: FeatureShape, optimizer: String, batch: Int) throws {
        let data = try randomImages(n: 96, shape: shape, classes: 10, seed: 5)
        let one = try trainOnThreads(spec, optimizer, data: data, batch: batch, epochs: 2, threads: 1)
        #expect(one.splitJobs == 0)
        for threads in [2, 3] {
            let many = try trainOnThreads(spec, optimizer, data: data, batch: batch, epochs: 2, threads: threads)
            // The work really was split (else this compares one thread with itself).
            #expect(many.splitJobs > 0, "\(spec) on \(threads) threads split nothing")
            let differing = zip(one.parameters, many.parameters).filter { $0 != $1 }.count
            #expect(differing == 0, "\(spec) with \(optimizer): \(differing) of \(one.parameters.count) parameters differ on \(threads) threads")
            #expect(many.outcome.finalLoss.bitPattern == one.outcome.finalLoss.bitPattern)
            #expect(many.outcome.lossHistory.map(\.bitPattern) == one.outcome.lossHistory.map(\.bitPattern))
        }
    }

    @Test("the Hessian check's products are the same bits on several threads")
    func hessianSameBits() throws {
        let shape = FeatureShape(height: 12, width: 12, channels: 3)
        let data = try randomImages(n: 64, shape: shape, classes: 4, seed: 9)
        var results: [[UInt64]] = []
        for threads in [1, 2, 3] {
            let model = try ModelSpec(parsing: "cnn:channels=16,layers=2").build(input: shape, classes: 4, maxBatch: 64, threads: threads)
            model.initialize(seed: 3)
            var options = FitOptions()
            options.batch = 32
            options.evalBatch = 64
            let trainer = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: "sgd:lr=0.01"), options: options)
            let v = (0..<model.parameterCount).map { Double(CounterRNG(seed: 11, stream: .test).normal(UInt64($0))) }
            results.append(try trainer.hessianVectorProduct(v).map(\.bitPattern))
        }
        #expect(results[1] == results[0])
        #expect(results[2] == results[0])
    }

    @Test("the products of an MLP, a CNN and a ViT at batch 128 split over 2 and 3 threads on this machine, each at a grain whose split keeps every bit")
    func rowGrain() throws {
        let shapes: [BLAS.ProductShape] = [
            .init(transA: .none, transB: .transpose, m: 128, n: 256, k: 784, beta: 1),     // an MLP's first layer
            .init(transA: .none, transB: .none, m: 128, n: 784, k: 256, beta: 0),          // its input gradient
            .init(transA: .transpose, transB: .none, m: 256, n: 784, k: 128, beta: 1),     // its weight gradient
            .init(transA: .none, transB: .transpose, m: 8_320, n: 192, k: 64, beta: 0),    // a ViT's q/k/v
            .init(transA: .none, transB: .transpose, m: 128, n: 320, k: 1_152, beta: 1),   // EfficientNet's last stage
        ]
        try expectGrains(shapes, axis: .rows)
    }

    @Test("a linear layer's forward with more output features than rows splits by columns over 2 and 3 threads, at a grain whose split keeps every bit")
    func columnGrain() throws {
        let shapes: [BLAS.ProductShape] = [
            .init(transA: .none, transB: .transpose, m: 128, n: 256, k: 784, beta: 1),     // mlp:width=256's first layer
            .init(transA: .none, transB: .transpose, m: 48, n: 256, k: 784, beta: 0),      // a smaller batch, no bias
            .init(transA: .none, transB: .transpose, m: 128, n: 256, k: 256, beta: 1),     // its second layer
        ]
        try expectGrains(shapes, axis: .columns)
    }

    @Test("the column split's bit check fails where the parts do not give one call's bits")
    func columnSplitCheckCatchesDifferences() {
        let shape = BLAS.ProductShape(transA: .none, transB: .transpose, m: 64, n: 64, k: 512, beta: 1)
        #expect(BLAS.splitKeepsBits(shape, [0..<32, 32..<64], axis: .columns))
        #expect(!BLAS.splitKeepsBits(shape, [0..<32, 32..<60], axis: .columns), "columns 60–63 left out yet the bits matched")
    }

    @Test("a model's parameter parts cover every parameter once, a share of each tensor per thread, and elementwise passes follow them",
          arguments: [2, 3])
    func parameterParts(threads: Int) throws {
        let model = try ModelSpec(parsing: "mlp:width=256,depth=2").build(input: FeatureShape(height: 28, width: 28, channels: 1), classes: 10,
                                                                           maxBatch: 128, threads: threads)
        let parts = try #require(model.parameterParts)
        #expect(parts.count == threads)
        var seen = [Int](repeating: 0, count: model.parameterCount)
        for ranges in parts { for range in ranges { for i in range { seen[i] += 1 } } }
        #expect(seen.allSatisfy { $0 == 1 })
        // The first weight matrix (256 × 784) splits at whole rows in equal shares (85 or 86 rows of 256 at 3 threads).
        let first = model.parameterLayout[0]
        let shares = parts.map { $0.filter { $0.lowerBound < first.count }.map { min($0.upperBound, first.count) - $0.lowerBound }.reduce(0, +) }
        #expect(shares.allSatisfy { $0 % 784 == 0 && $0 >= 256 / threads * 784 }, "\(shares)")
        // The threads' totals differ by at most the small tensors kept whole (the last layer's 2,570).
        let totals = parts.map { $0.reduce(0) { $0 + $1.count } }
        #expect(totals.max()! - totals.min()! <= 2_570, "\(totals)")
        // An elementwise pass on the team visits each part's ranges on one thread.
        let visited = Visits()
        model.team.scoped {
            Parallel.elements(model.parameterCount, parts: parts) { start, n in visited.add(start, n) }
        }
        #expect(visited.ranges.sorted { $0.lowerBound < $1.lowerBound } == parts.flatMap { $0 }.sorted { $0.lowerBound < $1.lowerBound })
        #expect(model.team.splitJobs > 0)
    }

    @Test("a product too small to be worth a second thread finds no grain to split at")
    func rowGrainRefusal() {
        #expect(BLAS.rowGrain(.init(transA: .none, transB: .transpose, m: 128, n: 10, k: 256, beta: 1), threads: 2) == nil)
    }

    @Test("a product taller than the split limit (OpenBLAS rounds rows past 104,508 differently in one call) runs whole, with one call's bits")
    func tallProduct() {
        let (m, n, k) = (156_800, 72, 9)
        let a = (0..<(m * k)).map { Float(($0 * 7919) % 1000) / 500 - 1 }, b = (0..<(k * n)).map { Float(($0 * 104_729) % 997) / 498 - 1 }
        var serial = [Float](repeating: 0, count: m * n), split = serial
        let team = ThreadTeam(threads: 2)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                serial.withUnsafeMutableBufferPointer { c in
                    BLAS.sgemm(.none, .transpose, m: m, n: n, k: k, alpha: 1, a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: k, beta: 0,
                               c: c.baseAddress!, ldc: n)
                }
                split.withUnsafeMutableBufferPointer { c in
                    team.scoped {
                        BLAS.sgemm(.none, .transpose, m: m, n: n, k: k, alpha: 1, a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: k, beta: 0,
                                   c: c.baseAddress!, ldc: n)
                    }
                }
            }
        }
        #expect(zip(serial, split).allSatisfy { $0.bitPattern == $1.bitPattern })
    }

    @Test("a depthwise filter gradient split by taps gives the bits of one pass", arguments: [(3, 1, 1), (5, 2, 2), (3, 2, 0)])
    func depthwiseTaps(kernel: Int, stride: Int, padding: Int) {
        let (batch, h, w, c) = (3, 9, 7, 12)
        let ho = (h + 2 * padding - kernel) / stride + 1, wo = (w + 2 * padding - kernel) / stride + 1
        let x = (0..<(batch * h * w * c)).map { Float(($0 * 7919) % 1000) / 500 - 1 }
        let dy = (0..<(batch * ho * wo * c)).map { Float(($0 * 104_729) % 997) / 498 - 1 }
        let taps = kernel * kernel
        var whole = [Float](repeating: 0.125, count: taps * c), split = whole
        let args = (Int32(batch), Int32(h), Int32(w), Int32(c), Int32(kernel), Int32(stride), Int32(padding), Int32(ho), Int32(wo))
        emc_depthwise_filter_gradient(&whole, dy, x, args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7, args.8)
        for (t0, t1) in [(0, taps / 2), (taps / 2, taps - 1), (taps - 1, taps)] {
            emc_depthwise_filter_gradient_taps(&split, dy, x, args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7, args.8,
                                               Int32(t0), Int32(t1))
        }
        #expect(whole.map(\.bitPattern) == split.map(\.bitPattern))
    }

    @Test("a depthwise filter gradient split by channels gives the bits of one pass, its sums on the stack or in place",
          arguments: [(40, [0, 16, 40]), (1000, [0, 504, 1000]), (1000, [0, 1000])])
    func depthwiseChannels(c: Int, cuts: [Int]) {
        // 1000 channels of 9 taps pass the stack array's 8192 floats as one part (its sums stay in place) and fit in halves.
        let (batch, h, w, kernel, stride, padding) = (2, 5, 4, 3, 1, 1)
        let x = (0..<(batch * h * w * c)).map { Float(($0 * 7919) % 1000) / 500 - 1 }
        let dy = (0..<(batch * h * w * c)).map { Float(($0 * 104_729) % 997) / 498 - 1 }
        var whole = [Float](repeating: 0.125, count: kernel * kernel * c), split = whole
        let args = (Int32(batch), Int32(h), Int32(w), Int32(c), Int32(kernel), Int32(stride), Int32(padding), Int32(h), Int32(w))
        emc_depthwise_filter_gradient(&whole, dy, x, args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7, args.8)
        for (c0, c1) in zip(cuts, cuts.dropFirst()) {
            emc_depthwise_filter_gradient_range(&split, dy, x, args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7, args.8,
                                                Int32(c0), Int32(c1))
        }
        #expect(whole.map(\.bitPattern) == split.map(\.bitPattern))
    }

    /// Every walk of the batch-norm sums' general path: the narrow one in row chunks (more rows than a chunk holds,
    /// channels past the last block of 8), the wide one, a wide one in slices (over 1024 channels), and 16 channels,
    /// whose lane layout a split replaces. Rows are scaled over 40 binades, so that the double sums round and their
    /// order shows in their bits (a reversed order must give other bits); sums start at zero, as batch norm passes them,
    /// and elsewhere, which the parts (and the whole pass but at 16 channels, whose lanes add to the sums at the end) add to.
    @Test("batch norm's channel sums, whole and split by channels, are each channel's sums in row order bit for bit",
          arguments: [(1500, 16), (1500, 3), (1300, 24), (700, 45), (500, 100), (300, 200), (20, 1100)])
    func batchNormSums(rows: Int, c: Int) {
        let rng = CounterRNG(seed: 5, stream: .test)
        let x = (0..<(rows * c)).map { Float((rng.normal(UInt64($0)) * 2 + 0.5) * Double(sign: .plus, exponent: $0 / c * 13 % 40 - 20, significand: 1)) }
        let dy = (0..<(rows * c)).map { Float(rng.normal(UInt64(1 << 30 | $0)) * Double(sign: .plus, exponent: $0 / c * 11 % 40 - 20, significand: 1)) }
        let mean = (0..<c).map { Float($0 % 7) * 0.1 }, istd = (0..<c).map { 1 + Float($0 % 5) * 0.2 }
        let gamma = (0..<c).map { Float($0 % 3) - 0.5 }, beta = (0..<c).map { Float($0 % 4) * 0.25 - 0.3 }
        let cuts = [0, min(c, 8), c / 16 * 8, c].sorted()
        for relu in [Int32(0), 1] {
            for startValue in [0.0, 0.375] {
                let start = (0..<c).map { startValue * Double($0 + 1) }
                /// The four sums of rows `order`, each channel from `start`.
                func inOrder(_ order: [Int]) -> [[UInt64]] {
                    var (sum, squares, sumDy, sumDyH) = (start, start, start, start)
                    for r in order {
                        for ch in 0..<c {
                            let v = Double(x[r * c + ch])
                            sum[ch] += v
                            squares[ch] += v * v
                            let hv = (x[r * c + ch] - mean[ch]) * istd[ch], affine = gamma[ch] * hv + beta[ch]
                            let g = relu == 1 && !(affine > 0) ? 0 : dy[r * c + ch]
                            sumDy[ch] += Double(g)
                            sumDyH[ch] += Double(g * hv)
                        }
                    }
                    return [sum, squares, sumDy, sumDyH].map { $0.map(\.bitPattern) }
                }
                let reference = inOrder(Array(0..<rows))
                for k in 0..<4 { #expect(inOrder((0..<rows).reversed())[k] != reference[k], "sum \(k): order shows in its bits") }
                var (wholeSum, wholeSquares, wholeDy, wholeDyH) = (start, start, start, start)
                var (splitSum, splitSquares, splitDy, splitDyH) = (start, start, start, start)
                emc_channel_moments(&wholeSum, &wholeSquares, x, rows, c)
                emc_channel_gradient_sums(&wholeDy, &wholeDyH, dy, x, mean, istd, gamma, beta, rows, c, relu)
                for (c0, c1) in zip(cuts, cuts.dropFirst()) where c0 < c1 {
                    emc_channel_moments_range(&splitSum, &splitSquares, x, rows, c, c0, c1)
                    emc_channel_gradient_sums_range(&splitDy, &splitDyH, dy, x, mean, istd, gamma, beta, rows, c, c0, c1, relu)
                }
                let whole = [wholeSum, wholeSquares, wholeDy, wholeDyH].map { $0.map(\.bitPattern) }
                let split = [splitSum, splitSquares, splitDy, splitDyH].map { $0.map(\.bitPattern) }
                if startValue == 0 || c != 16 { #expect(whole == reference, "whole, relu \(relu), from \(startValue)") }
                #expect(split == reference, "split at \(cuts), relu \(relu), from \(startValue)")
            }
        }
    }

    /// 77 samples in micro-batches of 16 (the last of 13): each micro-batch's sums from zero in sample order, then 1 into
    /// 0 and 3 into 2, then 2 into 0, then 4 into 0. Terms span 40 binades, so the order shows in the bits.
    @Test("sums by micro-batches are each micro-batch's sums from zero in order, added in a fixed tree: the same bits on 1, 2 and 3 threads")
    func microBatchTree() {
        let (batch, samples, width) = (77, 16, 3)
        let rng = CounterRNG(seed: 8, stream: .test)
        let terms = (0..<(batch * width)).map { rng.normal(UInt64($0)) * Double(sign: .plus, exponent: $0 * 13 % 40 - 20, significand: 1) }
        var partials = (0..<5).map { b in
            (0..<width).map { k in
                (b * samples..<min(batch, (b + 1) * samples)).reduce(0.0) { $0 + terms[$1 * width + k] }
            }
        }
        for (into, from) in [(0, 1), (2, 3), (0, 2), (0, 4)] { for k in 0..<width { partials[into][k] += partials[from][k] } }
        let tree = partials[0].map(\.bitPattern)
        let inOrder = (0..<width).map { k in (0..<batch).reduce(0.0) { $0 + terms[$1 * width + k] }.bitPattern }
        #expect(inOrder != tree, "the order shows in the bits")
        for threads in [1, 2, 3] {
            let team = ThreadTeam(threads: threads)
            var sums = MicroBatchSums<Double>()
            defer { sums.deallocate() }
            let total = team.scoped {
                // A sample's work given as 2^16, so every micro-batch is worth a thread.
                sums.sum(batch: batch, samples: samples, width: width, perSample: 1 << 16) { partial, chosen in
                    for sample in chosen { for k in 0..<width { partial[k] += terms[sample * width + k] } }
                }
            }
            #expect((0..<width).map { total[$0].bitPattern } == tree, "\(threads) threads")
            #expect(team.splitJobs == (threads > 1 ? 1 : 0))
        }
    }

    /// Forward then backward of `layer` on a batch of `batch` on `threads` threads: the output, the input gradient and the
    /// parameter gradients (added to 0.25, as a second pass adds to the first's) as bits, and the jobs the team split. Inputs span 40 binades, or with `offset`
    /// are 1024 + 2⁻⁷·N(0, 1): batch norm's variance, Σx²/m − mean², then cancels all but 2⁻¹⁴ of Σx²/m, so the rounding
    /// of Σx² in double, which depends on its order, shows in the float statistics. Parameters and dy are fixed by seeds.
    private func layerPass(_ layer: Layer, batch: Int, threads: Int, offset: Bool) -> (bits: [[UInt32]], splitJobs: Int) {
        let rng = CounterRNG(seed: 4, stream: .test)
        let inCount = batch * layer.inputShape.count, outCount = batch * layer.outputShape.count
        var parameters = (0..<layer.parameterCount).map { rng.uniform(UInt64($0)) + 0.5 }
        var gradients = [Float](repeating: 0.25, count: layer.parameterCount)
        let x = (0..<inCount).map { i -> Float in
            let normal = Float(rng.normal(UInt64(1 << 20 | i)))
            return offset ? 1024 + normal * 0x1p-7 : normal * Float(sign: .plus, exponent: i * 7 % 40 - 20, significand: 1)
        }
        let dy = (0..<outCount).map { Float(rng.normal(UInt64(1 << 30 | $0))) }
        var y = [Float](repeating: 0, count: outCount), dx = [Float](repeating: 0, count: inCount)
        let team = ThreadTeam(threads: threads)
        parameters.withUnsafeMutableBufferPointer { p in
            gradients.withUnsafeMutableBufferPointer { g in
                layer.bind(parameters: p.baseAddress!, gradients: g.baseAddress!, maxBatch: batch)
                team.scoped {
                    layer.forward(x, &y, batch: batch)
                    layer.backward(input: x, output: y, gradOutput: dy, gradInput: &dx, batch: batch)
                }
            }
        }
        return ([y, dx, gradients].map { $0.map(\.bitPattern) }, team.splitJobs)
    }

    @Test("batch norm and a depthwise convolution by micro-batches give the same bits on 1, 2 and 3 threads, and at one micro-batch the whole batch's",
          arguments: ["batchnorm", "batchnorm+relu", "dwconv"])
    func microBatchLayers(kind: String) {
        let shape = FeatureShape(height: 16, width: 16, channels: 32)
        func make(_ microBatch: Int?) -> Layer {
            switch kind {
            case "dwconv": return DepthwiseConv2D(input: shape, kernel: 3, stride: 1, padding: 1, bias: false, microBatch: microBatch)
            default: return BatchNorm(input: shape, relu: kind == "batchnorm+relu", microBatch: microBatch)
            }
        }
        // 40 samples: micro-batches of 16, 16 and 8.
        let offset = kind != "dwconv"
        let one = layerPass(make(16), batch: 40, threads: 1, offset: offset)
        #expect(one.splitJobs == 0)
        for threads in [2, 3] {
            let many = layerPass(make(16), batch: 40, threads: threads, offset: offset)
            #expect(many.splitJobs > 0, "\(kind) on \(threads) threads split nothing")
            #expect(many.bits == one.bits, "\(kind) on \(threads) threads")
        }
        #expect(layerPass(make(nil), batch: 40, threads: 1, offset: offset).bits != one.bits,
                "micro-batches change the sums' bits at 40 samples")
        #expect(layerPass(make(16), batch: 12, threads: 1, offset: offset).bits
                    == layerPass(make(nil), batch: 12, threads: 1, offset: offset).bits,
                "one micro-batch sums as the whole batch does")
    }

    @Test("over many short jobs, a team runs each part exactly once, whichever thread claims it")
    func claims() {
        let team = ThreadTeam(threads: 3)
        final class Box: @unchecked Sendable { var counts = [Int](repeating: 0, count: 3 * 20_000) }
        let box = Box()
        box.counts.withUnsafeMutableBufferPointer { counts in
            team.scoped {
                for job in 0..<20_000 {
                    Parallel.parts(job % 2 == 0 ? 3 : 2) { part in counts[3 * job + part] += 1 }
                }
            }
        }
        #expect((0..<20_000).allSatisfy { job in (0..<3).allSatisfy { box.counts[3 * job + $0] == (job % 2 == 1 && $0 == 2 ? 0 : 1) } })
    }

    @Test("a team runs every part once, nested work runs on the part's own thread, and one thread needs no team")
    func team() {
        let team = ThreadTeam(threads: 3)
        #expect(team.count == 3)
        final class Box: @unchecked Sendable { var seen = [Int](repeating: 0, count: 100) }
        let box = Box()
        box.seen.withUnsafeMutableBufferPointer { seen in
            team.scoped {
                Parallel.ranges(100, grain: 4) { range, part in
                    #expect(part < 3)
                    // Nested: runs here, not on the busy team.
                    Parallel.ranges(range.count) { inner, innerPart in
                        #expect(innerPart == 0)
                        for i in inner { seen[range.lowerBound + i] += 1 }
                    }
                }
            }
        }
        #expect(box.seen.allSatisfy { $0 == 1 })
        #expect(team.splitJobs == 1)
        #expect(ThreadTeam(threads: 1).count == 1)
    }

    @Test("the core round trip passes a line between the caller and a worker, whether the worker sleeps or spins, and is 0 on one thread")
    func coreRoundTrip() {
        let team = ThreadTeam(threads: 2)
        // A fresh team's worker spins; after a pause it sleeps on the futex and the probe must wake it.
        let spinning = team.coreRoundTripSeconds(rounds: 200)
        Thread.sleep(forTimeInterval: 0.02)
        let woken = team.coreRoundTripSeconds(rounds: 200)
        for seconds in [spinning, woken] {
            // Two cache-line transfers: more than a nanosecond; under a second even when a busy machine runs both threads on
            // one core (a time slice a round trip).
            #expect(seconds > 1e-9 && seconds < 1, "\(seconds) s per round trip")
        }
        #expect(team.splitJobs == 2)
        #expect(ThreadTeam(threads: 1).coreRoundTripSeconds() == 0)
    }
}

/// Each product of `shapes` finds a grain along `axis` at 2 and 3 threads, splits into as many parts as threads,
/// covering the whole dimension, and that split gives one call's bits.
private func expectGrains(_ shapes: [BLAS.ProductShape], axis: BLAS.SplitAxis) throws {
    for shape in shapes {
        for threads in [2, 3] {
            let grain = try #require(BLAS.grain(shape, threads: threads, axis: axis), "\(shape) would run on one thread at \(threads) threads")
            let (count, minimum) = BLAS.splitDimension(shape, axis: axis)
            let parts = Parallel.partCount(count, grain: grain, minimum: max(grain, minimum), threads: threads)
            #expect(parts == threads, "\(shape) at \(threads) threads")
            let split = (0..<parts).map { Parallel.range($0, of: parts, count: count, grain: grain) }
            #expect(split.first?.lowerBound == 0 && split.last?.upperBound == count)
            #expect(BLAS.splitKeepsBits(shape, split, axis: axis))
        }
    }
}

/// The ranges a pass visited, from any thread.
private final class Visits: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var ranges: [Range<Int>] = []
    func add(_ start: Int, _ n: Int) { lock.lock(); ranges.append(start..<(start + n)); lock.unlock() }
}
