import EMCCore

/// What `emc verify` found: every damaged shard, chunk and sample range, not just the first.
public struct VerificationReport: Sendable, Encodable {
    public struct Problem: Sendable, Encodable, Equatable {
        public var split: String?
        public var file: String?
        public var chunk: Int?
        public var samples: String?
        public var message: String
    }

    public var directory: String
    public var shardsChecked = 0
    public var chunksChecked = 0
    public var samplesChecked = 0
    public var bytesChecked = 0
    public var problems: [Problem] = []
    public var ok: Bool { problems.isEmpty }
}

/// Reads every chunk of every shard and checks every checksum and count against the manifest.
public enum ShardSetVerifier {
    public static func verify(directory: String, progress: ProgressReporter? = nil) -> VerificationReport {
        var report = VerificationReport(directory: directory)
        let manifest: DatasetManifest
        do { manifest = try DatasetManifest.load(directory: directory) } catch {
            report.problems.append(.init(message: "\(error)"))
            return report
        }
        let stats = manifest.statistics, width = manifest.schema.statisticsWidth
        if !(stats.mean.isEmpty && stats.std.isEmpty) && (stats.mean.count != width || stats.std.count != width
            || zip(stats.mean, stats.std).contains { !$0.isFinite || !$1.isFinite || $1 < 0 }) {
            report.problems.append(.init(file: DatasetManifest.fileName,
                                         message: "statistics are damaged: \(width) finite means and stds ≥ 0 expected, found mean \(stats.mean) std \(stats.std)"))
        }
        if let variant = manifest.variant {
            return verifyVariant(directory: directory, manifest: manifest, variant: variant, report: report, progress: progress)
        }
        if manifest.computeContentId() != manifest.contentId {
            report.problems.append(.init(file: DatasetManifest.fileName, message: "content id does not match the shards the manifest lists (the manifest was edited?)"))
        }
        guard let decoder = try? ChunkDecoder() else {
            report.problems.append(.init(message: "cannot create a zstd context"))
            return report
        }
        for split in manifest.splitNames {
            let info = manifest.splits[split]!
            var total = 0
            for shard in info.shards {
                let path = FileSystem.join(directory, shard.file)
                func problem(_ message: String, chunk: Int? = nil, samples: Range<Int>? = nil) {
                    report.problems.append(.init(split: split, file: shard.file, chunk: chunk,
                                                 samples: samples.map { "\($0.lowerBound)..<\($0.upperBound)" }, message: message))
                }
                total += shard.samples
                report.shardsChecked += 1
                let reader: ShardReader
                do { reader = try ShardReader(path: path) } catch let error as EMCError {
                    var e = error
                    e.file = nil
                    problem("\(e)", chunk: chunkOf(e.place), samples: samplesOf(e.place))
                    progress?.advance(by: shard.samples)
                    continue
                } catch { problem("\(error)"); continue }
                if reader.fileSize != shard.bytes { problem("file is \(reader.fileSize) bytes, the manifest says \(shard.bytes)") }
                if reader.sampleCount != shard.samples { problem("holds \(reader.sampleCount) samples, the manifest says \(shard.samples)") }
                // Readers locate samples by the manifest's layout: it must be the shards' own.
                if reader.header.chunkSamples != info.chunkSamples {
                    problem("has \(reader.header.chunkSamples) samples per chunk, the manifest says \(info.chunkSamples)")
                }
                if shard.file != info.shards.last?.file && reader.sampleCount != info.samplesPerShard {
                    problem("holds \(reader.sampleCount) samples, but every shard before the last must hold the manifest's \(info.samplesPerShard)")
                }
                if shard.file == info.shards.last?.file && reader.sampleCount > info.samplesPerShard {
                    problem("holds \(reader.sampleCount) samples, more than the manifest's samplesPerShard (\(info.samplesPerShard)) that readers locate samples by")
                }
                if let crc = try? reader.wholeFileCRC(), hex32(crc) != shard.crc32c {
                    problem("whole-file CRC32C is \(hex32(crc)), the manifest says \(shard.crc32c)")
                }
                report.bytesChecked += reader.fileSize
                for k in reader.entries.indices {
                    let e = reader.entries[k]
                    do {
                        let chunk = try reader.readChunk(k, decoder: decoder)
                        if let bad = (0..<chunk.count).first(where: { Int(chunk.label($0)) >= manifest.classes.count }) {
                            problem("label \(chunk.label(bad)) is out of range for \(manifest.classes.count) classes (sample \(e.firstSample + bad))",
                                    chunk: k, samples: e.samples)
                        }
                    } catch let error as EMCError {
                        problem(error.message + (error.expected.map { " (expected \($0), found \(error.found ?? "?"))" } ?? ""), chunk: k, samples: e.samples)
                    } catch { problem("\(error)", chunk: k, samples: e.samples) }
                    report.chunksChecked += 1
                    report.samplesChecked += e.count
                    progress?.advance(by: e.count)
                }
            }
            if total != info.samples {
                report.problems.append(.init(split: split, message: "shards hold \(total) samples, the manifest says \(info.samples)"))
            }
        }
        return report
    }

    /// A variant: its label files, its base's identity, and the base itself.
    static func verifyVariant(directory: String, manifest: DatasetManifest, variant: VariantInfo, report: VerificationReport,
                              progress: ProgressReporter?) -> VerificationReport {
        var report = report
        if manifest.computeContentId() != manifest.contentId {
            report.problems.append(.init(file: DatasetManifest.fileName, message: "content id does not match the variant's overlays (the manifest was edited?)"))
        }
        for (split, info) in variant.labelFiles.sorted(by: { $0.key < $1.key }) {
            do { _ = try LabelOverlay.read(path: FileSystem.join(directory, info.file), expected: info) } catch {
                report.problems.append(.init(split: split, file: info.file, message: "\(error)"))
            }
        }
        let basePath = variant.base.hasPrefix("/") ? variant.base : FileSystem.join(directory, variant.base)
        if let base = try? DatasetManifest.load(directory: basePath), base.contentId != variant.baseContentId {
            report.problems.append(.init(message: "the base set at \(basePath) has changed since this variant was made"))
        }
        let baseReport = verify(directory: basePath, progress: progress)
        report.shardsChecked += baseReport.shardsChecked
        report.chunksChecked += baseReport.chunksChecked
        report.samplesChecked += baseReport.samplesChecked
        report.bytesChecked += baseReport.bytesChecked
        report.problems += baseReport.problems.map { var p = $0; p.message = "base \(variant.base): " + p.message; return p }
        return report
    }

    private static func chunkOf(_ place: Place?) -> Int? {
        if case .chunk(let c, _)? = place { return c }
        return nil
    }

    private static func samplesOf(_ place: Place?) -> Range<Int>? {
        if case .chunk(_, let s)? = place { return s }
        return nil
    }
}
