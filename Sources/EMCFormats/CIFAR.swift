import EMCCore
import Foundation

/// The CIFAR-10 and CIFAR-100 binary versions: fixed records of label byte(s) then 3072 pixel bytes,
/// 1024 red, 1024 green, 1024 blue (channel-planar, rows top to bottom). Read from the official
/// `.tar.gz` (streamed) or from an extracted folder; planar records become interleaved 32×32×3.
public enum CIFAR {
    public enum Variant: String, Sendable {
        case cifar10, cifar100

        /// Bytes of label per record: one (CIFAR-10) or coarse then fine (CIFAR-100).
        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        var recordSize: Int { labelBytes + 3072 }
        var classCount: Int { self == .cifar10 ? 10 : 100 }
    }

    public struct Decoded: Sendable {
        public var splits: [String: LabeledSamples]
        public var classes: ClassInfo
    }

    /// Reads the split files named in `files` (split → file names, e.g. "train" → data_batch_1.bin ...)
    /// and the class-name files, from a `.tar.gz`/`.tar` archive or a folder (searched one level deep).
    public static func decode(source: String, variant: Variant, files: [String: [String]], nameFiles: [String],
                              defaultNames: [String] = []) throws -> Decoded {
        var contents: [String: [UInt8]] = [:]
        let wanted = Set(files.values.flatMap { $0 } + nameFiles)
        if FileSystem.isDirectory(source) {
            for name in wanted {
                for candidate in [FileSystem.join(source, name)] + ((try? FileSystem.list(source)) ?? []).map({ FileSystem.join(FileSystem.join(source, $0), name) })
                where FileSystem.exists(candidate) {
                    contents[name] = try ReadableFile.contents(of: candidate)
                    break
                }
            }
        } else {
            let tar = TarReader(source: try openMaybeGzip(source))
            while let member = try tar.next() {
                let base = FileSystem.baseName(member.name)
                guard member.isFile, wanted.contains(base) else { continue }
                guard contents[base] == nil else {
                    throw EMCError(.format, "the archive holds two members named \(base); emc will not guess which one is meant",
                                   file: source, place: .member(member.name))
                }
                contents[base] = try tar.memberReader(member).readExactly(count: member.size)
            }
        }
        var splits: [String: LabeledSamples] = [:]
        var coarseOfFine = [Int](repeating: -1, count: variant.classCount)
        for (split, names) in files.sorted(by: { $0.key < $1.key }) {
            var data: [UInt8] = []
            var labels: [UInt32] = []
            for name in names {
                guard let bytes = contents[name] else {
                    throw EMCError(.missing, "split '\(split)' needs \(name), which is not in the source", file: source)
                }
                let where_ = FileSystem.isDirectory(source) ? name : source + ":" + name
                try appendRecords(bytes, variant: variant, file: where_, data: &data, labels: &labels, coarseOfFine: &coarseOfFine)
            }
            splits[split] = LabeledSamples(schema: .image(height: 32, width: 32, channels: 3), data: data, labels: labels)
        }
        func lines(_ name: String) -> [String]? {
            contents[name].map { String(decoding: $0, as: UTF8.self).split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        }
        let fallback = defaultNames.count == variant.classCount ? defaultNames : (0..<variant.classCount).map { "class \($0)" }
        let fineNames = lines(nameFiles.first ?? "") ?? fallback
        guard fineNames.count == variant.classCount else {
            throw EMCError(.format, "class name file lists \(fineNames.count) names", file: nameFiles.first, expected: "\(variant.classCount)")
        }
        var classes = ClassInfo(count: variant.classCount, names: fineNames)
        if variant == .cifar100 {
            classes.coarseNames = nameFiles.count > 1 ? lines(nameFiles[1]) : nil
            classes.coarseOfFine = coarseOfFine
        }
        return Decoded(splits: splits, classes: classes)
    }

    /// Appends the records of one batch file, converting planar to interleaved.
    static func appendRecords(_ bytes: [UInt8], variant: Variant, file: String, data: inout [UInt8], labels: inout [UInt32],
                              coarseOfFine: inout [Int]) throws {
        guard !bytes.isEmpty else { throw EMCError(.format, "empty file, expected CIFAR records", file: file) }
        let size = variant.recordSize
        guard bytes.count % size == 0 else {
            throw EMCError(.truncated, "file size \(bytes.count) is not a whole number of \(size)-byte records: record \(bytes.count / size) is cut short",
                           file: file, place: .record(bytes.count / size))
        }
        let count = bytes.count / size
        let start = data.count
        data += [UInt8](repeating: 0, count: count * 3072)
        try bytes.withUnsafeBufferPointer { src in
            try data.withUnsafeMutableBufferPointer { dst in
                for r in 0..<count {
                    let record = r * size
                    let fine = Int(src[record + variant.labelBytes - 1])
                    guard fine < variant.classCount else {
                        throw EMCError(.format, "label \(fine) is out of range", file: file, place: .record(r), expected: "< \(variant.classCount)")
                    }
                    if variant == .cifar100 {
                        let coarse = Int(src[record])
                        guard coarse < 20 else { throw EMCError(.format, "coarse label \(coarse) is out of range", file: file, place: .record(r), expected: "< 20") }
                        if coarseOfFine[fine] == -1 { coarseOfFine[fine] = coarse }
                        guard coarseOfFine[fine] == coarse else {
                            throw EMCError(.format, "fine class \(fine) appears under two coarse classes", file: file, place: .record(r),
                                           expected: "\(coarseOfFine[fine])", found: "\(coarse)")
                        }
                    }
                    labels.append(UInt32(fine))
                    let pixels = record + variant.labelBytes
                    let out = start + r * 3072
                    for i in 0..<1024 {
                        dst[out + 3 * i] = src[pixels + i]
                        dst[out + 3 * i + 1] = src[pixels + 1024 + i]
                        dst[out + 3 * i + 2] = src[pixels + 2048 + i]
                    }
                }
            }
        }
    }
}
