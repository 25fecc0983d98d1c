import EMCCore
import EMCFormats
import EMCTestSupport
import Testing

/// IDX image and label files for `count` 4×3 images.
func idxPair(count: Int, labelCount: Int? = nil) -> (images: [UInt8], labels: [UInt8]) {
    let pixels = (0..<(count * 12)).map { UInt8(truncatingIfNeeded: $0 * 3) }
    return (IDX.encode(shape: [count, 4, 3], values: pixels),
            IDX.encode(shape: [labelCount ?? count], values: (0..<(labelCount ?? count)).map { UInt8($0 % 10) }))
}

/// One CIFAR-10 record: label, then planar R, G, B planes with recognisable values.
func cifar10Record(label: UInt8, seed: Int) -> [UInt8] {
    [label] + (0..<3072).map { UInt8(truncatingIfNeeded: seed * 7 + $0 / 1024 * 50 + $0 % 1024) }
}

@Suite("IDX, CIFAR and tar decoders")
struct DecoderTests {
    @Test("IDX reads raw and gzip files, images with labels")
    func idxGood() throws {
        let dir = TemporaryDirectory()
        let (images, labels) = idxPair(count: 5)
        try AtomicFileWriter.write(images, to: dir.file("img"))
        try AtomicFileWriter.write(try Zlib.gzip(labels), to: dir.file("lbl.gz"))
        let samples = try IDX.load(images: dir.file("img"), labels: dir.file("lbl.gz"))
        #expect(samples.count == 5)
        #expect(samples.schema == .image(height: 4, width: 3, channels: 1))
        #expect(Array(samples.sample(1)) == (12..<24).map { UInt8(truncatingIfNeeded: $0 * 3) })
        #expect(samples.labels == [0, 1, 2, 3, 4])
    }

    @Test("IDX with the wrong magic names the file, the offset and both magics")
    func idxWrongMagic() throws {
        let dir = TemporaryDirectory()
        let (images, labels) = idxPair(count: 2)
        try AtomicFileWriter.write(labels, to: dir.file("swapped"))
        do {
            _ = try IDX.read(path: dir.file("swapped"), dimensions: 3)
            Issue.record("wrong magic accepted")
        } catch let e as EMCError {
            #expect(e.kind == .format)
            #expect(e.file == dir.file("swapped"))
            #expect(e.expected == "0x00000803" && e.found == "0x00000801")
        }
        _ = images
    }

    @Test("IDX: truncated .gz, cut data, extra bytes, empty file and count mismatch are clear errors")
    func idxBad() throws {
        let dir = TemporaryDirectory()
        let (images, labels) = idxPair(count: 50)
        let gz = try Zlib.gzip(images)
        try AtomicFileWriter.write(Array(gz[..<(gz.count / 2)]), to: dir.file("cut.gz"))
        #expect(throws: EMCError.self) { _ = try IDX.read(path: dir.file("cut.gz"), dimensions: 3) }
        try AtomicFileWriter.write(Array(images[..<(images.count - 100)]), to: dir.file("short"))
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try IDX.read(path: dir.file("short"), dimensions: 3) })
            #expect(e.kind == .truncated)
            #expect(e.place == .record(41))
        }
        try AtomicFileWriter.write(images + [1, 2, 3], to: dir.file("long"))
        #expect(throws: EMCError.self) { _ = try IDX.read(path: dir.file("long"), dimensions: 3) }
        try AtomicFileWriter.write([], to: dir.file("empty"))
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try IDX.read(path: dir.file("empty"), dimensions: 1) })
            #expect(e.description.contains("empty file"))
        }
        try AtomicFileWriter.write(images, to: dir.file("img"))
        try AtomicFileWriter.write(idxPair(count: 50, labelCount: 49).labels, to: dir.file("lbl"))
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try IDX.load(images: dir.file("img"), labels: dir.file("lbl")) })
            #expect(e.description.contains("disagree"))
            #expect(e.expected?.contains("50") == true && e.found == "49")
        }
        _ = labels
    }

    @Test("IDX dimensions whose product overflows are a clear error, not a trap")
    func idxOverflow() throws {
        let dir = TemporaryDirectory()
        var header: [UInt8] = [0, 0, 8, 3]
        for _ in 0..<3 { header += [0x3F, 0xFF, 0xFF, 0xFF] }  // three dimensions of 2^30 − 1
        try AtomicFileWriter.write(header, to: dir.file("huge"))
        do { _ = try IDX.read(path: dir.file("huge"), dimensions: 3); Issue.record("accepted") } catch let e as EMCError {
            #expect(e.kind == .format && e.description.contains("implausibly large"))
        }
    }

    @Test("CIFAR-10 from a .tar.gz: planar records become interleaved pixels; names come from batches.meta.txt")
    func cifarTarGz() throws {
        let dir = TemporaryDirectory()
        let train = cifar10Record(label: 3, seed: 1) + cifar10Record(label: 9, seed: 2)
        let test = cifar10Record(label: 0, seed: 3)
        let names = Array("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n".utf8)
        let tar = makeTar([("cifar-10-batches-bin/batches.meta.txt", names), ("cifar-10-batches-bin/data_batch_1.bin", train),
                           ("cifar-10-batches-bin/test_batch.bin", test)])
        try AtomicFileWriter.write(try Zlib.gzip(tar), to: dir.file("cifar.tar.gz"))
        let decoded = try CIFAR.decode(source: dir.file("cifar.tar.gz"), variant: .cifar10,
                                       files: ["train": ["data_batch_1.bin"], "test": ["test_batch.bin"]], nameFiles: ["batches.meta.txt"])
        let t = decoded.splits["train"]!
        #expect(t.count == 2 && t.labels == [3, 9])
        #expect(decoded.splits["test"]!.labels == [0])
        #expect(decoded.classes.names[3] == "cat")
        // Pixel (x=5, y=2) of record 0: planar index 2*32+5 = 69 in each plane.
        let i = (2 * 32 + 5) * 3
        #expect(Array(t.sample(0)[i..<(i + 3)]) == [train[1 + 69], train[1 + 1024 + 69], train[1 + 2048 + 69]])
    }

    @Test("CIFAR-100 from a folder keeps coarse labels and checks they are consistent")
    func cifar100Folder() throws {
        let dir = TemporaryDirectory()
        func record(_ coarse: UInt8, _ fine: UInt8) -> [UInt8] { [coarse, fine] + [UInt8](repeating: fine, count: 3072) }
        try AtomicFileWriter.write(record(4, 30) + record(1, 2), to: dir.file("train.bin"))
        try AtomicFileWriter.write(record(4, 30), to: dir.file("test.bin"))
        let decoded = try CIFAR.decode(source: dir.path, variant: .cifar100, files: ["train": ["train.bin"], "test": ["test.bin"]], nameFiles: [])
        #expect(decoded.splits["train"]!.labels == [30, 2])
        #expect(decoded.classes.coarseOfFine?[30] == 4 && decoded.classes.coarseOfFine?[2] == 1)
        try AtomicFileWriter.write(record(4, 30) + record(5, 30), to: dir.file("train.bin"))
        #expect(throws: EMCError.self) {
            _ = try CIFAR.decode(source: dir.path, variant: .cifar100, files: ["train": ["train.bin"]], nameFiles: [])
        }
    }

    @Test("CIFAR: a size that is not whole records, an empty file, a missing split file, a truncated tar")
    func cifarBad() throws {
        let dir = TemporaryDirectory()
        let files = ["train": ["data_batch_1.bin"], "test": ["test_batch.bin"]]
        try AtomicFileWriter.write(cifar10Record(label: 1, seed: 1) + [1, 2, 3], to: dir.file("data_batch_1.bin"))
        try AtomicFileWriter.write(cifar10Record(label: 1, seed: 1), to: dir.file("test_batch.bin"))
        do {
            _ = try CIFAR.decode(source: dir.path, variant: .cifar10, files: files, nameFiles: [])
            Issue.record("partial record accepted")
        } catch let e as EMCError {
            #expect(e.place == .record(1))
            #expect(e.file == "data_batch_1.bin")
        }
        try AtomicFileWriter.write([], to: dir.file("data_batch_1.bin"))
        #expect(throws: EMCError.self) { _ = try CIFAR.decode(source: dir.path, variant: .cifar10, files: files, nameFiles: []) }
        FileSystem.remove(dir.file("data_batch_1.bin"))
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try CIFAR.decode(source: dir.path, variant: .cifar10, files: files, nameFiles: []) })
            #expect(e.kind == .missing)
            #expect(e.description.contains("data_batch_1.bin"))
        }
        let tar = makeTar([("data_batch_1.bin", cifar10Record(label: 1, seed: 1)), ("test_batch.bin", cifar10Record(label: 2, seed: 2))])
        for cut in [100, 600, 3000, tar.count - 1024] {
            try AtomicFileWriter.write(try Zlib.gzip(Array(tar[..<cut])), to: dir.file("cut.tar.gz"))
            #expect(throws: EMCError.self, "tar cut at \(cut)") {
                _ = try CIFAR.decode(source: dir.file("cut.tar.gz"), variant: .cifar10, files: files, nameFiles: [])
            }
        }
        var corrupt = tar
        corrupt[10] ^= 0x40  // inside the first header's name: its checksum no longer matches
        try AtomicFileWriter.write(corrupt, to: dir.file("bad.tar"))
        #expect(throws: EMCError.self) { _ = try CIFAR.decode(source: dir.file("bad.tar"), variant: .cifar10, files: files, nameFiles: []) }
    }
}
