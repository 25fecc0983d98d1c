import EMCCore
import Testing

@Suite("CRC32C")
struct CRC32CTests {
    @Test("known answer: \"123456789\" → 0xE3069283")
    func knownAnswer() {
        #expect(CRC32C.checksum("123456789") == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // RFC 3720 (iSCSI) B.4: 32 bytes of zeros → 0x8A9136AA, of 0xFF → 0x62A8AB43.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    }

    @Test("hardware and software paths agree at every length and alignment, incremental equals whole")
    func pathsAgree() {
        let seed: UInt64 = 77
        let rng = CounterRNG(seed: seed, stream: .test)
        // Long enough to cross the 3×4 KiB interleaved block several times.
        let bytes = (0..<40_000).map { UInt8(truncatingIfNeeded: rng.word(UInt64($0))) }
        for (start, length) in [(0, 40_000), (1, 12_289), (3, 24_575), (7, 100), (5, 0), (0, 12_288), (13, 36_900)] {
            let slice = Array(bytes[start..<(start + length)])
            let hw = CRC32C.checksum(slice)
            let sw = slice.withUnsafeBytes { CRC32C.softwareChecksum($0) }
            #expect(hw == sw, "start \(start) length \(length) seed \(seed)")
            var incremental = CRC32C()
            var offset = 0
            var step = 1
            while offset < slice.count {
                let end = min(slice.count, offset + step)
                incremental.update(Array(slice[offset..<end]))
                offset = end
                step = step * 3 + 1
            }
            #expect(incremental.value == hw)
        }
    }

    @Test("detects any single flipped bit")
    func detectsFlips() {
        var bytes = [UInt8](repeating: 0x5A, count: 4096)
        let clean = CRC32C.checksum(bytes)
        for bit in stride(from: 0, to: 4096 * 8, by: 97) {
            bytes[bit / 8] ^= UInt8(1 << (bit % 8))
            #expect(CRC32C.checksum(bytes) != clean)
            bytes[bit / 8] ^= UInt8(1 << (bit % 8))
        }
    }
}
