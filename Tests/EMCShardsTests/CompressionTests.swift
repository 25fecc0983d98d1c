import EMCCore
import EMCShards
import Testing

@Suite("LZ4 and zstd wrappers")
struct CompressionTests {
    static let data: [UInt8] = (0..<200_000).map { UInt8(truncatingIfNeeded: ($0 / 3) ^ ($0 >> 9)) }

    @Test("LZ4 round trip, empty input included")
    func lz4() throws {
        let packed = try LZ4.compress(Self.data)
        #expect(packed.count < Self.data.count)
        #expect(try LZ4.decompress(packed, count: Self.data.count) == Self.data)
        #expect(try LZ4.decompress(LZ4.compress([]), count: 0) == [])
    }

    @Test("LZ4: corrupt or wrong-size data is an error, never an overrun")
    func lz4Bad() throws {
        let packed = try LZ4.compress(Self.data)
        #expect(throws: EMCError.self) { _ = try LZ4.decompress(packed, count: Self.data.count - 1) }
        #expect(throws: EMCError.self) { _ = try LZ4.decompress(packed, count: Self.data.count + 1) }
        #expect(throws: EMCError.self) { _ = try LZ4.decompress(Array(packed[..<(packed.count / 2)]), count: Self.data.count) }
    }

    @Test("zstd round trip at several levels with a reused context")
    func zstd() throws {
        let z = try Zstd()
        for level: Int32 in [1, 3, 9] {
            let packed = try z.compress(Self.data, level: level)
            #expect(try z.decompress(packed, count: Self.data.count) == Self.data)
        }
    }

    @Test("zstd: corrupt or wrong-size data is an error")
    func zstdBad() throws {
        let z = try Zstd()
        var packed = try z.compress(Self.data, level: 1)
        #expect(throws: EMCError.self) { _ = try z.decompress(packed, count: Self.data.count - 1) }
        #expect(throws: EMCError.self) { _ = try z.decompress(Array(packed[..<10]), count: Self.data.count) }
        packed[0] ^= 0xFF  // the frame magic
        #expect(throws: EMCError.self) { _ = try z.decompress(packed, count: Self.data.count) }
    }

    @Test("a codec level is for zstd only, and within 1...19", arguments: ["lz4:5", "none:3", "lz4-delta:1", "zstd:0", "zstd-delta:20", "brotli"])
    func badCodecSpecs(text: String) throws {
        let e = #expect(throws: EMCError.self) { _ = try CodecSpec(parsing: text) }
        #expect(e?.kind == .invalidArgument)
        #expect(try CodecSpec(parsing: "zstd-delta:3") == CodecSpec(codec: .zstd, delta: true, level: 3))
    }
}
