import EMCCore
import EMCFormats
import EMCShards
import Foundation

/// IDX (MNIST-like) and CIFAR binaries: small enough to decode whole, so each split is handed over in memory.
/// The raw files' MD5s are computed beside the decode; decoders report their decompressed content's MD5 on the way,
/// which recognises a recompressed copy (Debian's Fashion-MNIST .gz files) as the published content.
struct InMemorySource: ConversionSource {
    let schema: SampleSchema
    let classes: ClassInfo
    let checks: [SourceCheck]
    let splits: [SplitSource]
    let codecSample: [UInt8]?

    init(_ request: ConvertRequest) throws {
        let def = request.dataset
        let inputs = try InMemorySource.locate(def, raw: request.raw)
        let rawMD5s = ResultSlots<String>(inputs.checked.count)
        let decodedSlot = ResultSlots<Decoded>(1)
        try parallelFor(inputs.checked.count + 1, threads: EMCEnvironment.cpuCount) { i in
            if i == 0 { decodedSlot.set(0, try InMemorySource.decode(def, inputs: inputs)) } else { rawMD5s.set(i - 1, try MD5.hex(file: inputs.checked[i - 1])) }
        }
        let decoded = decodedSlot.get(0)!
        checks = inputs.checked.enumerated().map { i, path in
            let name = FileSystem.baseName(path)
            return SourceChecks.check(path: path, md5: rawMD5s.get(i)!, published: def.published(name) ?? def.published(name + ".gz"),
                                      contentMD5: decoded.contentMD5[path])
        }
        guard let first = decoded.splits.first?.1 else { throw EMCError(.missing, "no splits decoded", file: request.raw) }
        schema = first.schema
        classes = decoded.classes
        splits = decoded.splits.map { .inMemory($0.0, $0.1) }
        codecSample = Array(first.data.prefix(1 << 20))
    }

    struct Inputs {
        /// Split → resolved paths (IDX: images, labels).
        var splits: [String: [String]]
        /// Files whose checksums are checked (CIFAR: the archive).
        var checked: [String]
        /// CIFAR: the archive or folder.
        var source: String
    }

    struct Decoded: Sendable {
        /// Train first, then the others by name.
        var splits: [(String, LabeledSamples)]
        var classes: ClassInfo
        /// Path → MD5 of its decompressed content, where the decoder computed it.
        var contentMD5: [String: String] = [:]
    }

    static func locate(_ def: DatasetDefinition, raw: String) throws -> Inputs {
        if def.decoder == .idx {
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
        }
        if FileSystem.isDirectory(raw), let archive = def.archive, FileSystem.exists(FileSystem.join(raw, archive)) {
            return Inputs(splits: def.splits, checked: [FileSystem.join(raw, archive)], source: FileSystem.join(raw, archive))
        }
        guard FileSystem.exists(raw) else { throw EMCError(.missing, "no such file or folder", file: raw) }
        return Inputs(splits: def.splits, checked: FileSystem.isDirectory(raw) ? [] : [raw], source: raw)
    }

    static func decode(_ def: DatasetDefinition, inputs: Inputs) throws -> Decoded {
        let names = splitOrder(inputs.splits.keys)
        if def.decoder == .idx {
            var decoded = Decoded(splits: [], classes: ClassInfo(count: def.classes.count, names: def.classes))
            for name in names {
                let files = inputs.splits[name]!
                let r = try IDX.loadWithChecksums(images: files[0], labels: files[1])
                // IDX labels are bytes; the definition says how many classes there are.
                if let i = r.samples.labels.firstIndex(where: { Int($0) >= def.classes.count }) {
                    throw EMCError(.format, "label \(r.samples.labels[i]) is not one of \(def.name)'s \(def.classes.count) classes", file: files[1],
                                   place: .record(i), expected: "0..<\(def.classes.count)", found: "\(r.samples.labels[i])")
                }
                decoded.splits.append((name, r.samples))
                decoded.contentMD5[files[0]] = r.imagesMD5
                decoded.contentMD5[files[1]] = r.labelsMD5
            }
            return decoded
        }
        let variant: CIFAR.Variant = def.decoder == .cifar10 ? .cifar10 : .cifar100
        let decoded = try CIFAR.decode(source: inputs.source, variant: variant, files: inputs.splits, nameFiles: def.classNameFiles ?? [],
                                       defaultNames: def.classes)
        return Decoded(splits: names.compactMap { n in decoded.splits[n].map { (n, $0) } }, classes: decoded.classes)
    }
}

/// Split names in writing order: train first, then the rest by name.
func splitOrder<S: Sequence>(_ names: S) -> [String] where S.Element == String {
    names.sorted { ($0 == "train" ? 0 : 1, $0) < ($1 == "train" ? 0 : 1, $1) }
}
