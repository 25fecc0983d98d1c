import EMCCore
import EMCShards
import EMCTransforms
import Foundation

/// What `emc perturb` is asked to make.
public struct PerturbRequest: Sendable {
    public var base: String
    public var out: String
    public var labels: LabelTransform?
    /// Splits whose labels the label transform changes. nil: the train split only (the test split keeps its true
    /// labels), except for a transform that changes the label space (a merge, or random labels over another class
    /// count), which relabels every split: true labels of the old space mean nothing in the new one.
    public var labelSplits: [String]?
    /// Replace what is already in `out` (a shard set or variant); without it, a non-empty `out` is refused.
    public var force = false
    public var inputs: InputTransform?
    /// Write full shards instead of an overlay.
    public var materialize = false
    public var threads = EMCEnvironment.cpuCount

    public init(base: String, out: String, labels: LabelTransform? = nil, inputs: InputTransform? = nil) {
        self.base = base
        self.out = out
        self.labels = labels
        self.inputs = inputs
    }
}

/// Makes perturbed variants: an overlay (a manifest naming its base by relative path and content id,
/// plus compressed label columns for label transforms; input transforms are applied on read), or with
/// `materialize`, a full shard set holding the transformed samples.
public enum VariantBuilder {
    public static func make(_ request: PerturbRequest, progress: ProgressReporter? = nil) throws -> DatasetManifest {
        guard request.labels != nil || request.inputs != nil else {
            throw EMCError(.invalidArgument, "nothing to do: give a label transform (random labels, label noise or merged classes) or an input transform")
        }
        let base = try DatasetView(directory: request.base)
        guard request.materialize || base.chain.count < DatasetView.maxChainDepth else {
            throw EMCError(.unsupported, "the base's chain already holds \(base.chain.count) sets, the most a view resolves; "
                           + "materialize this variant (--materialize) to start a new chain", file: request.base)
        }
        let baseClasses = base.classes
        try checkOutput(request, base: base)
        var labelSplits = request.labelSplits ?? ["train"]
        if let labels = request.labels {
            try labels.validate(inputClasses: baseClasses.count, coarseOfFine: baseClasses.coarseOfFine)
            for split in labelSplits where base.manifest.splits[split] == nil {
                throw EMCError(.missing, "no split '\(split)' in \(request.base) (it has \(base.splitNames.joined(separator: ", ")))")
            }
            if labels.changesLabelSpace(inputClasses: baseClasses.count) {
                let all = base.splitNames
                if let chosen = request.labelSplits, Set(chosen) != Set(all) {
                    throw EMCError(.invalidArgument, "\(labels) changes the label space (\(baseClasses.count) → \(labels.outputClasses(input: baseClasses.count)) classes), "
                                   + "so every split must be relabelled; relabelling only \(chosen.joined(separator: ", ")) would leave "
                                   + "\(all.filter { !chosen.contains($0) }.joined(separator: ", ")) with labels of the old space", remedy: .chooseSplits)
                }
                labelSplits = all
            }
        }
        if let inputs = request.inputs {
            _ = try PreparedInputTransform(inputs, schema: base.schema, mean: base.manifest.statistics.mean, std: base.manifest.statistics.std)
        }
        try FileSystem.createDirectory(request.out)
        let classes = request.labels.map { outputClasses($0, base: baseClasses) } ?? baseClasses

        // New labels for the chosen splits, as a function of each sample's original index.
        var newLabels: [String: [UInt32]] = [:]
        if let transform = request.labels {
            let map = transform.mergeMap(inputClasses: baseClasses.count, coarseOfFine: baseClasses.coarseOfFine)
            for split in labelSplits {
                let view = try base.split(split)
                let labels = try view.allLabels()
                let indices = try view.reader.allOriginalIndices()
                newLabels[split] = zip(labels, indices).map { transform.apply(index: $1, label: $0, inputClasses: baseClasses.count, map: map) }
            }
        }
        let transformText = [request.labels?.description, request.inputs?.description].compactMap { $0 }.joined(separator: "; ")
        let name = base.manifest.name + "+" + [request.labels.map(shortName), request.inputs.map(shortName)].compactMap { $0 }.joined(separator: "+")
        if request.materialize {
            return try materialize(request, base: base, classes: classes, newLabels: newLabels, name: name, transformText: transformText, progress: progress)
        }
        var labelFiles: [String: LabelFileInfo] = [:]
        for (split, labels) in newLabels.sorted(by: { $0.key < $1.key }) {
            labelFiles[split] = try LabelOverlay.write(labels, to: FileSystem.join(request.out, "labels-\(split).emcl"))
        }
        let variant = VariantInfo(base: relativePath(from: request.out, to: request.base), baseContentId: base.manifest.contentId,
                                  labelTransform: request.labels?.description, labelFiles: labelFiles,
                                  inputTransforms: request.inputs.map { [$0.description] } ?? [])
        var splits = base.manifest.splits
        for key in splits.keys { splits[key]!.shards = [] }  // the shards are the base's
        let provenance = Provenance(decoder: "perturb", shuffleSeed: base.manifest.provenance.shuffleSeed, codec: base.manifest.provenance.codec,
                                    options: ["transform": transformText, "labelSplits": labelSplits.joined(separator: ",")],
                                    sources: [SourceFile(file: variant.base, bytes: 0, md5: "")])
        let manifest = DatasetManifest(name: name, schema: base.schema, classes: classes, splits: splits,
                                       statistics: base.manifest.statistics, provenance: provenance, variant: variant)
        try manifest.write(directory: request.out)
        return manifest
    }

    /// Refuses to write over anything in `out` without `force` (and always over the base or a set in its chain, which
    /// the variant reads); with `force`, removes the shard set or variant that is there.
    static func checkOutput(_ request: PerturbRequest, base: DatasetView) throws {
        let out = FileSystem.canonicalPath(request.out)
        if let owner = base.chain.first(where: { FileSystem.canonicalPath($0) == out }) {
            throw EMCError(.invalidArgument, "the output folder is \(owner == base.directory ? "the base set itself" : "a set the base is built on") "
                           + "(\(owner)); a variant needs a folder of its own", file: request.out, remedy: .otherOutput)
        }
        guard FileSystem.isDirectory(request.out), let existing = try? FileSystem.list(request.out), !existing.isEmpty else { return }
        // A materialized variant stopped part way (a kill, a full disk, a file-size limit) resumes, as a conversion does.
        if request.materialize && ShardSetWriter.isUnfinished(existing) { return }
        guard request.force else {
            throw EMCError(.invalidArgument, "the output folder is not empty (it holds \(existing.sorted().prefix(3).joined(separator: ", "))\(existing.count > 3 ? ", ..." : ""))",
                           file: request.out, remedy: .replaceOutput)
        }
        if let manifest = try? DatasetManifest.load(directory: request.out) {
            ShardSetFiles.remove(request.out, manifest: manifest)
        }
    }

    /// Writes the transformed samples as a shard set of their own, keeping positions and original indices.
    static func materialize(_ request: PerturbRequest, base: DatasetView, classes: ClassInfo, newLabels: [String: [UInt32]],
                            name: String, transformText: String, progress: ProgressReporter?) throws -> DatasetManifest {
        var options = ShardSetOptions(codec: try? CodecSpec(parsing: base.manifest.provenance.codec), seed: base.manifest.provenance.shuffleSeed, shuffle: false)
        if let chunk = base.manifest.provenance.options["chunkBytes"].flatMap(Int.init) { options.chunkBytes = chunk }
        if let shard = base.manifest.provenance.options["shardBytes"].flatMap(Int.init) { options.shardBytes = shard }
        options.threads = request.threads
        let writer = try ShardSetWriter(directory: request.out, name: name, schema: base.schema, classes: classes, options: options,
                                        decoder: "perturb (materialized)", sources: [SourceFile(file: request.base, bytes: 0, md5: base.manifest.contentId)],
                                        extraOptions: ["transform": transformText])
        writer.setCodec(options.codec ?? CodecSpec.automatic(for: base.schema, sample: nil))
        writer.setStatistics(base.manifest.statistics)
        let transform = try request.inputs.map {
            try PreparedInputTransform($0, schema: base.schema, mean: base.manifest.statistics.mean, std: base.manifest.statistics.std)
        }
        for split in base.splitNames {
            let count = base.manifest.splits[split]!.samples
            let labels = newLabels[split]
            let views = ObjectPool { try base.split(split, cacheChunks: 8) }
            let sb = base.schema.sampleBytes
            try writer.write(split: split, count: count, progress: progress, shuffled: base.manifest.splits[split]!.shuffled) { positions, data, outLabels, indices in
                var scratch = [UInt8](repeating: 0, count: sb)
                try views.with { view in
                    for (k, p) in positions.enumerated() {
                        let sample = UnsafeMutableRawBufferPointer(rebasing: data[(k * sb)..<((k + 1) * sb)])
                        let label = try view.read(p, into: sample)
                        let (s, c, o) = view.reader.locate(p)
                        let index = try view.reader.chunk(shard: s, chunk: c).originalIndex(o)
                        if let transform { scratch.withUnsafeMutableBytes { transform.apply(sample, index: index, scratch: $0) } }
                        outLabels[k] = (labels?[p] ?? label).littleEndian
                        indices[k] = index.littleEndian
                    }
                }
            }
        }
        return try writer.finish()
    }

    static func outputClasses(_ transform: LabelTransform, base: ClassInfo) -> ClassInfo {
        let k = transform.outputClasses(input: base.count)
        switch transform {
        case .noise: return base
        case .random:
            // The same class count keeps the names: the test split's labels are still the true classes.
            return k == base.count ? base : ClassInfo(count: k, names: (0..<k).map { "random \($0)" })
        case .merge(_, let mode, _):
            if mode == .superclass, let coarse = base.coarseNames, coarse.count == k { return ClassInfo(count: k, names: coarse) }
            let map = transform.mergeMap(inputClasses: base.count, coarseOfFine: base.coarseOfFine) ?? []
            let names = (0..<k).map { group in (0..<base.count).filter { map[$0] == group }.map { base.name($0) }.joined(separator: "+") }
            return ClassInfo(count: k, names: names)
        }
    }

    static func shortName(_ t: LabelTransform) -> String {
        switch t {
        case .random: return "random-labels"
        case .noise(let p, _): return "noise\(p)"
        case .merge(let k, let mode, _): return "merge\(k)-\(mode.rawValue)"
        }
    }

    static func shortName(_ t: InputTransform) -> String {
        switch t {
        case .gaussian: return "gaussian"
        case .permute: return "permuted"
        case .permuteEach: return "permute-each"
        }
    }
}

/// The path of `target` relative to the folder `from` (both made absolute first).
public func relativePath(from: String, to target: String) -> String {
    let a = URL(fileURLWithPath: from).standardizedFileURL.resolvingSymlinksInPath().pathComponents
    let b = URL(fileURLWithPath: target).standardizedFileURL.resolvingSymlinksInPath().pathComponents
    var common = 0
    while common < min(a.count, b.count) && a[common] == b[common] { common += 1 }
    let ups = Array(repeating: "..", count: a.count - common)
    let rest = Array(b[common...])
    let parts = ups + rest
    return parts.isEmpty ? "." : parts.joined(separator: "/")
}
