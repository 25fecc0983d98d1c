import EMCCore
import EMCFormats
import EMCShards
import Foundation

/// Image folders into shards: files are listed, put in the seeded order, and decoded in parallel straight
/// into the writer (memory stays at a window of chunks, whatever the number of images).
enum ImageFolderConversion {
    struct Options {
        var size: Int
        var mode: Resize.Mode
        var skipBad: Bool
        var maxPixels = RasterImage.defaultMaxPixels
    }

    static func run(_ request: ConvertRequest, layout: DatasetDefinition.ImageFolderLayout, options: Options, quiet: Bool,
                    log: (String) -> Void) throws -> ConvertResult {
        let start = Clock.now()
        let def = request.dataset
        let trainRoot = layout.train == "." ? request.raw : FileSystem.join(request.raw, layout.train)
        let (folders, trainItems) = try ImageFolder.scanClassFolders(trainRoot)
        let names = try ImageFolder.classNames(folders, mapping: layout.classNames.map { FileSystem.join(request.raw, $0) }.flatMap { FileSystem.exists($0) ? $0 : nil })
        var splits: [(String, [ImageFolder.Item])] = [("train", trainItems)]
        if let test = layout.test, let labels = layout.testLabels, FileSystem.isDirectory(FileSystem.join(request.raw, test)) {
            splits.append(("test", try ImageFolder.scanLabelledFolder(FileSystem.join(request.raw, test), labels: FileSystem.join(request.raw, labels), classes: folders)))
        }
        var skipped: [String] = []
        if options.skipBad {
            // A first pass finds the files that do not decode; shard headers need the final counts up front.
            for (i, (name, items)) in splits.enumerated() {
                let bad = ResultSlots<String>(items.count)
                try parallelFor(items.count, threads: request.options.threads) { k in
                    do { _ = try ImageFolder.load(items[k].path, size: options.size, mode: options.mode, maxPixels: options.maxPixels) } catch { bad.set(k, "\(error)") }
                }
                var kept: [ImageFolder.Item] = []
                for (k, item) in items.enumerated() {
                    if let reason = bad.get(k) { skipped.append(item.path); log("skipped \(reason)") } else { kept.append(item) }
                }
                splits[i] = (name, kept)
            }
        }
        let schema = SampleSchema.image(height: options.size, width: options.size, channels: 3)
        var opts = request.options
        if opts.codec == nil { opts.codec = .zstdDelta }
        let source = SourceFile(file: FileSystem.baseName(request.raw), bytes: splits.reduce(0) { $0 + $1.1.count }, md5: "")
        let writer = try ShardSetWriter(directory: request.out, name: def.name, schema: schema, classes: ClassInfo(count: folders.count, names: names),
                                        options: opts, decoder: "image-folder", sources: [source],
                                        extraOptions: ["size": "\(options.size)", "resize": options.mode.rawValue])
        if let done = try Converter.finishedEarlier(request, writer: writer) {
            return Converter.summary(done, request: request, checks: [], warnings: [], reused: 0, already: true, seconds: Clock.now() - start)
        }
        let progress = ProgressReporter("convert \(def.name)", total: splits.reduce(0) { $0 + $1.1.count }, unit: "images", quiet: quiet)
        let sb = schema.sampleBytes
        for (name, items) in splits {
            let order = writer.order(split: name, count: items.count)
            let histogram = HistogramAccumulator(channels: 3)
            try writer.write(split: name, count: items.count, progress: progress) { positions, data, labels, indices in
                var local = ChannelHistogram(channels: 3)
                for (k, p) in positions.enumerated() {
                    let item = items[Int(order[p])]
                    let image = try ImageFolder.load(item.path, size: options.size, mode: options.mode, maxPixels: options.maxPixels)
                    image.pixels.withUnsafeBytes { (data.baseAddress! + k * sb).copyMemory(from: $0.baseAddress!, byteCount: sb) }
                    local.add(image.pixels)
                    labels[k] = item.label.littleEndian
                    indices[k] = UInt64(order[p]).littleEndian
                }
                histogram.add(local)
            }
            if name == "train" { writer.setStatistics(histogram.statistics) }
        }
        let manifest = try writer.finish(skipped: skipped)
        progress.finish()
        return Converter.summary(manifest, request: request, checks: [], warnings: skipped.isEmpty ? [] : ["skipped \(skipped.count) file(s) that did not decode"],
                                 reused: writer.reusedShards, already: false, seconds: Clock.now() - start)
    }
}

/// A channel histogram summed across the writer's threads.
final class HistogramAccumulator: @unchecked Sendable {
    private let lock = NSLock()
    private var total: ChannelHistogram

    init(channels: Int) { total = ChannelHistogram(channels: channels) }

    func add(_ local: ChannelHistogram) {
        lock.lock(); defer { lock.unlock() }
        total.merge(local)
    }

    var statistics: ChannelStatistics {
        lock.lock(); defer { lock.unlock() }
        return total.statistics
    }
}
