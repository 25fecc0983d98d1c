import EMCCore
import EMCFormats
import EMCShards
import Foundation

/// What `emc convert` is asked to do.
public struct ConvertRequest: Sendable {
    public var dataset: DatasetDefinition
    public var raw: String
    public var out: String
    public var options: ShardSetOptions
    /// Fail (instead of warn) when a source file does not match its published checksum.
    public var strict = false
    /// Replace a different shard set already in `out`.
    public var force = false
    /// Image folders: output side (default: the definition's), resize mode, and whether undecodable files are skipped.
    public var imageSize: Int?
    public var resize = Resize.Mode.centerCrop
    public var skipBad = false
    /// NPZ without class names: the class count, when the labels alone do not make it plausible.
    public var classes: Int?
    /// Image folders: images above this many pixels are refused (a few KB of PNG can declare gigapixels).
    public var maxPixels = RasterImage.defaultMaxPixels
    /// NPZ: sets up to this many decoded bytes are shuffled globally in memory; larger ones stream (default: a quarter of RAM).
    public var memoryBudget = EMCEnvironment.physicalMemory / 4

    public init(dataset: DatasetDefinition, raw: String, out: String, options: ShardSetOptions) {
        self.dataset = dataset
        self.raw = raw
        self.out = out
        self.options = options
    }
}

/// What a conversion did, for the summary line and `--json`.
public struct ConvertResult: Sendable, Encodable {
    public struct Split: Sendable, Encodable {
        public var name: String
        public var samples: Int
        public var shards: Int
        public var bytes: Int
        public var rawBytes: Int
        public var ratio: Double
    }

    public var dataset: String
    public var out: String
    public var contentId: String
    public var codec: String
    public var splits: [Split]
    public var checks: [SourceCheck]
    public var warnings: [String]
    public var reusedShards: Int
    public var alreadyConverted: Bool
    public var seconds: Double
}

/// The one conversion driver: opens the definition's source, checks its files, then writes the set (or finds it
/// already written, or resumes it). Each decoder only provides a `ConversionSource`.
public enum Converter {
    public static func run(_ request: ConvertRequest, quiet: Bool = false, log: (String) -> Void = { _ in }) throws -> ConvertResult {
        let start = Clock.now()
        let def = request.dataset
        let source: ConversionSource
        switch def.decoder {
        case .idx, .cifar10, .cifar100: source = try InMemorySource(request)
        case .imageFolder: source = try ImageFolderSource(request, log: log)
        case .npz: source = try NPZSource(request)
        case .csv: source = try TabularSource(request)
        case .csvImage: source = try CSVImageSource(request)
        }
        var warnings = source.warnings
        func problem(_ text: String, _ error: EMCError) throws {
            if request.strict { throw error }
            warnings.append(text)
            log("warning: " + text)
        }
        for check in source.checks where check.status == .mismatch {
            try problem("\(check.file): MD5 \(check.md5) does not match the published \(check.expected ?? "?") (a different or damaged file)",
                        EMCError(.checksum, "MD5 \(check.md5) does not match the published checksum", file: check.file, expected: check.expected, found: check.md5))
        }
        for split in source.splits {
            if let expected = def.expectedSamples?[split.name], split.count != expected {
                let text = "split '\(split.name)' has \(split.count) samples; \(def.name) should have \(expected)"
                try problem(text, EMCError(.format, text, file: request.raw))
            }
        }

        // Write, resuming or skipping when the same conversion was (partly) done before.
        var options = request.options
        options.codec = options.codec ?? source.codecSample.map { sample in
            sample.withUnsafeBytes { CodecSpec.automatic(for: source.schema, sample: $0) }
        } ?? CodecSpec.automatic(for: source.schema, sample: nil)
        let writer = try ShardSetWriter(directory: request.out, name: def.name, schema: source.schema, classes: source.classes, options: options,
                                        decoder: def.decoder.rawValue, sources: source.checks.map(\.source), extraOptions: source.recordedOptions)
        if let done = try finishedEarlier(request, writer: writer) {
            return summary(done, request: request, checks: source.checks, warnings: warnings, reused: done.splits.values.reduce(0) { $0 + $1.shards.count },
                           already: true, seconds: Clock.now() - start)
        }
        let progress = ProgressReporter("convert \(def.name)", total: source.splits.reduce(0) { $0 + $1.count }, unit: source.unit, quiet: quiet)
        for split in source.splits {
            switch split {
            case .inMemory(let name, let samples):
                try writer.write(split: name, samples: samples, progress: progress)
            case .streamed(let s):
                let order = writer.order(split: s.name, count: s.count)
                try writer.write(split: s.name, count: s.count, progress: progress, shuffled: s.shuffled) { try s.fill(order, $0, $1, $2, $3) }
                if s.name == "train", let statistics = s.statistics() { writer.setStatistics(statistics) }
            }
        }
        let manifest = try writer.finish(skipped: source.skipped)
        progress.finish()
        return summary(manifest, request: request, checks: source.checks, warnings: warnings, reused: writer.reusedShards, already: false,
                       seconds: Clock.now() - start)
    }

    /// The manifest already in `out` when it records this very conversion (nothing to do). A different set
    /// there is an error unless `--force`, which removes it.
    static func finishedEarlier(_ request: ConvertRequest, writer: ShardSetWriter) throws -> DatasetManifest? {
        guard let existing = try? DatasetManifest.load(directory: request.out) else { return nil }
        if existing.provenance.runKey == writer.key { return existing }
        guard request.force else {
            throw EMCError(.invalidArgument, "already holds a different shard set (\(existing.name))", file: request.out, remedy: .replaceOutput)
        }
        ShardSetFiles.remove(request.out, manifest: existing)
        return nil
    }

    static func summary(_ m: DatasetManifest, request: ConvertRequest, checks: [SourceCheck], warnings: [String], reused: Int,
                        already: Bool, seconds: Double) -> ConvertResult {
        let splits = m.splitNames.map { name -> ConvertResult.Split in
            let s = m.splits[name]!
            let bytes = s.shards.reduce(0) { $0 + $1.bytes }
            let raw = s.samples * (m.schema.sampleBytes + 4)
            return .init(name: name, samples: s.samples, shards: s.shards.count, bytes: bytes, rawBytes: raw,
                         ratio: bytes > 0 ? Double(raw) / Double(bytes) : 0)
        }
        return ConvertResult(dataset: m.name, out: request.out, contentId: m.contentId, codec: m.provenance.codec, splits: splits,
                             checks: checks, warnings: warnings, reusedShards: reused, alreadyConverted: already, seconds: seconds)
    }
}
