import EMCCore
import EMCShards

/// What `emc inspect` shows: the manifest in words and a class histogram per split.
public struct Inspection: Sendable, Encodable {
    public struct Split: Sendable, Encodable {
        public var name: String
        public var samples: Int
        public var shards: Int
        public var chunks: Int
        public var bytes: Int
        public var shuffled: Bool
        public var classCounts: [Int]
    }

    public var name: String
    public var directory: String
    public var schema: SampleSchema
    public var classes: ClassInfo
    public var statistics: ChannelStatistics
    public var provenance: Provenance
    public var contentId: String
    public var variant: VariantInfo?
    public var splits: [Split]

    /// Reads the manifest and every split's labels (pixels are not decompressed). Works on variants too.
    public static func of(directory: String) throws -> Inspection {
        let set = try DatasetView(directory: directory)
        let m = set.manifest
        var splits: [Split] = []
        for name in m.splitNames {
            let view = try set.split(name)
            var counts = [Int](repeating: 0, count: m.classes.count)
            for label in try view.allLabels() where Int(label) < counts.count { counts[Int(label)] += 1 }
            let info = set.root.manifest.splits[name]!
            splits.append(Split(name: name, samples: info.samples, shards: info.shards.count,
                                chunks: view.reader.shards.reduce(0) { $0 + $1.entries.count },
                                bytes: info.shards.reduce(0) { $0 + $1.bytes }, shuffled: info.shuffled, classCounts: counts))
        }
        return Inspection(name: m.name, directory: directory, schema: m.schema, classes: m.classes, statistics: m.statistics,
                          provenance: m.provenance, contentId: m.contentId, variant: m.variant, splits: splits)
    }
}

/// A PNG contact sheet: one row per class, the first `perClass` samples of that class in the split,
/// so a person can see at a glance that images and labels belong together.
public enum ContactSheet {
    public static func make(directory: String, split: String = "train", perClass: Int = 12, maxClasses: Int = 100,
                            scale: Int = 2) throws -> RasterImage {
        guard (1...100).contains(perClass) else {
            throw EMCError(.invalidArgument, "a contact sheet shows 1 to 100 samples per class, not \(perClass)")
        }
        let set = try DatasetView(directory: directory)
        guard set.schema.kind == .image else {
            throw EMCError(.unsupported, "a contact sheet needs an image dataset; \(set.manifest.name) is tabular", file: directory)
        }
        let reader = try set.split(split)
        let classes = min(set.manifest.classes.count, maxClasses)
        let labels = try reader.allLabels()
        var picks = [[Int]](repeating: [], count: classes)
        for (p, label) in labels.enumerated() where Int(label) < classes && picks[Int(label)].count < perClass {
            picks[Int(label)].append(p)
        }
        let h = set.schema.height, w = set.schema.width, c = set.schema.channels
        let gap = 2
        let cellW = w * scale + gap, cellH = h * scale + gap
        var sheet = RasterImage(width: perClass * cellW + gap, height: classes * cellH + gap, channels: 3, fill: 40)
        var sample = [UInt8](repeating: 0, count: set.schema.sampleBytes)
        for (row, positions) in picks.enumerated() {
            for (col, p) in positions.enumerated() {
                _ = try sample.withUnsafeMutableBytes { try reader.read(p, into: $0) }
                for y in 0..<(h * scale) {
                    for x in 0..<(w * scale) {
                        let src = ((y / scale) * w + (x / scale)) * c
                        let dx = gap + col * cellW + x, dy = gap + row * cellH + y
                        for ch in 0..<3 { sheet[dx, dy, ch] = sample[src + (c == 1 ? 0 : min(ch, c - 1))] }
                    }
                }
            }
        }
        return sheet
    }
}
