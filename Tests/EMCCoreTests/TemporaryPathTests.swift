import EMCCore
import EMCTestSupport
import Foundation
import Testing

/// Temporary files and folders are made fresh and private, and no removal follows a link.
@Suite("Temporary paths and removal")
struct TemporaryPathTests {
    @Test("removeTree removes a link inside the tree, not what it points to; a tree that is itself a link loses only the link")
    func removeTreeKeepsLinkTargets() throws {
        let dir = TemporaryDirectory(), victim = TemporaryDirectory()
        try AtomicFileWriter.write(Array("precious".utf8), to: victim.file("data.txt"))
        try FileSystem.createDirectory(dir.file("tree/sub"))
        try AtomicFileWriter.write([1, 2, 3], to: dir.file("tree/sub/a.bin"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("tree/sub/link"), withDestinationPath: victim.path)
        try FileManager.default.createSymbolicLink(atPath: dir.file("tree/filelink"), withDestinationPath: victim.file("data.txt"))
        FileSystem.removeTree(dir.file("tree"))
        #expect(!FileSystem.exists(dir.file("tree")))
        #expect(try ReadableFile.contents(of: victim.file("data.txt")) == Array("precious".utf8))
        try FileManager.default.createSymbolicLink(atPath: dir.file("alias"), withDestinationPath: victim.path)
        FileSystem.removeTree(dir.file("alias"))
        #expect(!FileSystem.exists(dir.file("alias")) && FileSystem.exists(victim.file("data.txt")))
    }

    @Test("an atomic write never opens a file or link planted under its old predictable temporary name")
    func atomicWriterIgnoresPlantedNames() throws {
        let dir = TemporaryDirectory(), victim = TemporaryDirectory()
        try AtomicFileWriter.write(Array("precious".utf8), to: victim.file("data.txt"))
        try FileManager.default.createSymbolicLink(atPath: dir.file(".out.json.tmp-\(getpid())"), withDestinationPath: victim.file("data.txt"))
        try AtomicFileWriter.write(Array("new".utf8), to: dir.file("out.json"))
        #expect(try ReadableFile.contents(of: dir.file("out.json")) == Array("new".utf8))
        #expect(try ReadableFile.contents(of: victim.file("data.txt")) == Array("precious".utf8))
        // Each writer's temporary is a new name: two writers of one path in one process do not share it.
        let a = try AtomicFileWriter(path: dir.file("x")), b = try AtomicFileWriter(path: dir.file("x"))
        #expect(a.temporaryPath != b.temporaryPath)
        a.discard(); b.discard()
        // A killed writer's temporary (a process that is gone) is still recognised and cleared.
        try AtomicFileWriter.write([0], to: dir.file(".y.tmp-999999-abcd"))
        #expect(AtomicFileWriter.removeAbandonedTemporaries(in: dir.path).contains(".y.tmp-999999-abcd"))
    }

    @Test("temporary folders are new, private (0700) and never an existing path")
    func privateTemporaryFolders() throws {
        let parent = TemporaryDirectory()
        let a = try FileSystem.makeTemporaryDirectory(prefix: "emc-x", in: parent.path)
        let b = try FileSystem.makeTemporaryDirectory(prefix: "emc-x", in: parent.path)
        #expect(a != b && a.hasPrefix(parent.path + "/emc-x-"))
        var info = stat()
        #expect(stat(a, &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    @Test("a FIFO or a device in place of a file is refused at once, not waited on")
    func nonRegularFiles() throws {
        let dir = TemporaryDirectory()
        #expect(mkfifo(dir.file("fifo"), 0o600) == 0)
        let e = #expect(throws: EMCError.self) { _ = try ReadableFile(path: dir.file("fifo")) }
        #expect(e?.message.contains("not a regular file") == true)
        #expect(throws: EMCError.self) { _ = try ReadableFile(path: "/dev/null") }
        #expect(FileSystem.isPlainName("a.emcs") && !FileSystem.isPlainName("../a") && !FileSystem.isPlainName("/etc/passwd")
                && !FileSystem.isPlainName("..") && !FileSystem.isPlainName("") && !FileSystem.isPlainName("a\nb"))
    }
}
