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

@Suite("SHA-256 and MD5")
struct DigestTests {
    @Test("SHA-256 known answers (FIPS 180-4 examples)")
    func sha256() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var h = SHA256()
        let million = [UInt8](repeating: 0x61, count: 1_000_000)
        for piece in stride(from: 0, to: million.count, by: 999) { h.update(Array(million[piece..<min(million.count, piece + 999)])) }
        #expect(hexString(h.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("MD5 known answers (RFC 1321 test suite)")
    func md5() {
        #expect(MD5.hex([]) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(MD5.hex(Array("abc".utf8)) == "900150983cd24fb0d6963f7d28e17f72")
        #expect(MD5.hex(Array("12345678901234567890123456789012345678901234567890123456789012345678901234567890".utf8))
                == "57edf4a22be3c955ac49da2e2107b67a")
    }
}

@Suite("Byte-delta filter")
struct ByteDeltaTests {
    @Test("decode undoes encode for strides 1 to 4 and beyond, at every length around the 16-byte block", arguments: [1, 2, 3, 4, 5, 7])
    func roundTrip(stride: Int) {
        let seed: UInt64 = 31
        let rng = CounterRNG(seed: seed, stream: .test)
        for n in [0, 1, stride, 15, 16, 17, 31, 32, 33, 100, 4099] {
            let raw = (0..<n).map { UInt8(truncatingIfNeeded: rng.word(UInt64($0 + n * 10_000))) }
            var encoded = [UInt8](repeating: 0, count: n)
            raw.withUnsafeBytes { s in encoded.withUnsafeMutableBytes { ByteDelta.encode(s, into: $0, stride: stride) } }
            for i in 0..<n { #expect(encoded[i] == (i < stride ? raw[i] : raw[i] &- raw[i - stride])) }
            encoded.withUnsafeMutableBytes { ByteDelta.decode($0, stride: stride) }
            #expect(encoded == raw, "stride \(stride), n \(n), seed \(seed)")
        }
    }
}
