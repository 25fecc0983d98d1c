import EMCCore
import EMCShards
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `emc bench shards`: codec size ratios, write speed, and sequential and random-order read speed,
/// beside the ceiling measured in the same run: the same pixels read from one raw file into the same
/// batch buffers.
public enum ShardBenchmark {
    public struct Row: Encodable, Sendable {
        var dataset: String
        var codec: String
        var ratio: Double
        var writeMBps: Double
        var sequentialSamplesPerSecond: Double
        var sequentialMBps: Double
        var sequentialOfCeiling: Double
        var randomSamplesPerSecond: Double
        var randomOfCeiling: Double
    }

    /// 32×32×3 smooth fields plus mild noise (natural-image-like), or 28×28×1 sparse strokes (MNIST-like).
    static func makeSamples(count: Int, sparse: Bool, threads: Int) throws -> LabeledSamples {
        let schema: SampleSchema = sparse ? .image(height: 28, width: 28, channels: 1) : .image(height: 32, width: 32, channels: 3)
        let sb = schema.sampleBytes
        let data = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: count * sb)
        defer { data.deallocate() }
        let rng = CounterRNG(seed: 1, stream: .synthetic)
        nonisolated(unsafe) let out = data
        try parallelFor(count, threads: threads) { i in
            let b = rng.block(index: UInt64(i))
            let fx = Float(b.0 & 0xFF) / 255 + 0.2, fy = Float(b.1 & 0xFF) / 255 + 0.2
            let phase = Float(b.2 & 0xFFFF) / 10_000
            let noise = CounterRNG(seed: UInt64(i), stream: .inputNoise)
            for y in 0..<schema.height {
                for x in 0..<schema.width {
                    for c in 0..<schema.channels {
                        let j = (y * schema.width + x) * schema.channels + c
                        let u = Float(x) / Float(schema.width), v = Float(y) / Float(schema.height)
                        var value: Float
                        if sparse {
                            let d = sin(fx * u * 6 + phase) * cos(fy * v * 6)
                            value = d > 0.35 ? 255 * min(1, (d - 0.35) * 3) : 0
                        } else {
                            value = 128 + 60 * sin(fx * u * 3 + phase + Float(c)) + 50 * cos(fy * v * 3 - phase)
                            value += Float(noise.word(UInt64(j)) % 3) - 1
                        }
                        out[i * sb + j] = UInt8(max(0, min(255, value)))
                    }
                }
            }
        }
        return LabeledSamples(schema: schema, data: Array(data), labels: (0..<count).map { UInt32(rng.block(index: UInt64($0)).3 % 10) })
    }

    public static func run(samples count: Int, repeats: Int, codecs: [String], directory: String, progress: (String) -> Void) throws -> [Row] {
        var rows: [Row] = []
        let threads = EMCEnvironment.cpuCount
        for sparse in [false, true] {
            let name = sparse ? "28×28×1 sparse (MNIST-like)" : "32×32×3 smooth+noise"
            progress("generating \(count) samples of \(name)")
            let samples = try makeSamples(count: count, sparse: sparse, threads: threads)
            let sb = samples.schema.sampleBytes
            let rawBytes = Double(count * sb)
            let batch = 256
            let batchBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: batch * sb, alignment: 64)
            let labelBuffer = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: batch)
            defer { batchBuffer.deallocate(); labelBuffer.deallocate() }

            // The ceiling: the same pixels in one raw file, read into the same batch buffers.
            let rawPath = FileSystem.join(directory, "ceiling.raw")
            try AtomicFileWriter.write(samples.data, to: rawPath)
            let rawFile = try ReadableFile(path: rawPath)
            let ceilingSequential = try medianSeconds(repeats: repeats) {
                var p = 0
                while p < count {
                    let n = min(batch, count - p)
                    try rawFile.read(into: UnsafeMutableRawBufferPointer(rebasing: batchBuffer[0..<(n * sb)]), at: p * sb)
                    p += n
                }
            }
            let order = CounterRNG(seed: 2, stream: .shuffle).permutation(count: count).map { Int($0) }
            let ceilingRandom = try medianSeconds(repeats: repeats) {
                for (k, p) in order.enumerated() {
                    let slot = k % batch
                    try rawFile.read(into: UnsafeMutableRawBufferPointer(rebasing: batchBuffer[(slot * sb)..<((slot + 1) * sb)]), at: p * sb)
                }
            }
            rows.append(Row(dataset: name, codec: "raw file (ceiling)", ratio: 1, writeMBps: 0,
                            sequentialSamplesPerSecond: Double(count) / ceilingSequential, sequentialMBps: rawBytes / ceilingSequential / 1e6,
                            sequentialOfCeiling: 1, randomSamplesPerSecond: Double(count) / ceilingRandom, randomOfCeiling: 1))
            FileSystem.remove(rawPath)

            for codecName in codecs {
                progress("\(name): codec \(codecName)")
                let dir = FileSystem.join(directory, "set-\(codecName)")
                var options = ShardSetOptions(codec: try CodecSpec(parsing: codecName), seed: 0, shuffle: false)
                options.threads = threads
                let writeTime = try medianSeconds(repeats: 1) {
                    let writer = try ShardSetWriter(directory: dir, name: "bench", schema: samples.schema,
                                                    classes: ClassInfo(count: 10, names: (0..<10).map { "\($0)" }),
                                                    options: options, decoder: "bench", sources: [])
                    try writer.write(split: "train", samples: samples)
                    _ = try writer.finish()
                }
                let manifest = try DatasetManifest.load(directory: dir)
                let stored = manifest.splits["train"]!.shards.reduce(0) { $0 + $1.bytes }
                let sequential = try medianSeconds(repeats: repeats, setup: { try ShardSet(directory: dir).split("train", cacheChunks: 1) }) { reader in
                    var p = 0
                    while p < count {
                        let n = min(batch, count - p)
                        try reader.readBatch(p..<(p + n), data: batchBuffer, labels: labelBuffer)
                        p += n
                    }
                }
                // Random order over the whole split, with a cache that holds every chunk it touches.
                let random = try medianSeconds(repeats: repeats, setup: {
                    try ShardSet(directory: dir).split("train", cacheChunks: Int(rawBytes) / options.chunkBytes + 2)
                }) { reader in
                    var k = 0
                    while k < count {
                        let n = min(batch, count - k)
                        try reader.readSamples(Array(order[k..<(k + n)]), data: batchBuffer, labels: labelBuffer)
                        k += n
                    }
                }
                rows.append(Row(dataset: name, codec: codecName, ratio: rawBytes / Double(stored), writeMBps: rawBytes / writeTime / 1e6,
                                sequentialSamplesPerSecond: Double(count) / sequential, sequentialMBps: rawBytes / sequential / 1e6,
                                sequentialOfCeiling: ceilingSequential / sequential, randomSamplesPerSecond: Double(count) / random,
                                randomOfCeiling: ceilingRandom / random))
                FileSystem.removeTree(dir)
            }
        }
        return rows
    }
}
