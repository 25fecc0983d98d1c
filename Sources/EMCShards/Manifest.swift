import EMCCore
import Foundation

/// `dataset.json`: what a shard set holds and where it came from (docs/shard-format.md, "The manifest").
public struct DatasetManifest: Codable, Sendable, Equatable {
    public var format = "emc-shards"
    public var formatVersion = 1
    public var name: String
    public var schema: SampleSchema
    public var classes: ClassInfo
    public var splits: [String: SplitManifest]
    public var statistics: ChannelStatistics
    public var provenance: Provenance
    public var contentId: String
    /// Present when this set is an overlay on another (a perturbed variant): its shards are the base's.
    public var variant: VariantInfo?

    public init(name: String, schema: SampleSchema, classes: ClassInfo, splits: [String: SplitManifest],
                statistics: ChannelStatistics, provenance: Provenance, variant: VariantInfo? = nil) {
        self.variant = variant
        self.name = name
        self.schema = schema
        self.classes = classes
        self.splits = splits
        self.statistics = statistics
        self.provenance = provenance
        self.contentId = ""
        self.contentId = computeContentId()
    }

    public static let fileName = "dataset.json"

    /// Split names in a stable order: train, test, then the rest alphabetically.
    public var splitNames: [String] {
        splits.keys.sorted { a, b in
            let rank = ["train": 0, "test": 1]
            return (rank[a] ?? 2, a) < (rank[b] ?? 2, b)
        }
    }

    /// SHA-256 over the schema, class count and every shard's name, count and checksum; for a variant,
    /// over its base's content id, its transforms and its label files.
    public func computeContentId() -> String {
        if let v = variant {
            var text = "emc-variant/1\nbase:\(v.baseContentId)\nclasses:\(classes.count)\n"
            text += "labels:\(v.labelTransform ?? "-")\n"
            for t in v.inputTransforms { text += "inputs:\(t)\n" }
            for split in v.labelFiles.keys.sorted() { text += "\(split)/\(v.labelFiles[split]!.file):\(v.labelFiles[split]!.crc32c)\n" }
            return SHA256.hex(text)
        }
        var text = "emc-shards/1\n"
        text += "schema:\(schema.kind.rawValue),\(schema.height),\(schema.width),\(schema.channels),\(schema.features)\n"
        text += "classes:\(classes.count)\n"
        for split in splits.keys.sorted() {
            for shard in splits[split]!.shards { text += "\(split)/\(shard.file):\(shard.samples):\(shard.crc32c)\n" }
        }
        return SHA256.hex(text)
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    /// Reads and checks `dataset.json` in `directory`.
    public static func load(directory: String) throws -> DatasetManifest {
        let path = FileSystem.join(directory, fileName)
        guard FileSystem.exists(path) else {
            if FileSystem.isDirectory(directory) {
                throw EMCError(.missing, "no \(fileName) here: not a shard set, or its conversion did not finish (rerun emc convert)", file: directory)
            }
            throw EMCError(.missing, "no such shard set folder", file: directory)
        }
        let bytes = try ReadableFile.contents(of: path)
        let manifest: DatasetManifest
        do {
            manifest = try JSONDecoder().decode(DatasetManifest.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw EMCError(.format, "manifest is not valid: \(describe(error))", file: path)
        }
        guard manifest.format == "emc-shards" else { throw EMCError(.format, "not an emc shard set manifest", file: path, found: manifest.format) }
        guard manifest.formatVersion == 1 else { throw EMCError(.unsupported, "manifest format version \(manifest.formatVersion)", file: path) }
        try EMCError.locating(file: path) { try manifest.schema.validate() }
        try manifest.validateNumbers(path: path)
        return manifest
    }

    /// A split's name: lowercase letters, digits and underscores (it becomes part of file names: `train-00000.emcs`,
    /// `labels-train.emcl`).
    public static func isSplitName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }

    /// Counts and sizes a reader will allocate by: non-negative, consistent and within sane bounds; split names as the
    /// writer makes them.
    func validateNumbers(path: String) throws {
        for name in splits.keys where !Self.isSplitName(name) {
            throw EMCError(.format, "split name \(name.debugDescription) is not valid (lowercase letters, digits and underscores)",
                           file: path, place: .field("splits"))
        }
        guard classes.count >= 1 && classes.count <= 1 << 24 else {
            throw EMCError(.format, "class count \(classes.count) is not usable", file: path, place: .field("classes.count"))
        }
        for (name, split) in splits {
            let field = Place.field("splits.\(name)")
            guard split.samples >= 0, split.samples <= 1 << 40, split.samplesPerShard > 0, split.chunkSamples > 0,
                  split.chunkSamples <= split.samplesPerShard, split.chunkSamples * (schema.sampleBytes + 12) <= 1 << 30 else {
                throw EMCError(.format, "split '\(name)' has impossible sizes (samples \(split.samples), per shard \(split.samplesPerShard), per chunk \(split.chunkSamples))",
                               file: path, place: field)
            }
            for shard in split.shards where shard.samples < 0 || shard.bytes < 0 || !FileSystem.isPlainName(shard.file) {
                throw EMCError(.format, "shard entry \(shard.file.debugDescription) is not valid (a plain file name with non-negative sizes)", file: path, place: field)
            }
        }
        for (split, label) in variant?.labelFiles ?? [:] where !FileSystem.isPlainName(label.file) || label.samples < 0 || label.bytes < 0 {
            throw EMCError(.format, "label file entry \(label.file.debugDescription) is not valid (a plain file name inside the variant's folder, with non-negative sizes)",
                           file: path, place: .field("variant.labelFiles.\(split)"))
        }
    }

    public func write(directory: String) throws {
        try AtomicFileWriter.write(try encoded(), to: FileSystem.join(directory, DatasetManifest.fileName))
    }
}

/// How a variant derives from its base (docs/shard-format.md, "Variants").
public struct VariantInfo: Codable, Sendable, Equatable {
    /// The base set's folder, relative to this variant's folder.
    public var base: String
    /// The base's content id when the variant was made; reading checks it.
    public var baseContentId: String
    /// The label transform, or nil.
    public var labelTransform: String?
    /// Split → the file holding its new labels (in split position order).
    public var labelFiles: [String: LabelFileInfo]
    /// Input transforms applied on read, after the base's own.
    public var inputTransforms: [String]

    public init(base: String, baseContentId: String, labelTransform: String?, labelFiles: [String: LabelFileInfo], inputTransforms: [String]) {
        self.base = base
        self.baseContentId = baseContentId
        self.labelTransform = labelTransform
        self.labelFiles = labelFiles
        self.inputTransforms = inputTransforms
    }
}

/// A label overlay file as the manifest lists it: the same fields as a shard file's entry.
public typealias LabelFileInfo = ShardFileInfo

/// One split's shards.
public struct SplitManifest: Codable, Sendable, Equatable {
    public var samples: Int
    public var samplesPerShard: Int
    public var chunkSamples: Int
    public var shuffled: Bool
    public var shards: [ShardFileInfo]

    public init(samples: Int, samplesPerShard: Int, chunkSamples: Int, shuffled: Bool, shards: [ShardFileInfo]) {
        self.samples = samples
        self.samplesPerShard = samplesPerShard
        self.chunkSamples = chunkSamples
        self.shuffled = shuffled
        self.shards = shards
    }
}

/// One shard file (or label overlay file) as the manifest lists it.
public struct ShardFileInfo: Codable, Sendable, Equatable {
    public var file: String
    public var samples: Int
    public var bytes: Int
    /// CRC32C of the whole file, 8 lowercase hex digits.
    public var crc32c: String

    public init(file: String, samples: Int, bytes: Int, crc32c: String) {
        self.file = file
        self.samples = samples
        self.bytes = bytes
        self.crc32c = crc32c
    }
}

/// Per-channel (images) or per-feature (tabular) mean and standard deviation of the train split.
public struct ChannelStatistics: Codable, Sendable, Equatable {
    public var mean: [Double]
    public var std: [Double]

    public init(mean: [Double], std: [Double]) {
        self.mean = mean
        self.std = std
    }
}

/// Where a shard set came from.
public struct Provenance: Codable, Sendable, Equatable {
    public var decoder: String
    public var tool: String
    public var shuffleSeed: UInt64
    public var codec: String
    public var options: [String: String]
    public var sources: [SourceFile]
    public var skipped: [String]

    /// The key of the conversion that wrote the set (equal keys give byte-identical sets), recorded in `options`.
    public var runKey: String? {
        get { options[Provenance.runKeyOption] }
        set { options[Provenance.runKeyOption] = newValue }
    }
    static let runKeyOption = "runKey"

    public init(decoder: String, shuffleSeed: UInt64, codec: String, options: [String: String], sources: [SourceFile], skipped: [String] = []) {
        self.decoder = decoder
        self.tool = "emc \(EMCEnvironment.version)"
        self.shuffleSeed = shuffleSeed
        self.codec = codec
        self.options = options
        self.sources = sources
        self.skipped = skipped
    }
}

/// A raw input file with its checksum.
public struct SourceFile: Codable, Sendable, Equatable {
    public var file: String
    public var bytes: Int
    public var md5: String

    public init(file: String, bytes: Int, md5: String) {
        self.file = file
        self.bytes = bytes
        self.md5 = md5
    }
}

func describe(_ error: DecodingError) -> String {
    func path(_ context: DecodingError.Context) -> String {
        context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
    }
    switch error {
    case .keyNotFound(let key, let c): return "missing key \(path(c)).\(key.stringValue)"
    case .typeMismatch(_, let c), .valueNotFound(_, let c): return "\(path(c)): \(c.debugDescription)"
    case .dataCorrupted(let c): return c.codingPath.isEmpty ? "not valid JSON (\(c.underlyingError.map { "\($0)" } ?? c.debugDescription))" : "\(path(c)): \(c.debugDescription)"
    @unknown default: return "\(error)"
    }
}

/// The files a shard set or variant consists of, for replacing one (`--force`).
public enum ShardSetFiles {
    /// Removes the shards, label files and manifest that `manifest` lists in `directory` (nothing else there).
    public static func remove(_ directory: String, manifest: DatasetManifest) {
        for split in manifest.splits.values { for shard in split.shards { FileSystem.remove(FileSystem.join(directory, shard.file)) } }
        for label in manifest.variant?.labelFiles.values.map(\.file) ?? [] { FileSystem.remove(FileSystem.join(directory, label)) }
        FileSystem.remove(FileSystem.join(directory, DatasetManifest.fileName))
    }
}
