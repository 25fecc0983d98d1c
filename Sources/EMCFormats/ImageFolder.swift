import EMCCore
import Foundation

/// Image datasets stored as files: `root/<class>/<image>` (ImageNet train: n01440764/n01440764_10026.JPEG,
/// classes = sorted folder names), or a flat folder with a label file (ImageNet val: LOC_val_solution.csv,
/// whose first column is the image id and whose second starts with the synset).
public enum ImageFolder {
    public static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    /// One image file and its class.
    public struct Item: Sendable, Equatable {
        public var path: String
        public var label: UInt32
    }

    /// Lists `root/<class>/<image>`; classes are the sorted sub-folder names. Hidden folders and files (`.ipynb_checkpoints`,
    /// `._photo.jpg`) are not data and are left out; a class folder without images is an error (it would be a class
    /// no sample has, and would shift every later label).
    public static func scanClassFolders(_ root: String) throws -> (classes: [String], items: [Item]) {
        guard FileSystem.isDirectory(root) else { throw EMCError(.missing, "no such folder", file: root) }
        let classes = try FileSystem.list(root).filter { !$0.hasPrefix(".") && FileSystem.isDirectory(FileSystem.join(root, $0)) }
        guard !classes.isEmpty else { throw EMCError(.missing, "no class folders (expected root/<class>/<image>)", file: root) }
        let items = try scanClassFolders(root, classes: classes)
        return (classes, items)
    }

    /// Lists `root/<class>/<image>` for a split whose classes are already known (a test folder named like train's):
    /// each folder's images get the index of its name in `classes`; a folder not in `classes` is an error.
    public static func scanClassFolders(_ root: String, classes: [String]) throws -> [Item] {
        guard FileSystem.isDirectory(root) else { throw EMCError(.missing, "no such folder", file: root) }
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, UInt32($0)) })
        var items: [Item] = []
        var empty: [String] = []
        for name in try FileSystem.list(root) where !name.hasPrefix(".") && FileSystem.isDirectory(FileSystem.join(root, name)) {
            guard let label = index[name] else {
                throw EMCError(.format, "class folder '\(name)' is not one of the \(classes.count) training classes", file: root, place: .member(name))
            }
            let dir = FileSystem.join(root, name)
            let files = try FileSystem.list(dir).filter { !$0.hasPrefix(".") && isImage($0) }
            if files.isEmpty { empty.append(name) }
            items += files.map { Item(path: FileSystem.join(dir, $0), label: label) }
        }
        guard empty.isEmpty else {
            throw EMCError(.format, "class folder(s) \(empty.prefix(5).joined(separator: ", "))\(empty.count > 5 ? " ..." : "") hold no images "
                           + "(.jpg, .jpeg, .png); remove them or add their images", file: root, place: .member(empty[0]))
        }
        guard !items.isEmpty else { throw EMCError(.missing, "no images (.jpg, .jpeg, .png) in any class folder", file: root) }
        return items
    }

    /// Lists a flat folder labelled by a CSV (`ImageId,PredictionString`; the synset is the prediction's first word).
    public static func scanLabelledFolder(_ folder: String, labels csv: String, classes: [String]) throws -> [Item] {
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, UInt32($0)) })
        var byId: [String: UInt32] = [:]
        let text = String(decoding: try ReadableFile.contents(of: csv), as: UTF8.self)
        for (i, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            let fields = line.split(separator: ",", maxSplits: 1).map(String.init)
            if i == 0 && fields.first == "ImageId" { continue }
            guard fields.count == 2, let synset = fields[1].split(separator: " ").first.map(String.init) else {
                throw EMCError(.format, "expected ImageId,PredictionString", file: csv, place: .line(i + 1), found: String(line.prefix(60)))
            }
            guard let label = index[synset] else {
                throw EMCError(.format, "unknown class '\(synset)'", file: csv, place: .line(i + 1))
            }
            byId[fields[0]] = label
        }
        var items: [Item] = []
        for file in try FileSystem.list(folder) where !file.hasPrefix(".") && isImage(file) {
            let id = String(file[..<(file.lastIndex(of: ".") ?? file.endIndex)])
            guard let label = byId[id] else { throw EMCError(.format, "image has no label in \(FileSystem.baseName(csv))", file: FileSystem.join(folder, file)) }
            items.append(Item(path: FileSystem.join(folder, file), label: label))
        }
        guard !items.isEmpty else { throw EMCError(.missing, "no images in the folder", file: folder) }
        return items
    }

    /// Class display names from an ImageNet synset mapping (`n01440764 tench, Tinca tinca`); unknown ids keep their folder name.
    public static func classNames(_ classes: [String], mapping path: String?) throws -> [String] {
        guard let path else { return classes }
        var names: [String: String] = [:]
        let text = String(decoding: try ReadableFile.contents(of: path), as: UTF8.self)
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            if parts.count == 2 { names[parts[0]] = parts[1] }
        }
        return classes.map { names[$0] ?? $0 }
    }

    static func isImage(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: ".") else { return false }
        return extensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// Decodes one file (JPEG with DCT scaling, or PNG) and brings it to size × size RGB.
    /// `dctScaling: false` decodes JPEGs at full size first (for benchmarks).
    /// Images above `maxPixels` are refused from their header.
    public static func load(_ path: String, size: Int, mode: Resize.Mode, maxPixels: Int = RasterImage.defaultMaxPixels,
                            dctScaling: Bool = true) throws -> RasterImage {
        let bytes = try ReadableFile.contents(of: path)
        guard !bytes.isEmpty else { throw EMCError(.format, "empty file, expected a JPEG or PNG image", file: path) }
        let image: RasterImage
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            image = try PNG.decode(bytes, channels: 3, maxPixels: maxPixels, file: path)
        } else {
            image = try JPEG.decode(bytes, minimumSize: dctScaling ? (size, size) : nil, maxPixels: maxPixels, file: path)
        }
        return Resize.square(image, size: size, mode: mode)
    }
}
