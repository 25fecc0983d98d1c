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
    public var resize = "center-crop"
    public var skipBad = false
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

/// Wires a decoder to the shard writer: checks the sources, decodes each split, writes the set.
public enum Converter {
    public static func run(_ request: ConvertRequest, quiet: Bool = false, log: (String) -> Void = { _ in }) throws -> ConvertResult {
        let start = Clock.now()
        let def = request.dataset
        var warnings: [String] = []
        if def.decoder == "npz" {
            return try NPZConversion.run(request, options: def.npz ?? NPZ.Options(), quiet: quiet)
        }
        if def.decoder == "csv" {
            guard let table = def.table else { throw EMCError(.format, "a csv definition needs a \"table\" schema") }
            return try TabularConversion.run(request, schema: table, quiet: quiet, log: log)
        }
        if def.decoder == "image-folder" {
            let layout = def.imageFolder ?? DatasetDefinition.ImageFolderLayout(train: ".", test: nil, testLabels: nil, classNames: nil, size: 64)
            guard let mode = Resize.Mode(rawValue: request.resize) else {
                throw EMCError(.invalidArgument, "--resize must be center-crop or stretch, not '\(request.resize)'")
            }
            let size = request.imageSize ?? layout.size
            guard size >= 1 && size <= 1024 else { throw EMCError(.invalidArgument, "--size must be 1...1024, got \(size)") }
            return try ImageFolderConversion.run(request, layout: layout, options: .init(size: size, mode: mode, skipBad: request.skipBad, maxPixels: request.maxPixels),
                                                 quiet: quiet, log: log)
        }

        // 1. Find the raw files, decode them and check them against the published checksums. The raw
        //    files' MD5s are computed beside the decode; decoders report their content's MD5 on the way.
        let inputs = try locateInputs(def, raw: request.raw)
        let rawMD5s = ResultSlots<String>(inputs.checked.count)
        let decodedSlot = ResultSlots<Decoded>(1)
        try parallelFor(inputs.checked.count + 1, threads: EMCEnvironment.cpuCount) { i in
            if i == 0 { decodedSlot.set(0, try decode(def, inputs: inputs)) } else { rawMD5s.set(i - 1, try MD5.hex(file: inputs.checked[i - 1])) }
        }
        let decoded = decodedSlot.get(0)!
        var checks: [SourceCheck] = []
        for (i, path) in inputs.checked.enumerated() {
            let name = FileSystem.baseName(path)
            let check = SourceChecks.check(path: path, md5: rawMD5s.get(i)!, published: def.published(name) ?? def.published(name + ".gz"),
                                           contentMD5: decoded.contentMD5[path])
            checks.append(check)
            if check.status == .mismatch {
                let text = "\(path): MD5 \(check.md5) does not match the published \(check.expected ?? "?") (a different or damaged file)"
                if request.strict { throw EMCError(.checksum, "MD5 \(check.md5) does not match the published checksum", file: path, expected: check.expected, found: check.md5) }
                warnings.append(text)
                log("warning: " + text)
            }
        }

        for (split, expected) in def.expectedSamples ?? [:] {
            if let got = decoded.splits[split]?.count, got != expected {
                let text = "split '\(split)' has \(got) samples; \(def.name) should have \(expected)"
                if request.strict { throw EMCError(.format, text, file: request.raw) }
                warnings.append(text)
                log("warning: " + text)
            }
        }
        guard let schema = decoded.splits.values.first?.schema else { throw EMCError(.missing, "no splits decoded", file: request.raw) }

        // 3. Write, resuming or skipping when the same conversion was (partly) done before.
        let writer = try ShardSetWriter(directory: request.out, name: def.name, schema: schema, classes: decoded.classes,
                                        options: request.options, decoder: def.decoder, sources: checks.map(\.source))
        if let done = try finishedEarlier(request, writer: writer) {
            return summary(done, request: request, checks: checks, warnings: warnings, reused: done.splits.values.reduce(0) { $0 + $1.shards.count },
                           already: true, seconds: Clock.now() - start)
        }
        let total = decoded.splits.values.reduce(0) { $0 + $1.count }
        let progress = ProgressReporter("convert \(def.name)", total: total, unit: "samples", quiet: quiet)
        for split in decoded.splits.keys.sorted(by: { ($0 == "train" ? 0 : 1, $0) < ($1 == "train" ? 0 : 1, $1) }) {
            try writer.write(split: split, samples: decoded.splits[split]!, progress: progress)
        }
        let manifest = try writer.finish()
        progress.finish()
        return summary(manifest, request: request, checks: checks, warnings: warnings, reused: writer.reusedShards, already: false, seconds: Clock.now() - start)
    }

    struct Inputs {
        /// Split → resolved paths (IDX: images, labels).
        var splits: [String: [String]]
        /// Files whose checksums are checked (CIFAR: the archive).
        var checked: [String]
        /// CIFAR: the archive or folder.
        var source: String
    }

    static func locateInputs(_ def: DatasetDefinition, raw: String) throws -> Inputs {
        switch def.decoder {
        case "idx":
            guard FileSystem.isDirectory(raw) else {
                throw EMCError(.missing, FileSystem.exists(raw) ? "expected a folder holding the IDX files, got a file" : "no such folder", file: raw)
            }
            var splits: [String: [String]] = [:]
            for (split, names) in def.splits {
                splits[split] = try names.map { name in
                    let stem = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
                    for candidate in [name, stem, stem + ".gz"] where FileSystem.exists(FileSystem.join(raw, candidate)) {
                        return FileSystem.join(raw, candidate)
                    }
                    throw EMCError(.missing, "split '\(split)' needs \(name) (or \(stem)), which is not in this folder", file: raw)
                }
            }
            return Inputs(splits: splits, checked: splits.keys.sorted().flatMap { splits[$0]! }, source: raw)
        case "cifar10", "cifar100":
            if FileSystem.isDirectory(raw), let archive = def.archive, FileSystem.exists(FileSystem.join(raw, archive)) {
                return Inputs(splits: def.splits, checked: [FileSystem.join(raw, archive)], source: FileSystem.join(raw, archive))
            }
            guard FileSystem.exists(raw) else { throw EMCError(.missing, "no such file or folder", file: raw) }
            return Inputs(splits: def.splits, checked: FileSystem.isDirectory(raw) ? [] : [raw], source: raw)
        default:
            throw EMCError(.unsupported, "decoder '\(def.decoder)' is not one emc knows (idx, cifar10, cifar100, image-folder, csv, npz)")
        }
    }

    struct Decoded: Sendable {
        var splits: [String: LabeledSamples]
        var classes: ClassInfo
        /// Path → MD5 of its decompressed content, where the decoder computed it.
        var contentMD5: [String: String] = [:]
    }

    static func decode(_ def: DatasetDefinition, inputs: Inputs) throws -> Decoded {
        switch def.decoder {
        case "idx":
            let names = inputs.splits.keys.sorted()
            let results = ResultSlots<(samples: LabeledSamples, imagesMD5: String, labelsMD5: String)>(names.count)
            for (i, name) in names.enumerated() {
                let files = inputs.splits[name]!
                guard files.count == 2 else { throw EMCError(.format, "an IDX split needs [images, labels], got \(files)") }
                results.set(i, try IDX.loadWithChecksums(images: files[0], labels: files[1]))
            }
            var decoded = Decoded(splits: [:], classes: ClassInfo(count: def.classes.count, names: def.classes))
            for (i, name) in names.enumerated() {
                let r = results.get(i)!
                decoded.splits[name] = r.samples
                decoded.contentMD5[inputs.splits[name]![0]] = r.imagesMD5
                decoded.contentMD5[inputs.splits[name]![1]] = r.labelsMD5
            }
            return decoded
        default:
            let variant: CIFAR.Variant = def.decoder == "cifar10" ? .cifar10 : .cifar100
            let decoded = try CIFAR.decode(source: inputs.source, variant: variant, files: inputs.splits, nameFiles: def.classNameFiles ?? [],
                                             defaultNames: def.classes)
            return Decoded(splits: decoded.splits, classes: decoded.classes)
        }
    }

    /// The manifest already in `out` when it records this very conversion (nothing to do). A different set
    /// there is an error unless `--force`, which removes it.
    static func finishedEarlier(_ request: ConvertRequest, writer: ShardSetWriter) throws -> DatasetManifest? {
        guard let existing = try? DatasetManifest.load(directory: request.out) else { return nil }
        if existing.provenance.options["runKey"] == writer.key { return existing }
        guard request.force else {
            throw EMCError(.invalidArgument, "\(request.out) already holds a different shard set (\(existing.name)); pass --force to replace it, or choose another --out")
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
