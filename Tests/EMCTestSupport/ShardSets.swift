import EMCCore
import EMCShards

// Helpers the test targets share: shard sets written in a test, and where the repository's manifests are.

/// The repository's manifests/datasets folder (found from this file, so tests run from any folder).
public let repositoryManifests: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/EMCTestSupport/<file>
    return parts.joined(separator: "/") + "/manifests/datasets"
}()

/// Writes `samples` as one split of a shard set in `dir` and returns the manifest.
@discardableResult
public func writeSet(_ samples: LabeledSamples, to dir: String, codec: CodecSpec?, chunkBytes: Int = 1 << 20, shardSamples: Int? = nil,
                     seed: UInt64 = 0, shuffle: Bool = true, threads: Int = 2, classes: Int = 10, split: String = "train") throws -> DatasetManifest {
    var options = ShardSetOptions(codec: codec, seed: seed, shuffle: shuffle)
    options.chunkBytes = chunkBytes
    options.shardSamples = shardSamples
    options.threads = threads
    let writer = try ShardSetWriter(directory: dir, name: "fixture", schema: samples.schema,
                                    classes: ClassInfo(count: classes, names: (0..<classes).map { "c\($0)" }),
                                    options: options, decoder: "test", sources: [])
    try writer.write(split: split, samples: samples)
    return try writer.finish()
}

/// A small image shard set (8×8×3, 10 classes with coarse labels) with a few chunks and two shards per split, in `dir`.
public func makeBase(_ dir: TemporaryDirectory, count: Int = 400, testCount: Int = 100) throws -> String {
    var options = ShardSetOptions(codec: .lz4, seed: 1)
    options.chunkBytes = 192 * 16
    options.shardSamples = 256
    let writer = try ShardSetWriter(directory: dir.path, name: "fixture", schema: .image(height: 8, width: 8, channels: 3),
                                    classes: ClassInfo(count: 10, names: (0..<10).map { "c\($0)" }, coarseNames: ["low", "high"],
                                                       coarseOfFine: (0..<10).map { $0 / 5 }),
                                    options: options, decoder: "test", sources: [])
    try writer.write(split: "train", samples: Fixtures.images(count: count, seed: 1))
    try writer.write(split: "test", samples: Fixtures.images(count: testCount, seed: 2))
    _ = try writer.finish()
    return dir.path
}
