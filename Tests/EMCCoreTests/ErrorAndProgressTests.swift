import EMCCore
import Foundation
import Testing

@Suite("Errors, progress and files")
struct ErrorAndProgressTests {
    @Test("an error names the file, the place, what was expected and what was found")
    func errorDescription() {
        let e = EMCError(.format, "wrong magic number", file: "train-images.idx", place: .offset(0),
                         expected: "0x00000803", found: "0x00000801")
        #expect(e.description == "train-images.idx: byte offset 0: format: wrong magic number (expected 0x00000803, found 0x00000801)")
        let chunk = EMCError(.checksum, "chunk CRC mismatch", file: "train-00000.emcs", place: .chunk(3, samples: 300..<400))
        #expect(chunk.description.contains("chunk 3 (samples 300..<400)"))
        #expect(EMCError(.missing, "no such split").at(file: "x").description == "x: no such split")
    }

    @Test("progress renders a bar with count, percent, rate and ETA")
    func progressLine() {
        let line = ProgressReporter.render(label: "convert", completed: 500, total: 1000, unit: "samples", elapsed: 2, bar: true)
        #expect(line.contains("[############------------]"))
        #expect(line.contains("500/1000 samples (50%)"))
        #expect(line.contains("ETA 2.0s"))
        #expect(line.contains("250 samples/s"))
        let plain = ProgressReporter.render(label: "scan", completed: 1500, total: nil, unit: "rows", elapsed: 1, bar: false)
        #expect(plain == "scan  1500 rows  1.5k rows/s  1.0s")
    }

    @Test("quiet progress prints nothing; plain progress ends with one line")
    func progressStyles() {
        final class Sink: @unchecked Sendable { var text = ""; let lock = NSLock() }
        let sink = Sink()
        let quiet = ProgressReporter("x", total: 10, quiet: true, output: { s in sink.lock.lock(); sink.text += s; sink.lock.unlock() })
        quiet.advance(by: 10)
        quiet.finish()
        #expect(sink.text.isEmpty)
        let bar = ProgressReporter("y", total: 10, style: .bar, output: { s in sink.lock.lock(); sink.text += s; sink.lock.unlock() })
        bar.advance(by: 10)
        bar.finish()
        #expect(sink.text.hasSuffix("\n"))
        #expect(sink.text.contains("10/10"))
    }

    @Test("atomic writes leave no partial file under the final name")
    func atomicWrite() throws {
        let dir = "/tmp/emc-core-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileSystem.createDirectory(dir)
        let path = dir + "/out.bin"
        let writer = try AtomicFileWriter(path: path)
        try writer.write([1, 2, 3])
        #expect(!FileSystem.exists(path))
        writer.discard()
        #expect(!FileSystem.exists(path))
        #expect(try FileSystem.list(dir).isEmpty)
        try AtomicFileWriter.write([4, 5, 6], to: path)
        #expect(try ReadableFile.contents(of: path) == [4, 5, 6])
        #expect(try FileSystem.list(dir) == ["out.bin"])
        unlink(path)
        rmdir(dir)
    }

    @Test("reading past the end is a truncation error that names the file and offset")
    func truncatedRead() throws {
        let path = "/tmp/emc-core-trunc-\(getpid())"
        try AtomicFileWriter.write([1, 2, 3, 4], to: path)
        defer { unlink(path) }
        let file = try ReadableFile(path: path)
        #expect(throws: EMCError.self) { try file.read(count: 8, at: 0) }
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try file.read(count: 8, at: 2) })
            #expect(e.kind == .truncated)
            #expect(e.file == path)
            #expect(e.place == .offset(4))
        }
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try ReadableFile(path: path + ".missing") })
            #expect(e.kind == .missing)
            #expect(e.description.contains("No such file"))
        }
    }
}
