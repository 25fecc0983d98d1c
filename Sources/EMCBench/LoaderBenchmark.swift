import EMCCore
import EMCPipeline
import EMCVariants
import EMCShards
import EMCTrainer
import Foundation

/// `emc bench loader`: float batches per second out of the pipeline, cached and streaming, beside the
/// ceiling measured in the same run: the same pixels read from one raw file in batch-sized blocks and
/// converted with the same lookup tables into the same batch buffer.
public enum LoaderBenchmark {
    public struct Row: Encodable, Sendable {
        var data: String
        var path: String
        var samplesPerSecond: Double
        var megabytesPerSecond: Double
        var ofCeiling: Double
    }

    public static func run(directory: String, repeats: Int, progress: (String) -> Void) throws -> [Row] {
        var rows: [Row] = []
        let cases: [(String, Int)] = [("28×28×1", 60_000), ("32×32×3", 50_000), ("128×128×3", 5_000)]
        for (name, count) in cases {
            progress("preparing \(count) samples of \(name)")
            let dir = FileSystem.join(directory, name.replacingOccurrences(of: "×", with: "x"))
            let samples: LabeledSamples
            switch name {
            case "28×28×1": samples = try ShardBenchmark.makeSamples(count: count, sparse: true, threads: EMCEnvironment.cpuCount)
            case "32×32×3": samples = try ShardBenchmark.makeSamples(count: count, sparse: false, threads: EMCEnvironment.cpuCount)
            default:
                let g = try SyntheticImages(size: 128, classes: 10, seed: 0)
                var data = [UInt8](repeating: 0, count: count * g.schema.sampleBytes)
                let sb = g.schema.sampleBytes
                try data.withUnsafeMutableBytes { out in
                    nonisolated(unsafe) let o = out
                    try parallelFor(count, threads: EMCEnvironment.cpuCount) { i in g.render(UInt64(i), into: UnsafeMutableRawBufferPointer(rebasing: o[(i * sb)..<((i + 1) * sb)])) }
                }
                samples = LabeledSamples(schema: g.schema, data: data, labels: (0..<count).map { g.label(UInt64($0)) })
            }
            var options = ShardSetOptions(codec: name == "28×28×1" ? .lz4 : .zstdDelta, seed: 0)
            options.threads = EMCEnvironment.cpuCount
            let writer = try ShardSetWriter(directory: dir, name: name, schema: samples.schema, classes: ClassInfo(count: 10, names: (0..<10).map { "\($0)" }),
                                            options: options, decoder: "bench", sources: [])
            try writer.write(split: "train", samples: samples)
            _ = try writer.finish()
            let sb = samples.schema.sampleBytes
            let megabytes = Double(count * sb) / 1e6
            let view = try DatasetView(directory: dir)
            let batch = 128
            let floats = UnsafeMutablePointer<Float>.allocate(capacity: batch * sb)
            let labels = UnsafeMutablePointer<Int32>.allocate(capacity: batch)
            defer { floats.deallocate(); labels.deallocate() }

            // Ceiling: one raw file, sequential batch reads, the same conversion.
            let rawPath = FileSystem.join(directory, "ceiling.raw")
            try AtomicFileWriter.write(samples.data, to: rawPath)
            let raw = try ReadableFile(path: rawPath)
            let probe = try Subset(view: view, count: count)  // for its converter
            var block = [UInt8](repeating: 0, count: batch * sb)
            let ceiling = try medianSeconds(repeats: repeats) {
                var p = 0
                while p < count {
                    let n = min(batch, count - p)
                    try block.withUnsafeMutableBytes { b in
                        try raw.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<(n * sb)]), at: p * sb)
                        for k in 0..<n { probe.convert(UnsafeRawBufferPointer(rebasing: b[(k * sb)..<((k + 1) * sb)]), into: floats + k * sb) }
                    }
                    p += n
                }
            }
            FileSystem.remove(rawPath)
            rows.append(Row(data: name, path: "raw file → floats (ceiling)", samplesPerSecond: Double(count) / ceiling,
                            megabytesPerSecond: megabytes / ceiling, ofCeiling: 1))
            for (label, budget, prefetch, threads) in [("cached, shuffled", Int.max, 0, 1), ("cached, shuffled, prefetch thread", Int.max, 4, 1),
                                                       ("streaming (chunk windows)", 0, 0, 1), ("streaming, 1 prefetch thread", 0, 4, 1),
                                                       ("streaming, 2 prefetch threads", 0, 8, 2)] {
                var subsetOptions = SubsetOptions(seed: 0)
                subsetOptions.memoryBudget = budget
                subsetOptions.prefetchBatches = prefetch
                subsetOptions.threads = threads
                let subset = try Subset(view: view, count: count, options: subsetOptions)
                var epoch = 0
                let time = try medianSeconds(repeats: repeats) {
                    let order = subset.order(epoch: epoch, seed: 0)
                    subset.beginEpoch(epoch, order: order, batchSize: batch)
                    try order.withUnsafeBufferPointer { o in
                        var start = 0
                        while start < count {
                            let n = min(batch, count - start)
                            try subset.loadBatch(UnsafeBufferPointer(rebasing: o[start..<(start + n)]), inputs: UnsafeMutableBufferPointer(start: floats, count: n * sb), labels: UnsafeMutableBufferPointer(start: labels, count: n))
                            start += n
                        }
                    }
                    epoch += 1
                }
                rows.append(Row(data: name, path: label, samplesPerSecond: Double(count) / time, megabytesPerSecond: megabytes / time,
                                ofCeiling: ceiling / time))
            }
            FileSystem.removeTree(dir)
        }
        return rows
    }
}

/// `emc bench read DIR`: stream a whole split once and report throughput and peak memory.
public enum ReadBenchmark {
    public struct Result: Encodable, Sendable { var samples: Int; var seconds: Double; var samplesPerSecond: Double; var megabytesPerSecond: Double; var peakRSS: Int }

    public static func run(directory: String, split: String) throws -> Result {
        let reader = try ShardSet(directory: directory).split(split, cacheChunks: 2)
        let sb = reader.schema.sampleBytes, batch = 256
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: batch * sb, alignment: 64)
        let labels = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: batch)
        defer { data.deallocate(); labels.deallocate() }
        let start = Clock.now()
        var p = 0
        while p < reader.count {
            let n = min(batch, reader.count - p)
            try reader.readBatch(p..<(p + n), data: data, labels: labels)
            p += n
        }
        let seconds = Clock.now() - start
        return Result(samples: reader.count, seconds: seconds, samplesPerSecond: Double(reader.count) / seconds,
                      megabytesPerSecond: Double(reader.count * sb) / seconds / 1e6, peakRSS: EMCEnvironment.peakRSS)
    }
}
