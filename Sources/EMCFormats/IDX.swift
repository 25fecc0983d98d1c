import EMCCore

/// The IDX format of MNIST, Fashion-MNIST, EMNIST and KMNIST: a 4-byte magic (two zero bytes, a
/// type code, the number of dimensions), big-endian u32 dimensions, then the values in C order.
/// Files may be gzip-compressed (`.gz`), which is detected from the bytes.
public enum IDX {
    /// Type code 0x08: unsigned bytes, the only type these datasets use.
    static let unsignedByte: UInt8 = 0x08

    /// Reads an IDX array of unsigned bytes with `dimensions` dimensions. Returns its shape, its values
    /// and the MD5 of the (decompressed) file content.
    public static func read(path: String, dimensions: Int) throws -> (shape: [Int], values: [UInt8], contentMD5: String) {
        let reader = MD5HashingReader(try openMaybeGzip(path))
        let expectedMagic = UInt32(unsignedByte) << 8 | UInt32(dimensions)
        let head: [UInt8]
        do { head = try reader.readExactly(count: 4) } catch let e as EMCError where e.kind == .truncated {
            throw EMCError(.truncated, reader.position == 0 ? "empty file, expected an IDX header" : "IDX header is cut short",
                           file: path, place: .offset(0))
        }
        let magic = UInt32(head[0]) << 24 | UInt32(head[1]) << 16 | UInt32(head[2]) << 8 | UInt32(head[3])
        guard magic == expectedMagic else {
            let what = dimensions == 3 ? "images" : dimensions == 1 ? "labels" : "\(dimensions)-d data"
            throw EMCError(.format, "wrong IDX magic number for \(what)", file: path, place: .offset(0),
                           expected: String(format: "0x%08X", expectedMagic), found: String(format: "0x%08X", magic))
        }
        var shape: [Int] = []
        var r = ByteReader(try EMCError.locating(file: path) { try reader.readExactly(count: 4 * dimensions) }, bigEndian: true)
        for d in 0..<dimensions {
            let n = Int(try r.u32())
            guard n > 0 && n <= 1 << 30 else {
                throw EMCError(.format, "IDX dimension \(d) is \(n)", file: path, place: .offset(4 + 4 * d))
            }
            shape.append(n)
        }
        guard let total = checkedProduct(shape), total <= 1 << 34 else {
            throw EMCError(.format, "IDX dimensions \(shape) describe an implausibly large array", file: path, place: .offset(4))
        }
        let headerSize = 4 + 4 * dimensions
        let recordSize = max(1, total / shape[0])
        func cutShort(after got: Int) -> EMCError {
            EMCError(.truncated, "IDX data ends early, in record \(got / recordSize) of \(shape[0])", file: path,
                     place: .record(got / recordSize), expected: "\(total) bytes of data", found: "\(got)")
        }
        // A plain file says at once whether it holds the declared array; a gzip stream is read in pieces.
        if let plainSize = (reader.source as? FileSequentialReader)?.file.size, plainSize - headerSize < total {
            throw cutShort(after: max(0, plainSize - headerSize))
        }
        let values: [UInt8]
        do { values = try reader.readExactly(count: total) } catch let e as EMCError where e.kind == .truncated {
            throw cutShort(after: reader.position - headerSize)
        }
        guard try reader.atEnd() else {
            throw EMCError(.format, "extra bytes after the \(shape[0]) records the header declares", file: path, place: .offset(headerSize + total))
        }
        return (shape, values, reader.hex)
    }

    /// Reads a pair of image and label files into samples (28×28×1 for MNIST-like sets).
    public static func load(images imagesPath: String, labels labelsPath: String) throws -> LabeledSamples {
        try loadWithChecksums(images: imagesPath, labels: labelsPath).samples
    }

    /// As `load`, also returning the MD5 of each file's decompressed content (images, labels).
    public static func loadWithChecksums(images imagesPath: String, labels labelsPath: String) throws
        -> (samples: LabeledSamples, imagesMD5: String, labelsMD5: String) {
        let images = try read(path: imagesPath, dimensions: 3)
        let labels = try read(path: labelsPath, dimensions: 1)
        guard images.shape[0] == labels.shape[0] else {
            throw EMCError(.format, "image and label files disagree on the sample count", file: labelsPath,
                           expected: "\(images.shape[0]) labels (as in \(FileSystem.baseName(imagesPath)))", found: "\(labels.shape[0])")
        }
        let schema = SampleSchema.image(height: images.shape[1], width: images.shape[2], channels: 1)
        return (LabeledSamples(schema: schema, data: images.values, labels: labels.values.map { UInt32($0) }),
                images.contentMD5, labels.contentMD5)
    }

    /// Builds IDX bytes (for tests and fixtures).
    public static func encode(shape: [Int], values: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, unsignedByte, UInt8(shape.count)]
        for d in shape { out += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
        return out + values
    }
}
