import EMCCore
import EMCFormats
import Foundation

/// A known raw dataset, from `manifests/datasets/<name>.json`: which decoder reads it, its official
/// file names per split, their published checksums, and its class names.
public struct DatasetDefinition: Codable, Sendable {
    public var name: String
    public var description: String
    /// Which decoder reads the raw files.
    public var decoder: Decoder
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
    /// Image folders: other layouts the same data set ships in, tried in order when `imageFolder`'s train folder
    /// is absent (ImageNet: the Kaggle layout, then the ILSVRC2012/torchvision `train/<wnid>/`, `val/<wnid>/`).
    public var imageFolderAlternatives: [ImageFolderLayout]?

    /// Images as CSV rows of pixel values: their shape, scale and label column.
    public var csvImage: CSVImageLayout?

    /// The decoders emc has; a definition names one.
    public enum Decoder: String, Codable, Sendable, CaseIterable {
        case idx, cifar10, cifar100, imageFolder = "image-folder", npz, csv, csvImage = "csv-image"
    }

    public struct CSVImageLayout: Codable, Sendable {
        public var height: Int
        public var width: Int
        public var channels: Int
        /// The largest pixel value (255 for bytes, 16 for scikit-learn's digits): values scale by 255 / maxValue.
        public var maxValue: Double
        /// True when the label is the row's first field; else its last.
        public var labelFirst: Bool
        public var headerRows: Int
    }

    public struct ImageFolderLayout: Codable, Sendable {
        /// Sub-folder with class folders (train); "." for the raw folder itself.
        public var train: String
        /// Optional test folder: flat and labelled by `testLabels` (a CSV), or without it, class folders named as train's.
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
        let exe = FileSystem.splitDirectory(EMCEnvironment.executablePath)
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

    /// The names of the definitions found in the first manifests folder that has any.
    public static func knownNames(manifests: String? = nil) -> [String] {
        searchPaths(explicit: manifests).lazy.compactMap { try? FileSystem.list($0) }.first { !$0.isEmpty }?
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) } ?? []
    }

    /// The definition named `nameOrPath` (a name like `fashion-mnist`, or a path to a `.json` file).
    public static func load(_ nameOrPath: String, manifests: String? = nil) throws -> DatasetDefinition {
        let path: String
        if nameOrPath.hasSuffix(".json") {
            path = nameOrPath
        } else {
            let candidates = searchPaths(explicit: manifests).map { FileSystem.join($0, nameOrPath + ".json") }
            guard let found = candidates.first(where: FileSystem.exists) else {
                let known = knownNames(manifests: manifests)
                throw EMCError(.missing, "unknown dataset '\(nameOrPath)'" + (known.isEmpty
                    ? " (no manifests/datasets folder found)" : "; known datasets: \(known.joined(separator: ", "))"),
                    remedy: known.isEmpty ? .definitionsFolder : nil)
            }
            path = found
        }
        let bytes = try ReadableFile.contents(of: path)
        let definition: DatasetDefinition
        do {
            definition = try JSONDecoder().decode(DatasetDefinition.self, from: Data(bytes))
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.last?.stringValue == "decoder" {
            throw EMCError(.format, "unknown decoder; emc has \(Decoder.allCases.map(\.rawValue).joined(separator: ", "))", file: path, place: .field("decoder"))
        } catch {
            throw EMCError(.format, "dataset definition is not valid JSON of the expected shape: \(error)", file: path)
        }
        try EMCError.locating(file: path) { try definition.validate() }
        return definition
    }

    /// Checks every field a conversion will rely on, so a bad definition is an error before any work.
    public func validate() throws {
        func bad(_ field: String, _ message: String) -> EMCError { EMCError(.format, message, place: .field(field)) }
        guard !name.isEmpty, name.range(of: "^[A-Za-z0-9._-]+$", options: .regularExpression) != nil else {
            throw bad("name", "the name must be letters, digits, '.', '_' or '-', not '\(name)'")
        }
        for (split, files) in splits {
            guard split.range(of: "^[a-z0-9_]+$", options: .regularExpression) != nil else { throw bad("splits", "split name '\(split)' must be lowercase letters, digits or _") }
            guard decoder == .npz || !files.isEmpty else { throw bad("splits.\(split)", "split '\(split)' lists no files") }
            for file in files where decoder != .npz && (file.isEmpty || file.split(separator: "/").contains("..")) {
                throw bad("splits.\(split)", "'\(file)' is not a file name inside the raw folder")
            }
        }
        for (split, n) in expectedSamples ?? [:] where n < 0 { throw bad("expectedSamples.\(split)", "a sample count cannot be negative (\(n))") }
        guard classes.count <= 1 << 24 else { throw bad("classes", "\(classes.count) class names are more than emc handles") }
        switch decoder {
        case .idx:
            guard !splits.isEmpty else { throw bad("splits", "an IDX definition needs splits of [images, labels]") }
            for (split, files) in splits where files.count != 2 { throw bad("splits.\(split)", "an IDX split is [images, labels], not \(files.count) file(s)") }
            guard (1...256).contains(classes.count) else { throw bad("classes", "IDX labels are bytes: give 1 to 256 class names, not \(classes.count)") }
        case .cifar10, .cifar100:
            guard !splits.isEmpty else { throw bad("splits", "a CIFAR definition needs its batch files per split") }
            let k = decoder == .cifar10 ? 10 : 100
            guard classes.isEmpty || classes.count == k else { throw bad("classes", "\(decoder.rawValue) has \(k) classes, the definition names \(classes.count)") }
        case .imageFolder:
            let layouts = [imageFolder].compactMap { $0 } + (imageFolderAlternatives ?? [])
            guard !layouts.isEmpty else { throw bad("imageFolder", "an image-folder definition needs an \"imageFolder\" layout") }
            for layout in layouts {
                guard (1...1024).contains(layout.size) else { throw bad("imageFolder.size", "size must be 1...1024, not \(layout.size)") }
                guard !layout.train.isEmpty else { throw bad("imageFolder.train", "the train folder is empty (\".\" means the raw folder)") }
                if layout.testLabels != nil && layout.test == nil { throw bad("imageFolder.testLabels", "test labels without a test folder") }
            }
        case .npz:
            if let size = npz?.size, !(1...1024).contains(size) { throw bad("npz.size", "size must be 1...1024, not \(size)") }
        case .csvImage:
            guard let layout = csvImage else { throw bad("csvImage", "a csv-image definition needs a \"csvImage\" layout") }
            guard (1...1024).contains(layout.height), (1...1024).contains(layout.width), (1...4).contains(layout.channels) else {
                throw bad("csvImage", "height and width must be 1...1024 and channels 1...4")
            }
            guard layout.maxValue.isFinite, layout.maxValue > 0 else { throw bad("csvImage.maxValue", "maxValue must be a positive number") }
            guard layout.headerRows >= 0 else { throw bad("csvImage.headerRows", "headerRows cannot be negative") }
            guard (2...65_536).contains(classes.count) else { throw bad("classes", "give 2 to 65536 class names, not \(classes.count)") }
            guard splits["all"]?.count == 1 else { throw bad("splits", "a csv-image definition names its one file under splits.all") }
            let f = testFraction ?? 0.2
            guard f > 0 && f < 1 else { throw bad("testFraction", "testFraction must be between 0 and 1, not \(f)") }
        case .csv:
            guard let table else { throw bad("table", "a csv definition needs a \"table\" schema") }
            guard table.columns.filter({ $0.type == .label }).count == 1 else { throw bad("table.columns", "the table needs exactly one label column") }
            guard !table.labels.isEmpty, Set(table.labels).count == table.labels.count else { throw bad("table.labels", "label values must be given, each once") }
            guard table.separator.utf8.count == 1 else { throw bad("table.separator", "the separator must be one byte, not '\(table.separator)'") }
            guard table.headerRows >= 0 else { throw bad("table.headerRows", "headerRows cannot be negative") }
            if splits["all"] != nil {
                let f = testFraction ?? 0.2
                guard f > 0 && f < 1 else { throw bad("testFraction", "testFraction must be between 0 and 1, not \(f)") }
            } else if splits["train"] == nil || splits["test"] == nil {
                throw bad("splits", "a tabular definition needs splits 'train' and 'test', or 'all' with testFraction")
            }
        }
    }

    public func published(_ file: String) -> PublishedFile? { files.first { $0.name == file } }
}
