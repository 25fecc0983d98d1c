import EMCConvert
import EMCCore
import EMCPipeline
import EMCVariants
import EMCShards
import EMCTestSupport
import EMCTrainer
import EMCTransforms
import Testing

/// All samples of a split through a view: bytes, labels.
func readView(_ path: String, split: String = "train") throws -> (data: [UInt8], labels: [UInt32]) {
    let view = try DatasetView(directory: path).split(split)
    var data = [UInt8](repeating: 0, count: view.count * view.schema.sampleBytes)
    var labels: [UInt32] = []
    let sb = view.schema.sampleBytes
    try data.withUnsafeMutableBytes { d in
        for p in 0..<view.count { labels.append(try view.read(p, into: UnsafeMutableRawBufferPointer(rebasing: d[(p * sb)..<((p + 1) * sb)]))) }
    }
    return (data, labels)
}

@Suite("Variants")
struct VariantTests {
    @Test("a random-label overlay changes train labels only, the same seed gives the same bytes, and verify checks it")
    func randomLabels() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        let a = dir.file("a"), b = dir.file("b")
        for out in [a, b] { _ = try VariantBuilder.make(PerturbRequest(base: base, out: out, labels: .random(classes: 10, seed: 3))) }
        #expect(try ReadableFile.contents(of: a + "/labels-train.emcl") == ReadableFile.contents(of: b + "/labels-train.emcl"))
        #expect(try ReadableFile.contents(of: a + "/dataset.json") == ReadableFile.contents(of: b + "/dataset.json"))
        let original = try readView(base), variant = try readView(a)
        let sameData = original.data == variant.data, sameLabels = original.labels == variant.labels
        #expect(sameData)
        #expect(!sameLabels)
        #expect(try readView(base, split: "test").labels == readView(a, split: "test").labels)
        #expect(ShardSetVerifier.verify(directory: a).ok)
        // A damaged overlay is caught.
        var bytes = try ReadableFile.contents(of: a + "/labels-train.emcl")
        bytes[40] ^= 1
        try AtomicFileWriter.write(bytes, to: a + "/labels-train.emcl")
        #expect(!ShardSetVerifier.verify(directory: a).ok)
        #expect(throws: EMCError.self) { _ = try DatasetView(directory: a) }
    }

    @Test("a materialized variant equals the overlay read; perturb of perturb composes")
    func materializeAndCompose() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        let overlay = dir.file("overlay"), solid = dir.file("solid")
        var request = PerturbRequest(base: base, out: overlay, labels: .merge(classes: 2, mode: .block, seed: 0), inputs: .permute(seed: 4))
        _ = try VariantBuilder.make(request)
        request.out = solid
        request.materialize = true
        _ = try VariantBuilder.make(request)
        #expect(try DatasetManifest.load(directory: solid).variant == nil)
        for split in ["train", "test"] {
            let a = try readView(overlay, split: split), b = try readView(solid, split: split)
            let sameData = a.data == b.data, sameLabels = a.labels == b.labels
            #expect(sameData, "\(split)")
            #expect(sameLabels, "\(split)")
        }
        #expect(try readView(overlay).labels.allSatisfy { $0 < 2 })
        // Second level: random labels over the permuted, merged variant.
        let second = dir.file("second")
        _ = try VariantBuilder.make(PerturbRequest(base: overlay, out: second, labels: .random(classes: 2, seed: 8)))
        let top = try readView(second)
        let under = try readView(overlay)
        let sameData = top.data == under.data, sameLabels = top.labels == under.labels
        #expect(sameData)  // the permutation still applies
        #expect(!sameLabels)
        #expect(ShardSetVerifier.verify(directory: second).ok)
    }

    @Test("a variant whose base is missing or changed is a clear error")
    func missingBase() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        let variant = dir.file("v")
        _ = try VariantBuilder.make(PerturbRequest(base: base, out: variant, inputs: .gaussian(seed: 1)))
        // Change the base: rewrite it with another seed.
        let other = TemporaryDirectory()
        _ = try makeBase(other, count: 300)
        try AtomicFileWriter.write(try ReadableFile.contents(of: other.file("dataset.json")), to: dir.file("dataset.json"))
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try DatasetView(directory: variant) })
            #expect(e.description.contains("changed"))
        }
        FileSystem.remove(dir.file("dataset.json"))
        do { _ = try DatasetView(directory: variant); Issue.record("opened a variant with no base") } catch let e as EMCError {
            #expect(e.kind == .missing)
            #expect(e.description.contains("base"))
        }
    }
}

@Suite("Subsets, batches and prefetch")
struct SubsetTests {
    /// One epoch's batches as the trainer loads them; `from`: start at that position, as a restarted process would.
    func floats(_ subset: Subset, epoch: Int, seed: UInt64 = 0, batch: Int = 32, from: Int = 0) throws -> (inputs: [Float], labels: [Int32]) {
        let order = subset.order(epoch: epoch, seed: seed)
        subset.beginEpoch(epoch, order: order, batchSize: batch)
        var inputs = [Float](), labels = [Int32]()
        var buffer = [Float](repeating: 0, count: batch * subset.shape.count), lb = [Int32](repeating: 0, count: batch)
        var start = from
        while start < order.count {
            let b = min(batch, order.count - start)
            try order.withUnsafeBufferPointer { o in
                try buffer.withUnsafeMutableBufferPointer { bp in try lb.withUnsafeMutableBufferPointer { lp in
                    try subset.loadBatch(UnsafeBufferPointer(rebasing: o[start..<(start + b)]), inputs: UnsafeMutableBufferPointer(rebasing: bp[0..<(b * subset.shape.count)]), labels: UnsafeMutableBufferPointer(rebasing: lp[0..<b]))
                } }
            }
            inputs += buffer[0..<(b * subset.shape.count)]
            labels += lb[0..<b]
            start += b
        }
        return (inputs, labels)
    }

    @Test("the n-subset is a prefix of the m-subset, and seeds give different subsets")
    func nested() throws {
        let dir = TemporaryDirectory()
        let view = try DatasetView(directory: try makeBase(dir))
        let small = try Subset(view: view, count: 50, options: SubsetOptions(seed: 3))
        let large = try Subset(view: view, count: 300, options: SubsetOptions(seed: 3))
        #expect(Array(large.positions.prefix(50)) == small.positions)
        #expect(try Subset(view: view, count: 50, options: SubsetOptions(seed: 4)).positions != small.positions)
        #expect(Set(large.positions).count == 300)
        #expect(throws: EMCError.self) { _ = try Subset(view: view, count: 401) }
    }

    @Test("batches are identical with 1 or 2 worker threads, cached or streaming, and a resumed epoch equals the uninterrupted one")
    func determinism() throws {
        let dir = TemporaryDirectory()
        let view = try DatasetView(directory: try makeBase(dir))
        var one = SubsetOptions(seed: 2), two = SubsetOptions(seed: 2)
        one.threads = 1
        two.threads = 2
        let a = try floats(try Subset(view: view, count: 300, options: one), epoch: 5)
        let b = try floats(try Subset(view: view, count: 300, options: two), epoch: 5)
        #expect(a.inputs == b.inputs && a.labels == b.labels)
        var streamOptions = two
        streamOptions.memoryBudget = 0
        streamOptions.windowChunks = 2
        let streaming = try Subset(view: view, count: 300, options: streamOptions)
        #expect(!streaming.cached)
        let s1 = try floats(streaming, epoch: 5)
        streamOptions.threads = 1
        let s2 = try floats(try Subset(view: view, count: 300, options: streamOptions), epoch: 5)
        #expect(s1.inputs == s2.inputs && s1.labels == s2.labels)
        // The same samples, in the streaming order: the same multiset of labels.
        #expect(s1.labels.sorted() == a.labels.sorted())
        // Resume: a new process (a fresh subset, cached and streaming) starting epoch 7 at position 96 loads exactly
        // the batches the uninterrupted epoch loaded from there on.
        for options in [two, streamOptions] {
            let whole = try floats(try Subset(view: view, count: 300, options: options), epoch: 7, seed: 9)
            let resumed = try floats(try Subset(view: view, count: 300, options: options), epoch: 7, seed: 9, from: 96)
            let d = view.schema.sampleBytes
            #expect(resumed.labels == Array(whole.labels[96...]) && resumed.inputs == Array(whole.inputs[(96 * d)...]))
            #expect(try floats(try Subset(view: view, count: 300, options: options), epoch: 8, seed: 9).labels != whole.labels)
        }
    }

    @Test("standard normalisation uses the manifest's statistics; unit divides by 255")
    func normalisation() throws {
        let dir = TemporaryDirectory()
        let view = try DatasetView(directory: try makeBase(dir))
        var options = SubsetOptions(seed: 0)
        options.normalize = .none
        let raw = try floats(try Subset(view: view, count: 64, options: options), epoch: 0)
        options.normalize = .unit
        let unit = try floats(try Subset(view: view, count: 64, options: options), epoch: 0)
        options.normalize = .standard
        let standard = try floats(try Subset(view: view, count: 64, options: options), epoch: 0)
        let stats = view.manifest.statistics
        for i in stride(from: 0, to: raw.inputs.count, by: 37) {
            #expect(abs(unit.inputs[i] - raw.inputs[i] / 255) < 1e-6)
            let c = i % 3
            #expect(abs(Double(standard.inputs[i]) - (Double(raw.inputs[i]) - stats.mean[c]) / stats.std[c]) < 1e-4)
        }
    }

    @Test("the trainer fits a small subset streamed through the pipeline")
    func trainThroughPipeline() throws {
        let dir = TemporaryDirectory()
        let view = try DatasetView(directory: try makeBase(dir))
        var options = SubsetOptions(seed: 1)
        options.threads = 2
        let subset = try Subset(view: view, count: 64, options: options)
        let model = try ModelSpec(parsing: "mlp:width=64").build(input: subset.shape, classes: 10, maxBatch: 64)
        model.initialize(seed: 1)
        var fit = FitOptions()
        fit.batch = 16
        fit.evalBatch = 64
        fit.budget.epochs = 300
        let outcome = try Trainer(model: model, data: subset, optimizer: try OptimizerSpec(parsing: "adam:lr=0.003"), options: fit).fit()
        #expect(outcome.result == .fitted, "\(outcome.reason)")
    }
}

@Suite("Synthetic images")
struct SyntheticTests {
    @Test("images are a pure function of (seed, index) and labels are balanced")
    func pure() throws {
        let g = try SyntheticImages(size: 16, classes: 10, seed: 5)
        var a = [UInt8](repeating: 0, count: g.schema.sampleBytes), b = a, c = a
        a.withUnsafeMutableBytes { g.render(42, into: $0) }
        b.withUnsafeMutableBytes { g.render(42, into: $0) }
        c.withUnsafeMutableBytes { g.render(43, into: $0) }
        #expect(a == b && a != c)
        var counts = [Int](repeating: 0, count: 10)
        for i in 0..<10_000 { counts[Int(g.label(UInt64(i)))] += 1 }
        #expect(counts.allSatisfy { abs($0 - 1000) < 150 })
    }

    @Test("a class is its shape and texture, not its colour: the mean colour of an image says nothing of its class")
    func colourIsNoCue() throws {
        let g = try SyntheticImages(size: 16, classes: 10, seed: 3)
        var sums = [[Double]](repeating: [0, 0, 0], count: 10), counts = [Double](repeating: 0, count: 10)
        var image = [UInt8](repeating: 0, count: g.schema.sampleBytes)
        for i in 0..<3000 {
            image.withUnsafeMutableBytes { g.render(UInt64(i), into: $0) }
            let k = Int(g.label(UInt64(i)))
            for c in 0..<3 { sums[k][c] += stride(from: c, to: image.count, by: 3).map { Double(image[$0]) }.reduce(0, +) / Double(image.count / 3) }
            counts[k] += 1
        }
        let means = (0..<10).map { k in sums[k].map { $0 / counts[k] } }
        // Per-class means of each channel lie within a few levels of each other (image-to-image spread is about 50).
        for c in 0..<3 {
            let values = means.map { $0[c] }
            #expect(values.max()! - values.min()! < 12, "channel \(c): class means \(values)")
        }
    }

    @Test("written sets verify, are identical across thread counts, and a small CNN learns them above chance")
    func learnable() throws {
        let g = try SyntheticImages(size: 24, classes: 4, seed: 1)
        let a = TemporaryDirectory(), b = TemporaryDirectory()
        var options = ShardSetOptions(codec: .zstdDelta)
        options.threads = 1
        _ = try g.write(to: a.path, train: 1500, test: 200, options: options, progress: nil)
        options.threads = 2
        _ = try g.write(to: b.path, train: 1500, test: 200, options: options, progress: nil)
        for name in try FileSystem.list(a.path) { #expect(try ReadableFile.contents(of: a.file(name)) == ReadableFile.contents(of: b.file(name))) }
        #expect(ShardSetVerifier.verify(directory: a.path).ok)
        let view = try DatasetView(directory: a.path)
        let train = try Subset(view: view, count: 1500), test = try Subset(view: view, split: "test", count: 200)
        let model = try ModelSpec(parsing: "cnn:channels=8,layers=2,fc=32").build(input: train.shape, classes: 4, maxBatch: 256)
        model.initialize(seed: 0)
        var fit = FitOptions()
        fit.batch = 32
        fit.evalBatch = 200
        fit.budget.epochs = 12
        _ = try Trainer(model: model, data: train, optimizer: try OptimizerSpec(parsing: "adam:lr=0.003"), options: fit).fit()
        let (_, wrong) = try Trainer(model: model, data: test, optimizer: try OptimizerSpec(parsing: "sgd"), options: fit).fullPass(gradient: false)
        let accuracy = Double(200 - wrong) / 200
        // Four classes told apart by shape alone (striped disc, square, triangle, ring, in any colours, among clutter): the
        // set is meant to be hard (the README measures a CNN on 10k samples of it). Above chance by more than three
        // standard errors of 200 test samples at chance (0.25 + 3 × 0.031).
        #expect(accuracy > 0.35, "test accuracy \(accuracy) (chance 0.25)")
    }
}

@Suite("emc export: what emc reads, as .npy")
struct ExportTests {
    @Test("a nested subset is written with its positions and equals what the view reads; existing files and a subset larger than the split are errors")
    func export() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        var request = DatasetExport.Request(data: base, out: dir.file("out/fm"))
        request.subset = 50
        request.seed = 3
        let result = try DatasetExport.run(request)
        #expect(result.samples == 50 && result.shape == [50, 8, 8, 3] && result.files.count == 3)
        let positions = try Subset(view: try DatasetView(directory: base), split: "train", count: 50, options: SubsetOptions(seed: 3)).positions
        let npy = try ReadableFile.contents(of: dir.file("out/fm.positions.npy"))
        let stored = (0..<50).map { i in (0..<8).reduce(0) { $0 | Int(npy[npy.count - 400 + i * 8 + $1]) << (8 * $1) } }
        #expect(stored == positions)
        let x = try ReadableFile.contents(of: dir.file("out/fm.x.npy"))
        let (all, _) = try readView(base)
        #expect(Array(x.suffix(192)) == Array(all[(positions[49] * 192)..<((positions[49] + 1) * 192)]), "the last sample's bytes")
        // Nothing is overwritten without force.
        let again = #expect(throws: EMCError.self) { _ = try DatasetExport.run(request) }
        #expect(again?.description.contains("fm.x.npy") == true && again?.remedy == .replaceOutput)
        request.force = true
        _ = try DatasetExport.run(request)
        // A subset larger than the split names the set.
        request.subset = 401
        let tooMany = #expect(throws: EMCError.self) { _ = try DatasetExport.run(request) }
        #expect(tooMany?.description.contains("401") == true)
        request.subset = nil
        request.split = "validation"
        #expect(throws: EMCError.self) { _ = try DatasetExport.run(request) }
    }
}
