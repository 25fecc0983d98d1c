import EMCCore

/// `emc doctor`'s checks of the shard codecs' native libraries: a round trip through each.
public enum CodecLibraries {
    public static func checks() -> [LibraryCheck] {
        [
            LibraryCheck.run("liblz4", LZ4.version) {
                let input = LibraryCheck.sampleBytes
                let packed = try LZ4.compress(input)
                guard try LZ4.decompress(packed, count: input.count) == input else { throw LibraryCheck.mismatch("LZ4 round trip") }
                return "round trip \(input.count) → \(packed.count) bytes"
            },
            LibraryCheck.run("libzstd", Zstd.version) {
                let input = LibraryCheck.sampleBytes
                let zstd = try Zstd()
                let packed = try zstd.compress(input, level: 1)
                guard try zstd.decompress(packed, count: input.count) == input else { throw LibraryCheck.mismatch("zstd round trip") }
                return "round trip \(input.count) → \(packed.count) bytes"
            },
        ]
    }
}
