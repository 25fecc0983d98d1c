import CEMCKernels

/// CRC32C (Castagnoli), the checksum of every shard chunk, index and file.
///
/// Uses the SSE4.2 `crc32` instruction (three interleaved streams) when the CPU has it and
/// slicing-by-8 otherwise; both give the same value. `CRC32C.checksum("123456789")` is 0xE3069283.
public struct CRC32C: Sendable, Equatable {
    /// The checksum of everything fed so far.
    public private(set) var value: UInt32 = 0

    public init() {}

    /// Feeds more bytes; the result equals the checksum of all bytes fed, in order.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        value = emc_crc32c(value, base, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    public static func checksum(_ string: String) -> UInt32 {
        checksum(Array(string.utf8))
    }

    /// The table-driven path alone, for tests and benchmarks.
    public static func softwareChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        return emc_crc32c_software(0, base, bytes.count)
    }

    /// Whether `checksum` runs on the CPU's crc32 instruction.
    public static var usesHardware: Bool { emc_crc32c_is_hardware() != 0 }
}
