import EMCCore
import EMCFormats
import EMCShards
import Foundation

/// Image folders into shards: files are listed, put in the seeded order, and decoded in parallel straight
/// into the writer (memory stays at a window of chunks, whatever the number of images).
struct ImageFolderSource: ConversionSource {
    struct Options {
        var size: Int
        var mode: Resize.Mode
        var skipBad: Bool
        var maxPixels = RasterImage.defaultMaxPixels
        var threads = 1
    }

    let schema: SampleSchema
    let classes: ClassInfo
    let checks: [SourceCheck]
    let warnings: [String]
    let recordedOptions: [String: String]
    let splits: [SplitSource]
    let skipped: [String]
    var unit: String { "images" }

    init(_ request: ConvertRequest, log: (String) -> Void) throws {
        let def = request.dataset
        let layout = try ImageFolderSource.layout(def, raw: request.raw)
        let size = request.imageSize ?? layout.size
        guard (1...1024).contains(size) else { throw EMCError(.invalidArgument, "the image size must be 1...1024, not \(size)") }
        let options = Options(size: size, mode: request.resize, skipBad: request.skipBad, maxPixels: request.maxPixels, threads: request.options.threads)
        let trainRoot = layout.train == "." ? request.raw : FileSystem.join(request.raw, layout.train)
        let (folders, trainItems) = try ImageFolder.scanClassFolders(trainRoot)
        let mapping = layout.classNames.map { FileSystem.join(request.raw, $0) }.flatMap { FileSystem.exists($0) ? $0 : nil }
        let names = try ImageFolder.classNames(folders, mapping: mapping)
        var lists: [(String, [ImageFolder.Item])] = [("train", trainItems)]
        if let test = layout.test, FileSystem.isDirectory(FileSystem.join(request.raw, test)) {
            let folder = FileSystem.join(request.raw, test)
            if let labels = layout.testLabels {
                lists.append(("test", try ImageFolder.scanLabelledFolder(folder, labels: FileSystem.join(request.raw, labels), classes: folders)))
            } else {
                lists.append(("test", try ImageFolder.scanClassFolders(folder, classes: folders)))
            }
        }
        var skipped: [String] = []
        if options.skipBad {
            // A first pass finds the files that do not decode; shard headers need the final counts up front.
            for (i, (name, items)) in lists.enumerated() {
                let bad = ResultSlots<String>(items.count)
                try parallelFor(items.count, threads: options.threads) { k in
                    do { _ = try ImageFolder.load(items[k].path, size: options.size, mode: options.mode, maxPixels: options.maxPixels) } catch { bad.set(k, "\(error)") }
                }
                var kept: [ImageFolder.Item] = []
                for (k, item) in items.enumerated() {
                    if let reason = bad.get(k) { skipped.append(item.path); log("skipped \(reason)") } else { kept.append(item) }
                }
                guard !kept.isEmpty else {
                    throw EMCError(.format, "none of the \(items.count) images of split '\(name)' decodes (all would be skipped)", file: request.raw)
                }
                lists[i] = (name, kept)
            }
        }
        self.skipped = skipped
        warnings = skipped.isEmpty ? [] : ["skipped \(skipped.count) file(s) that did not decode"]
        schema = SampleSchema.image(height: options.size, width: options.size, channels: 3)
        classes = ClassInfo(count: folders.count, names: names)
        checks = [SourceCheck(file: request.raw, bytes: lists.reduce(0) { $0 + $1.1.count }, md5: "", status: .unknown)]
        recordedOptions = ["size": "\(options.size)", "resize": options.mode.rawValue]
        let sb = schema.sampleBytes
        splits = lists.map { name, items in
            let histogram = HistogramAccumulator(channels: 3)
            return .streamed(StreamedSplit(name: name, count: items.count, shuffled: nil, fill: { order, positions, data, labels, indices in
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
            }, statistics: { histogram.statistics }))
        }
    }

    /// The definition's layout, or the first alternative whose train folder exists under `raw`.
    static func layout(_ def: DatasetDefinition, raw: String) throws -> DatasetDefinition.ImageFolderLayout {
        let layouts = [def.imageFolder].compactMap { $0 } + (def.imageFolderAlternatives ?? [])
        guard let first = layouts.first else { throw EMCError(.format, "an image-folder definition needs an \"imageFolder\" layout") }
        guard FileSystem.isDirectory(raw) else { throw EMCError(.missing, FileSystem.exists(raw) ? "expected a folder of images, got a file" : "no such folder", file: raw) }
        return layouts.first { FileSystem.isDirectory($0.train == "." ? raw : FileSystem.join(raw, $0.train)) } ?? first
    }
}
