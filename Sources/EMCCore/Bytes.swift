/// Appends little-endian integers to a byte array: how emc writes binary headers.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    public mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    public mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    public mutating func raw(_ v: [UInt8]) { bytes.append(contentsOf: v) }
    public mutating func ascii(_ s: String) { bytes.append(contentsOf: Array(s.utf8)) }
}

/// The product of sizes read from a file, or nil when it overflows (a damaged or hostile header).
public func checkedProduct<S: Sequence>(_ sizes: S) -> Int? where S.Element == Int {
    var total = 1
    for n in sizes {
        guard n >= 0 else { return nil }
        let (p, overflow) = total.multipliedReportingOverflow(by: n)
        if overflow { return nil }
        total = p
    }
    return total
}

/// Reads integers from a byte array with bounds checks: a short buffer is an error, never a crash.
public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int
    /// Big-endian (IDX, tar sizes) or little-endian (emc's own format).
    public let bigEndian: Bool

    public init(_ bytes: [UInt8], offset: Int = 0, bigEndian: Bool = false) {
        self.bytes = bytes
        self.offset = offset
        self.bigEndian = bigEndian
    }

    public var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, offset + n <= bytes.count else {
            throw EMCError(.truncated, "structure ends early", place: .offset(offset),
                           expected: "\(n) more bytes", found: "\(bytes.count - offset)")
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    private mutating func integer(_ n: Int) throws -> UInt64 {
        let s = try take(n)
        var v: UInt64 = 0
        if bigEndian { for b in s { v = v << 8 | UInt64(b) } } else { for b in s.reversed() { v = v << 8 | UInt64(b) } }
        return v
    }

    public mutating func u8() throws -> UInt8 { UInt8(try integer(1)) }
    public mutating func u16() throws -> UInt16 { UInt16(try integer(2)) }
    public mutating func u32() throws -> UInt32 { UInt32(try integer(4)) }
    public mutating func u64() throws -> UInt64 { try integer(8) }
    /// A u64 size or offset as Int: a value no file can hold (≥ 2^63) is a format error, not a trap.
    public mutating func u64Int() throws -> Int {
        let at = offset
        let v = try integer(8)
        guard let n = Int(exactly: v) else { throw EMCError(.format, "size or offset \(v) is impossible", place: .offset(at)) }
        return n
    }
    public mutating func raw(_ n: Int) throws -> [UInt8] { Array(try take(n)) }
    public mutating func skip(_ n: Int) throws { _ = try take(n) }
}

extension UnsafeRawBufferPointer {
    /// Little-endian integer at `offset` (caller checked bounds).
    @inline(__always)
    public func le<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
