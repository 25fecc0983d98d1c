import EMCCore
import EMCShards
import EMCTransforms

/// A shard set or a variant of one (of a variant...), opened for reading: the base's shards seen
/// through the chain's label overlays and input transforms.
public final class DatasetView: @unchecked Sendable {
    public let directory: String
    public let manifest: DatasetManifest
    /// The set that owns the shards, at the bottom of the chain.
    public let root: ShardSet
    /// Input transforms in the order they apply (the base's first).
    public let inputTransforms: [PreparedInputTransform]
    /// Split → labels replaced by the nearest overlay in the chain.
    private let labelOverlays: [String: [UInt32]]
    /// The chain from this set down to the root (for provenance and messages).
    public let chain: [String]

    /// Opens the set or variant in `directory`, resolving its chain of bases (the one place a chain is resolved).
    /// Refuses a manifest edited since it was written (its content id no longer matches what it lists), a chain that
    /// loops back on itself, and a base that changed since the variant was made.
    public convenience init(directory: String) throws {
        try self.init(directory: directory, visited: [])
    }

    /// The longest chain a view resolves: a base and up to 63 variants stacked on it (a variant of a variant ...).
    public static let maxChainDepth = 64

    private init(directory: String, visited: [String]) throws {
        let here = FileSystem.canonicalPath(directory)
        guard visited.count < Self.maxChainDepth else {
            throw EMCError(.unsupported, "this variant's chain of bases is longer than \(Self.maxChainDepth) sets; materialize a variant "
                           + "part way down (emc perturb --materialize) to start a new chain", file: visited.first ?? directory)
        }
        if let first = visited.firstIndex(of: here) {
            let loop = (visited[first...] + [here]).joined(separator: " → ")
            throw EMCError(.format, "this variant's chain of bases loops back on itself (\(loop)); a variant's base must be another set",
                           file: visited.first ?? directory)
        }
        let manifest = try DatasetManifest.load(directory: directory)
        guard manifest.computeContentId() == manifest.contentId else {
            throw EMCError(.format, "the manifest does not match its content id: it was edited after it was written "
                           + "(emc verify lists what differs; reconvert or remake the variant)", file: FileSystem.join(directory, DatasetManifest.fileName),
                           expected: String(manifest.contentId.prefix(12)), found: String(manifest.computeContentId().prefix(12)))
        }
        self.directory = directory
        self.manifest = manifest
        guard let variant = manifest.variant else {
            root = try ShardSet(directory: directory)
            inputTransforms = []
            labelOverlays = [:]
            chain = [directory]
            return
        }
        // Resolved as it is walked (`a/../b` made `/…/b`), so a long chain of relative bases never outgrows PATH_MAX.
        let basePath = FileSystem.canonicalPath(variant.base.hasPrefix("/") ? variant.base : FileSystem.join(directory, variant.base))
        let base: DatasetView
        do {
            base = try DatasetView(directory: basePath, visited: visited + [here])
        } catch let error as EMCError where error.kind == .missing {
            throw EMCError(.missing, "this variant's base set is missing at \(basePath) (moved or deleted?): \(error)", file: directory)
        }
        guard base.manifest.contentId == variant.baseContentId else {
            throw EMCError(.format, "this variant's base set has changed since the variant was made; remake the variant with emc perturb",
                           file: directory, expected: "base content id \(variant.baseContentId.prefix(12))",
                           found: String(base.manifest.contentId.prefix(12)))
        }
        root = base.root
        var overlays = base.labelOverlays
        for (split, info) in variant.labelFiles {
            overlays[split] = try LabelOverlay.read(path: FileSystem.join(directory, info.file), expected: info)
        }
        labelOverlays = overlays
        inputTransforms = try base.inputTransforms + variant.inputTransforms.map {
            try PreparedInputTransform(InputTransform(parsing: $0), schema: manifest.schema,
                                       mean: base.manifest.statistics.mean, std: base.manifest.statistics.std)
        }
        chain = [directory] + base.chain
    }

    public var schema: SampleSchema { manifest.schema }
    public var classes: ClassInfo { manifest.classes }
    public var splitNames: [String] { manifest.splitNames }

    /// One split, read through the chain.
    public func split(_ name: String, cacheChunks: Int = 64) throws -> SplitView {
        SplitView(reader: try root.split(name, cacheChunks: cacheChunks), labels: labelOverlays[name], transforms: inputTransforms)
    }
}

/// One split of a `DatasetView`: samples by position, with overlaid labels and transformed inputs.
public final class SplitView {
    public let reader: SplitReader
    public let labels: [UInt32]?
    public let transforms: [PreparedInputTransform]
    private var scratch: [UInt8]

    init(reader: SplitReader, labels: [UInt32]?, transforms: [PreparedInputTransform]) {
        self.reader = reader
        self.labels = labels
        self.transforms = transforms
        scratch = [UInt8](repeating: 0, count: reader.schema.sampleBytes)
    }

    public var count: Int { reader.count }
    public var schema: SampleSchema { reader.schema }

    /// Copies sample p (transformed) into `destination` and returns its label (overlaid).
    @discardableResult
    public func read(_ p: Int, into destination: UnsafeMutableRawBufferPointer) throws -> UInt32 {
        let (s, c, o) = reader.locate(p)
        guard p >= 0 && p < count else { return try reader.read(p, into: destination) }  // the reader's range error
        let chunk = try reader.chunk(shard: s, chunk: c)
        let sb = schema.sampleBytes
        chunk.raw.withUnsafeBytes { destination.baseAddress!.copyMemory(from: $0.baseAddress! + o * sb, byteCount: sb) }
        if !transforms.isEmpty {
            let index = chunk.originalIndex(o)
            scratch.withUnsafeMutableBytes { scratch in
                for t in transforms { t.apply(destination, index: index, scratch: scratch) }
            }
        }
        return labels?[p] ?? chunk.label(o)
    }

    /// All labels in position order.
    public func allLabels() throws -> [UInt32] { try labels ?? reader.allLabels() }
}
