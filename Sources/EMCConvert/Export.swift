import EMCCore
import EMCFormats
import EMCPipeline
import EMCVariants
import Foundation

/// Writes what emc itself reads from a dataset view (variants applied: label overlays and input transforms) as NumPy
/// arrays, so other tools can be checked sample for sample against emc: `PREFIX.x.npy` (uint8 N×H×W×C images or
/// float32 N×F features, as stored, before normalisation), `PREFIX.y.npy` (int64 labels) and, for a nested subset,
/// `PREFIX.positions.npy` (int64 sample positions in the split, in subset order).
public enum DatasetExport {
    public struct Request: Sendable {
        public var data: String
        public var split = "train"
        public var out: String
        /// Export the seed's nested subset of this many samples (as a search trains on) instead of the whole split.
        public var subset: Int?
        public var seed: UInt64 = 0
        public var force = false
        public var threads = 1

        public init(data: String, out: String) {
            self.data = data
            self.out = out
        }
    }

    public struct Result: Codable, Sendable {
        public var files: [String]
        public var samples: Int
        public var shape: [Int]
    }

    public static func run(_ request: Request) throws -> Result {
        // The prefix needs a name of its own: "", "." or "dir/" would write hidden files (".x.npy").
        let name = FileSystem.baseName(request.out)
        guard FileSystem.isPlainName(name), !request.out.hasSuffix("/") else {
            throw EMCError(.invalidArgument, "the output prefix needs a file name (e.g. out/fm, which writes out/fm.x.npy and out/fm.y.npy)",
                           file: request.out.isEmpty ? "(empty)" : request.out)
        }
        let view = try DatasetView(directory: request.data)
        let split = try view.split(request.split)
        let positions: [Int]
        if let n = request.subset {
            var options = SubsetOptions(seed: request.seed)
            options.normalize = .none
            positions = try Subset(view: view, split: request.split, count: n, options: options).positions
        } else {
            positions = Array(0..<split.count)
        }
        let schema = view.schema
        let sb = schema.sampleBytes
        let files = [request.out + ".x.npy", request.out + ".y.npy"] + (request.subset == nil ? [] : [request.out + ".positions.npy"])
        for f in files where FileSystem.exists(f) && !request.force {
            throw EMCError(.invalidArgument, "already exists; emc overwrites nothing without being asked", file: f, remedy: .replaceOutput)
        }
        let folder = FileSystem.splitDirectory(request.out)
        if !folder.isEmpty && folder != "." { try FileSystem.createDirectory(folder) }
        guard positions.count <= Int.max / max(1, sb) else { throw EMCError(.invalidArgument, "too many samples to export", file: request.data) }
        var bytes = [UInt8](repeating: 0, count: positions.count * sb)
        var labels = [Int64](repeating: 0, count: positions.count)
        let views = ObjectPool { try view.split(request.split) }
        try bytes.withUnsafeMutableBytes { out in
            try labels.withUnsafeMutableBufferPointer { labelsOut in
                nonisolated(unsafe) let data = out, y = labelsOut
                let blocks = (positions.count + 4095) / 4096
                try parallelFor(blocks, threads: request.threads) { b in
                    try views.with { split in
                        for q in (b * 4096)..<min(positions.count, (b + 1) * 4096) {
                            y[q] = Int64(try split.read(positions[q], into: UnsafeMutableRawBufferPointer(rebasing: data[(q * sb)..<((q + 1) * sb)])))
                        }
                    }
                }
            }
        }
        let shape = schema.kind == .image ? [positions.count, schema.height, schema.width, schema.channels] : [positions.count, schema.features]
        try AtomicFileWriter.write(NPY.encode(descr: schema.kind == .image ? "|u1" : "<f4", shape: shape, data: bytes), to: files[0])
        try AtomicFileWriter.write(NPY.encode(descr: "<i8", shape: [labels.count], data: littleEndianBytes(labels)), to: files[1])
        if request.subset != nil {
            try AtomicFileWriter.write(NPY.encode(descr: "<i8", shape: [positions.count], data: littleEndianBytes(positions.map(Int64.init))), to: files[2])
        }
        return Result(files: files, samples: positions.count, shape: shape)
    }

    static func littleEndianBytes(_ values: [Int64]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 8)
        for (i, v) in values.enumerated() { for k in 0..<8 { out[i * 8 + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) } }
        return out
    }
}
