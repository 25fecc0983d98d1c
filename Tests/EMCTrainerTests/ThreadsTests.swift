import EMCCore
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
        ("mlp:width=32,depth=1", FeatureShape(height: 28, width: 28, channels: 1), "gd:lr=0.1,momentum=0.9", 96),
        ("mlp:width=48,depth=1", FeatureShape(height: 28, width: 28, channels: 1), "shampoo:lr=0.01", 48),
        ("cnn:channels=16,layers=2", FeatureShape(height: 16, width: 16, channels: 3), "adam:lr=0.001", 48),
        ("cnn:channels=72,layers=1", FeatureShape(height: 8, width: 8, channels: 3), "sgd:lr=0.01", 48),
        ("resnet:width=1.5,blocks=1,stages=2", FeatureShape(height: 16, width: 16, channels: 3), "sgd:lr=0.05,momentum=0.9", 48),
        ("resnet:width=0.5,blocks=1,stages=2", FeatureShape(height: 16, width: 16, channels: 3), "adamw:lr=0.001", 48),
        ("efficientnet:width=0.25,depth=0.25", FeatureShape(height: 16, width: 16, channels: 3), "adam:lr=0.001", 48),
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

    @Test("a product split into row blocks at the found grain keeps every bit; the grain is found on this machine")
    func rowGrain() throws {
        let grain = try #require(BLAS.rowGrain, "no row grain keeps OpenBLAS's bits here: products would run on one thread")
        #expect(BLAS.rowSplitKeepsBits(grain))
        #expect(BLAS.rowSplitKeepsBits(2 * grain))
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
}
