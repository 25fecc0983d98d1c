#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// POSIX errors as sentences: "No such file or directory".
func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// A file opened for reading with positioned reads (`pread`), safe to share between threads.
/// The corresponding C functions are `open`, `pread`, `fstat` and `close`.
public final class ReadableFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw EMCError(code == ENOENT ? .missing : .io, "cannot open: \(errnoText(code))", file: path)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let text = errnoText()
            close(fd)
            throw EMCError(.io, "cannot stat: \(text)", file: path)
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw EMCError(.format, "is a directory, expected a file", file: path)
        }
        self.fd = fd
        self.size = Int(info.st_size)
    }

    deinit { close(fd) }

    /// Reads exactly `buffer.count` bytes at `offset`; fewer bytes (end of file) is a `.truncated` error.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw EMCError(.io, "read failed: \(errnoText())", file: path, place: .offset(offset + done))
            }
            if n == 0 {
                throw EMCError(.truncated, "file ends early", file: path, place: .offset(offset + done),
                               expected: "\(buffer.count) bytes", found: "\(done)")
            }
            done += n
        }
    }

    /// Reads `count` bytes at `offset` into a new array.
    public func read(count: Int, at offset: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset)
            initialized = count
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns how many (0 at end of file).
    public func readSome(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        while true {
            let n = pread(fd, buffer.baseAddress!, buffer.count, off_t(offset))
            if n >= 0 { return n }
            if errno != EINTR {
                throw EMCError(.io, "read failed: \(errnoText())", file: path, place: .offset(offset))
            }
        }
    }

    /// The whole file.
    public func readAll() throws -> [UInt8] { try read(count: size, at: 0) }

    /// The whole file at `path`.
    public static func contents(of path: String) throws -> [UInt8] { try ReadableFile(path: path).readAll() }
}

/// Writes a file under a temporary name in the same folder, then flushes and renames it into
/// place, so a reader (or a rerun after a crash) sees either the old file or the complete new
/// one, never a partial file under the final name.
/// The corresponding C functions are `open`, `write`, `fsync` and `rename`.
public final class AtomicFileWriter {
    public let path: String
    public let temporaryPath: String
    public private(set) var bytesWritten = 0
    private var fd: Int32
    private var finished = false

    public init(path: String) throws {
        self.path = path
        let (dir, name) = splitPath(path)
        self.temporaryPath = (dir.isEmpty ? "" : dir + "/") + ".\(name).tmp-\(getpid())"
        let fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw EMCError(.io, "cannot create: \(errnoText())", file: temporaryPath)
        }
        self.fd = fd
    }

    deinit {
        if !finished { discard() }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc_write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw EMCError(.io, "write failed: \(errnoText())", file: temporaryPath, place: .offset(bytesWritten + done))
            }
            done += n
        }
        bytesWritten += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Flushes to disk and renames the file into place.
    public func commit() throws {
        guard !finished else { return }
        guard fsync(fd) == 0 else { throw EMCError(.io, "fsync failed: \(errnoText())", file: temporaryPath) }
        close(fd)
        fd = -1
        guard rename(temporaryPath, path) == 0 else {
            let text = errnoText()
            unlink(temporaryPath)
            finished = true
            throw EMCError(.io, "cannot rename into place: \(text)", file: path)
        }
        finished = true
        syncDirectory(of: path)
    }

    /// Abandons the file: the temporary is removed and the final name untouched.
    public func discard() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(temporaryPath)
        finished = true
    }

    /// Removes the temporaries that killed writers left in `directory` (`.NAME.tmp-PID` whose process is gone) and
    /// returns their names. A temporary of a process still running (another writer) is left alone.
    @discardableResult
    public static func removeAbandonedTemporaries(in directory: String) -> [String] {
        guard let names = try? FileSystem.list(directory) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(".") {
            guard let mark = name.range(of: ".tmp-", options: .backwards), let pid = Int32(name[mark.upperBound...]) else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                FileSystem.remove(FileSystem.join(directory, name))
                removed.append(name)
            }
        }
        return removed
    }

    /// Writes `bytes` to `path` atomically.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let writer = try AtomicFileWriter(path: path)
        try writer.write(bytes)
        try writer.commit()
    }
}

@inline(__always)
private func Glibc_write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }

func splitPath(_ path: String) -> (dir: String, name: String) {
    guard let slash = path.lastIndex(of: "/") else { return ("", path) }
    return (String(path[..<slash]), String(path[path.index(after: slash)...]))
}

/// Makes a rename durable by syncing its folder (best effort: some file systems refuse).
func syncDirectory(of path: String) {
    let dir = splitPath(path).dir
    let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd >= 0 { _ = fsync(fd); close(fd) }
}

/// Small file-system helpers with errors that name the path.
public enum FileSystem {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// `path` made absolute against the working directory (not resolving links: a shared filesystem's path as given).
    public static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return join(String(cString: cwd), path)
    }

    /// Appends `bytes` in one write (O_APPEND) and flushes them; creates the file if needed.
    public static func append(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EMCError(.io, "cannot open for appending: \(String(cString: strerror(errno)))", file: path) }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else { throw EMCError(.io, "cannot append: \(String(cString: strerror(errno)))", file: path) }
    }

    /// The absolute path with links, `.` and `..` resolved (as realpath(3)); the path itself when it does not exist.
    public static func canonicalPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates the folder and its parents; fine if it exists.
    public static func createDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw EMCError(.io, "cannot create folder: \(errnoText())", file: prefix)
            }
            prefix += "/"
        }
        guard isDirectory(path) else { throw EMCError(.io, "exists but is not a folder", file: path) }
    }

    /// The names in a folder, sorted, without "." and "..".
    public static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            let code = errno
            throw EMCError(code == ENOENT ? .missing : .io, "cannot list folder: \(errnoText(code))", file: path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public static func remove(_ path: String) { unlink(path) }

    /// Removes a folder and everything in it (scratch space of tests and benchmarks).
    public static func removeTree(_ path: String) {
        for name in (try? list(path)) ?? [] {
            let child = join(path, name)
            if isDirectory(child) { removeTree(child) } else { unlink(child) }
        }
        rmdir(path)
    }

    public static func fileSize(_ path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    /// `a/b` joined without doubling slashes.
    public static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty { return b }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }

    public static func baseName(_ path: String) -> String { splitPath(path).name }
    /// The folder part of `path` ("." when it has none).
    public static func splitDirectory(_ path: String) -> String { let d = splitPath(path).dir; return d.isEmpty ? (path.hasPrefix("/") ? "/" : ".") : d }
}
