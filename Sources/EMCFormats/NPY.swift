import Foundation
import EMCCore

/// NumPy's `.npy` format (versions 1.0, 2.0 and 3.0): magic `\x93NUMPY`, a version, a little-endian header
/// length (u16 in 1.0, u32 after), a Python dict literal with 'descr', 'fortran_order' and 'shape', then the data.
public enum NPY {
    public struct Header: Sendable, Equatable {
        /// e.g. "|u1", "<i8".
        public var descr: String
        public var fortranOrder: Bool
        public var shape: [Int]
        /// Element count (checked at parse: the shape's product fits).
        public var count: Int { checkedProduct(shape) ?? 0 }

        /// Bytes per element, and whether it is an integer type emc reads.
        var element: (size: Int, signed: Bool)? {
            guard descr.count >= 3 else { return nil }
            let order = descr.first!, kind = descr[descr.index(after: descr.startIndex)]
            guard order == "<" || order == "|", kind == "u" || kind == "i", let size = Int(descr.dropFirst(2)), [1, 2, 4, 8].contains(size) else { return nil }
            return (size, kind == "i")
        }
    }

    /// Reads the header from the start of a stream; the stream is left at the first data byte.
    public static func readHeader(_ reader: SequentialReader) throws -> Header {
        let magic = try EMCError.locating(file: reader.path) { try reader.readExactly(count: 8) }
        guard Array(magic[0..<6]) == [0x93] + Array("NUMPY".utf8) else {
            throw EMCError(.format, "not a .npy array (bad magic)", file: reader.path, place: .offset(0))
        }
        let major = magic[6]
        let headerLength: Int
        switch major {
        case 1:
            let b = try reader.readExactly(count: 2)
            headerLength = Int(b[0]) | Int(b[1]) << 8
        case 2, 3:
            let b = try reader.readExactly(count: 4)
            headerLength = Int(b[0]) | Int(b[1]) << 8 | Int(b[2]) << 16 | Int(b[3]) << 24
        default:
            throw EMCError(.unsupported, ".npy format version \(major).\(magic[7]) (emc reads 1.0 to 3.0)", file: reader.path, place: .offset(6))
        }
        guard headerLength < 1 << 20 else { throw EMCError(.format, ".npy header of \(headerLength) bytes is implausible", file: reader.path) }
        let text = String(decoding: try reader.readExactly(count: headerLength), as: UTF8.self)
        return try parseHeader(text, file: reader.path)
    }

    /// Parses the dict literal, e.g. `{'descr': '|u1', 'fortran_order': False, 'shape': (10, 28, 28), }`.
    static func parseHeader(_ text: String, file: String) throws -> Header {
        func value(_ key: String) -> Substring? {
            guard let r = text.range(of: "'\(key)'") else { return nil }
            var rest = text[r.upperBound...].drop { $0 == " " || $0 == ":" }
            if rest.first == "(" {
                guard let close = rest.firstIndex(of: ")") else { return nil }
                return rest[rest.startIndex...close]
            }
            rest = rest.prefix { $0 != "," && $0 != "}" }
            return rest
        }
        guard let d = value("descr"), let f = value("fortran_order"), let s = value("shape") else {
            throw EMCError(.format, ".npy header lacks descr, fortran_order or shape: \(text.prefix(80))", file: file)
        }
        let descr = d.trimmingCharacters(in: CharacterSet(charactersIn: "' "))
        let shape = try s.trimmingCharacters(in: CharacterSet(charactersIn: "() ")).split(separator: ",").compactMap { part -> Int? in
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { return nil }
            guard let n = Int(t), n >= 0 else { throw EMCError(.format, ".npy shape \(s) is not a tuple of sizes", file: file) }
            return n
        }
        guard let total = checkedProduct(shape), total <= 1 << 40 else {
            throw EMCError(.format, ".npy shape \(shape) describes an implausibly large array", file: file)
        }
        _ = total
        return Header(descr: descr, fortranOrder: f.trimmingCharacters(in: .whitespaces) == "True", shape: shape)
    }

    /// Reads an array of unsigned bytes (`|u1` or `<u1`), C order.
    public static func readBytes(_ reader: SequentialReader, header: Header) throws -> [UInt8] {
        guard header.descr == "|u1" || header.descr == "<u1" else {
            throw EMCError(.unsupported, describeUnsupported(header.descr, wanted: "uint8 images"), file: reader.path)
        }
        guard !header.fortranOrder else { throw EMCError(.unsupported, "Fortran-ordered arrays (save with C order)", file: reader.path) }
        guard header.count <= 1 << 36 else { throw EMCError(.format, "array of \(header.count) values is implausibly large", file: reader.path) }
        do { return try reader.readExactly(count: header.count) } catch let e as EMCError where e.kind == .truncated {
            throw EMCError(.truncated, "array data ends early", file: reader.path, expected: "\(header.count) bytes")
        }
    }

    /// Reads an integer array (any little-endian signed or unsigned width) as labels.
    public static func readLabels(_ reader: SequentialReader, header: Header) throws -> [Int64] {
        guard let (size, signed) = header.element else {
            throw EMCError(.unsupported, describeUnsupported(header.descr, wanted: "integer labels"), file: reader.path)
        }
        guard header.shape.count == 1 || (header.shape.count == 2 && header.shape[1] == 1) else {
            throw EMCError(.format, "labels must be one value per sample, shape is \(header.shape)", file: reader.path)
        }
        guard header.count <= 1 << 36 else { throw EMCError(.format, "label array of \(header.count) values is implausibly large", file: reader.path) }
        let bytes = try reader.readExactly(count: header.count * size)
        return (0..<header.count).map { i in
            var v: UInt64 = 0
            for b in 0..<size { v |= UInt64(bytes[i * size + b]) << (8 * UInt64(b)) }
            if signed && size < 8 && v >> (8 * UInt64(size) - 1) == 1 { v |= ~0 << (8 * UInt64(size)) }
            return Int64(bitPattern: v)
        }
    }

    static func describeUnsupported(_ descr: String, wanted: String) -> String {
        if descr.hasPrefix(">") { return "big-endian dtype '\(descr)'; emc reads little-endian \(wanted) (convert with arr.astype(arr.dtype.newbyteorder('<')))" }
        if descr.contains("O") { return "object dtype '\(descr)' (pickled Python objects); emc reads plain \(wanted)" }
        return "dtype '\(descr)'; emc reads \(wanted)"
    }

    /// Builds .npy bytes (for tests and fixtures).
    public static func encode(descr: String, shape: [Int], data: [UInt8], version: UInt8 = 1) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let prefix = version == 1 ? 10 : 12
        while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        let n = header.utf8.count
        out += version == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
        return out + Array(header.utf8) + data
    }
}
