import EMCCore
import EMCFormats
import Foundation

/// A known raw dataset, from `manifests/datasets/<name>.json`: which decoder reads it, its official
/// file names per split, their published checksums, and its class names.
public struct DatasetDefinition: Codable, Sendable {
    public var name: String
    public var description: String
    /// "idx", "cifar10" or "cifar100".
    public var decoder: String
    public var homepage: String?
    public var classes: [String]
    /// Split → files. IDX: [images, labels]. CIFAR: the batch files.
    public var splits: [String: [String]]
    public var expectedSamples: [String: Int]?
    /// CIFAR: files holding class names (fine, then coarse).
    public var classNameFiles: [String]?
    /// The official archive, when the files ship inside one.
    public var archive: String?
    public var files: [PublishedFile]
    /// Tabular CSVs: the schema, and (when no test file ships) the seeded split.
    public var table: TableSchema?
    public var testFraction: Double?
    public var splitSeed: UInt64?

    /// NPZ batches: which arrays hold images and labels, and their layout. Splits list file-name prefixes.
    public var npz: NPZ.Options?

    /// Image folders: where the splits are inside the raw folder, and the output size.
    public var imageFolder: ImageFolderLayout?

    public struct ImageFolderLayout: Codable, Sendable {
        /// Sub-folder with class folders (train); "." for the raw folder itself.
        public var train: String
        /// Optional flat folder of test images and its label CSV.
        public var test: String?
        public var testLabels: String?
        /// Optional synset → name mapping file.
        public var classNames: String?
        public var size: Int

        public init(train: String, test: String?, testLabels: String?, classNames: String?, size: Int) {
            self.train = train
            self.test = test
            self.testLabels = testLabels
            self.classNames = classNames
            self.size = size
        }
    }

    /// A file as its authors publish it.
    public struct PublishedFile: Codable, Sendable {
        public var name: String
        /// MD5 of the file as published.
        public var md5: String?
        /// MD5 of the decompressed content, for copies that were recompressed (as Debian's are).
        public var contentMD5: String?
        public var bytes: Int?
        public var note: String?
    }

    /// Where manifests are looked for: `explicit`, `$EMC_MANIFESTS`, then `manifests/datasets` in the
    /// current folder, beside the executable, and in their parents.
    public static func searchPaths(explicit: String? = nil) -> [String] {
        var paths: [String] = []
        if let explicit { paths.append(explicit) }
        if let env = ProcessInfo.processInfo.environment["EMC_MANIFESTS"] { paths.append(env) }
        var roots = [FileManager.default.currentDirectoryPath]
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent().path
        roots.append(exe)
        for root in roots {
            var url = URL(fileURLWithPath: root)
            for _ in 0..<5 {
                paths.append(url.appendingPathComponent("manifests/datasets").path)
                url.deleteLastPathComponent()
            }
        }
        return paths
    }

    /// The definition named `nameOrPath` (a name like `fashion-mnist`, or a path to a `.json` file).
    public static func load(_ nameOrPath: String, manifests: String? = nil) throws -> DatasetDefinition {
        let path: String
        if nameOrPath.hasSuffix(".json") {
            path = nameOrPath
        } else {
            let candidates = searchPaths(explicit: manifests).map { FileSystem.join($0, nameOrPath + ".json") }
            guard let found = candidates.first(where: FileSystem.exists) else {
                let known = searchPaths(explicit: manifests).lazy.compactMap { try? FileSystem.list($0) }.first { !$0.isEmpty }?
                    .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) } ?? []
                throw EMCError(.missing, "unknown dataset '\(nameOrPath)'" + (known.isEmpty
                    ? " (no manifests/datasets folder found: pass --manifests DIR or set EMC_MANIFESTS)"
                    : "; known datasets: \(known.joined(separator: ", "))"))
            }
            path = found
        }
        let bytes = try ReadableFile.contents(of: path)
        do {
            return try JSONDecoder().decode(DatasetDefinition.self, from: Data(bytes))
        } catch {
            throw EMCError(.format, "dataset definition is not valid JSON of the expected shape: \(error)", file: path)
        }
    }

    public func published(_ file: String) -> PublishedFile? { files.first { $0.name == file } }
}
