import EMCCore
import EMCPipeline
import EMCShards
import EMCTestSupport
import EMCTrainer
import EMCTransforms
import EMCVariants
import Foundation
import Testing

/// Rewrites a set's dataset.json through `edit`; with `reseal`, recomputes the content id so the edit looks intact.
func editManifest(_ dir: String, reseal: Bool = false, _ edit: (inout DatasetManifest) -> Void) throws {
    var manifest = try DatasetManifest.load(directory: dir)
    edit(&manifest)
    if reseal { manifest.contentId = manifest.computeContentId() }
    try manifest.write(directory: dir)
}

@Suite("Variants and the data protocol refuse what would crash or mislead")
struct VariantSafetyTests {
    @Test("a manifest whose class count was edited is refused when opened, naming the file")
    func editedClasses() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        try editManifest(base) { $0.classes = ClassInfo(count: 3, names: ["a", "b", "c"]) }
        let e = #expect(throws: EMCError.self) { _ = try DatasetView(directory: base) }
        #expect(e?.file == FileSystem.join(base, DatasetManifest.fileName) && e?.description.contains("content id") == true)
    }

    @Test("labels beyond the declared classes stop training with an error naming the set and the sample, not a SIGSEGV")
    func labelsBeyondClasses() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        try editManifest(base, reseal: true) { $0.classes = ClassInfo(count: 3, names: ["a", "b", "c"]) }
        let subset = try Subset(view: try DatasetView(directory: base), count: 200, options: SubsetOptions(seed: 1))
        let model = try ModelSpec(parsing: "mlp:width=8").build(input: subset.shape, classes: 3, maxBatch: 64)
        model.initialize(seed: 1)
        var fit = FitOptions()
        fit.batch = 32
        fit.evalBatch = 64
        fit.budget.epochs = 2
        let e = #expect(throws: EMCError.self) {
            _ = try Trainer(model: model, data: subset, optimizer: try OptimizerSpec(parsing: "sgd"), options: fit).fit()
        }
        #expect(e?.file == base && e?.expected == "0..<3")
        if case .sample? = e?.place {} else { Issue.record("the error names no sample: \(String(describing: e))") }
    }

    @Test("in-memory data with a label past its classes is caught at the boundary too")
    func inMemoryLabels() throws {
        let data = try InMemoryTrainingData(inputs: [Float](repeating: 0.5, count: 8), labels: [0, 1, 2, 7], shape: .vector(2), classes: 3)
        let model = try ModelSpec(parsing: "mlp:width=4,depth=1").build(input: .vector(2), classes: 3, maxBatch: 4)
        model.initialize(seed: 1)
        var fit = FitOptions()
        fit.batch = 4
        fit.evalBatch = 4
        let e = #expect(throws: EMCError.self) { _ = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: "sgd"), options: fit).fit() }
        #expect(e?.place == .sample(3) && e?.found == "7")
        #expect(throws: EMCError.self) { _ = try InMemoryTrainingData(inputs: [1, 2, 3], labels: [0, 1], shape: .vector(2), classes: 2) }
    }

    @Test("a variant whose base is itself, or two variants naming each other, is a loop named as such")
    func cycles() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        let a = dir.file("a"), b = dir.file("b")
        _ = try VariantBuilder.make(PerturbRequest(base: base, out: a, labels: .noise(probability: 0.1, seed: 1)))
        _ = try VariantBuilder.make(PerturbRequest(base: a, out: b, inputs: .permute(seed: 2)))
        // Point a at b (and keep a's content id consistent, as a careful hand edit would).
        try editManifest(a, reseal: true) { $0.variant!.base = "../b" }
        let e = #expect(throws: EMCError.self) { _ = try DatasetView(directory: b) }
        #expect(e?.description.contains("loops back on itself") == true)
        try editManifest(a, reseal: true) { $0.variant!.base = "." }
        let selfLoop = #expect(throws: EMCError.self) { _ = try DatasetView(directory: a) }
        #expect(selfLoop?.description.contains("loops back on itself") == true)
    }

    @Test("perturb refuses to write onto its base or over another set without force, and replaces it with force")
    func noOverwrite() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        let before = try ReadableFile.contents(of: FileSystem.join(base, DatasetManifest.fileName))
        let onto = #expect(throws: EMCError.self) { _ = try VariantBuilder.make(PerturbRequest(base: base, out: base, labels: .random(classes: 10, seed: 1))) }
        #expect(onto?.description.contains("the base set itself") == true)
        #expect(try ReadableFile.contents(of: FileSystem.join(base, DatasetManifest.fileName)) == before)
        let out = dir.file("v")
        _ = try VariantBuilder.make(PerturbRequest(base: base, out: out, labels: .random(classes: 10, seed: 1)))
        var again = PerturbRequest(base: base, out: out, labels: .random(classes: 10, seed: 2))
        let e = #expect(throws: EMCError.self) { _ = try VariantBuilder.make(again) }
        #expect(e?.remedy == .replaceOutput)
        again.force = true
        let replaced = try VariantBuilder.make(again)
        #expect(try DatasetManifest.load(directory: out).contentId == replaced.contentId)
    }

    @Test("a transform that changes the label space relabels every split; limiting it to train is refused",
          arguments: [LabelTransform.merge(classes: 2, mode: .block, seed: 0), .random(classes: 4, seed: 5)])
    func labelSpace(transform: LabelTransform) throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        let out = dir.file("v")
        _ = try VariantBuilder.make(PerturbRequest(base: base, out: out, labels: transform))
        let view = try DatasetView(directory: out)
        let k = transform.outputClasses(input: 10)
        for split in ["train", "test"] {
            let labels = try view.split(split).allLabels()
            #expect(labels.allSatisfy { Int($0) < k }, "\(split) keeps labels of the old space")
        }
        var limited = PerturbRequest(base: base, out: dir.file("w"), labels: transform)
        limited.labelSplits = ["train"]
        let e = #expect(throws: EMCError.self) { _ = try VariantBuilder.make(limited) }
        #expect(e?.description.contains("every split") == true)
    }

    @Test("temporaries of killed writers are removed when a set is written again; a live writer's are kept")
    func abandonedTemporaries() throws {
        let dir = TemporaryDirectory()
        try AtomicFileWriter.write([1], to: dir.file(".shard-0.emcs.tmp-999999999"))
        try AtomicFileWriter.write([1], to: dir.file(".shard-1.emcs.tmp-\(getpid() == 1 ? 2 : 1)"))
        #expect(AtomicFileWriter.removeAbandonedTemporaries(in: dir.path) == [".shard-0.emcs.tmp-999999999"])
        #expect(FileSystem.exists(dir.file(".shard-1.emcs.tmp-\(getpid() == 1 ? 2 : 1)")))
    }

    @Test("verify reports an edited chunk layout and damaged statistics; a run refuses a negative std")
    func layoutAndStatistics() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        #expect(ShardSetVerifier.verify(directory: base).ok)
        try editManifest(base) { $0.splits["train"]!.chunkSamples *= 2 }
        #expect(ShardSetVerifier.verify(directory: base).problems.contains { $0.message.contains("samples per chunk") })
        try editManifest(base) { $0.splits["train"]!.chunkSamples /= 2; $0.statistics.std[1] = -3 }
        let report = ShardSetVerifier.verify(directory: base)
        #expect(report.problems.map(\.message) .contains { $0.contains("statistics are damaged") })
        let e = #expect(throws: EMCError.self) { _ = try Subset(view: try DatasetView(directory: base), count: 100, options: SubsetOptions(seed: 1)) }
        #expect(e?.file == FileSystem.join(base, DatasetManifest.fileName) && e?.place == .field("statistics"))
    }

    @Test("a contact sheet asked for a million samples per class is refused, not allocated")
    func perClassBound() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        #expect(throws: EMCError.self) { _ = try ContactSheet.make(directory: base, perClass: 1_000_000) }
        #expect(try ContactSheet.make(directory: base, perClass: 2).width > 0)
    }
}
