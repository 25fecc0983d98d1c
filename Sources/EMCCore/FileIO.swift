import CEMCKernels
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

    /// Opens a regular file. Anything else (a folder, a FIFO, a device, a socket) is refused at once: positioned
    /// reads need a file, and opening a FIFO without a writer would wait forever.
    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer (it is refused below).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
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
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR:
            close(fd)
            throw EMCError(.format, "is a directory, expected a file", file: path)
        default:
            close(fd)
            throw EMCError(.format, "is not a regular file (a pipe, FIFO, device or socket), expected a file", file: path)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        self.fd = fd
        self.size = Int(info.st_size)
    }

    /// Everything readable at `path`, which may also be a pipe (`<(zcat log.gz)`) read to its end; at most `limit` bytes.
    public static func stream(_ path: String, limit: Int = 1 << 34) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw EMCError(code == ENOENT ? .missing : .io, "cannot open: \(errnoText(code))", file: path)
        }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0 {
            switch info.st_mode & S_IFMT {
            case S_IFDIR: throw EMCError(.format, "is a directory, expected a file", file: path)
            case S_IFCHR, S_IFBLK: throw EMCError(.format, "is a device, expected a file or a pipe", file: path)
            default: break
            }
        }
        var bytes: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw EMCError(.io, "read failed: \(errnoText())", file: path, place: .offset(bytes.count))
            }
            if n == 0 { return bytes }
            guard bytes.count + n <= limit else {
                throw EMCError(.format, "is larger than \(limit) bytes", file: path)
            }
            bytes += block[..<n]
        }
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
        // A fresh name each time, created exclusively and never through a link: a file or link planted under a
        // predictable name (or another writer's temporary) is never opened, truncated or followed.
        var attempt = 0
        while true {
            let candidate = (dir.isEmpty ? "" : dir + "/") + ".\(name).tmp-\(getpid())-\(String(UInt32.random(in: .min ... .max), radix: 16))"
            let fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if fd >= 0 {
                self.temporaryPath = candidate
                self.fd = fd
                return
            }
            let code = errno
            attempt += 1
            if code != EEXIST || attempt >= 16 {
                throw EMCError(.io, "cannot create: \(errnoText(code))", file: candidate)
            }
        }
    }

    deinit {
        if !finished { discard() }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc_write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw EMCError(.io, "write failed: \(writeFailure(n < 0 ? errno : ENOSPC))", file: path, place: .offset(bytesWritten + done))
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
        guard fsync(fd) == 0 else { throw EMCError(.io, "fsync failed: \(writeFailure(errno))", file: path) }
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

    /// Removes the temporaries that killed writers left in `directory` (`.NAME.tmp-PID-TAG` whose process is gone) and
    /// returns their names. A temporary of a process still running (another writer) is left alone.
    @discardableResult
    public static func removeAbandonedTemporaries(in directory: String) -> [String] {
        guard let names = try? FileSystem.list(directory) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(".") {
            guard let mark = name.range(of: ".tmp-", options: .backwards),
                  let pid = Int32(name[mark.upperBound...].prefix { $0 != "-" }) else { continue }
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

    /// Appends `bytes` (O_APPEND) and flushes them; creates the file if needed. Only regular files are appended to (a
    /// device or FIFO is refused by name); a write cut short is undone and says why (disk full, file size limit).
    /// The file is locked (flock) while `prepare` runs with its descriptor and size, and until the bytes are written:
    /// other emc processes appending to it wait.
    public static func append(_ bytes: [UInt8], to path: String, prepare: ((_ fd: Int32, _ size: Int) throws -> Void)? = nil) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0o644)
        guard fd >= 0 else { throw EMCError(.io, "cannot open for appending: \(errnoText())", file: path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw EMCError(.io, "cannot append: not a regular file", file: path)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        guard flock(fd, LOCK_EX) == 0 else { throw EMCError(.io, "cannot lock: \(errnoText())", file: path) }
        defer { flock(fd, LOCK_UN) }
        if let prepare {
            guard fstat(fd, &info) == 0 else { throw EMCError(.io, "cannot stat: \(errnoText())", file: path) }
            try prepare(fd, Int(info.st_size))
        }
        try write(bytes, to: fd, path: path)
        guard fsync(fd) == 0 else { throw EMCError(.io, "cannot append: \(writeFailure(errno))", file: path) }
    }

    /// Writes all of `bytes` to `fd` (opened for appending to `path`), looping over short writes. A write that fails
    /// part way is cut back (no partial line is left for a reader) and says why: disk full, file size limit.
    public static func write(_ bytes: [UInt8], to fd: Int32, path: String) throws {
        let start = Int(lseek(fd, 0, SEEK_END))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let code = n < 0 ? errno : ENOSPC
                if done > 0 && start >= 0 { _ = ftruncate(fd, off_t(start)) }
                throw EMCError(.io, "cannot append: \(writeFailure(code))", file: path, place: .offset(max(0, start) + done))
            }
            done += n
        }
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

    /// Whether `path` itself is a folder, not a link to one (lstat).
    public static func isRealDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Removes a folder and everything in it (scratch space of tests and benchmarks). Links are removed, never
    /// followed: a link planted inside (or `path` itself being a link) never empties the folder it points to.
    public static func removeTree(_ path: String) {
        guard isRealDirectory(path) else { unlink(path); return }
        for name in (try? list(path)) ?? [] {
            let child = join(path, name)
            if isRealDirectory(child) { removeTree(child) } else { unlink(child) }
        }
        rmdir(path)
    }

    /// A new private folder (mode 0700, made by mkdtemp: a name nobody could have planted) inside `parent`, or inside
    /// `$TMPDIR` (else /tmp) when `parent` is nil, named `PREFIX-XXXXXX`.
    public static func makeTemporaryDirectory(prefix: String, in parent: String? = nil) throws -> String {
        var base = parent ?? getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        if base.isEmpty { base = "/tmp" }
        var template = Array(join(base, "\(prefix)-XXXXXX").utf8CString)
        let made: String? = template.withUnsafeMutableBufferPointer { buffer in
            mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
        }
        guard let made else {
            throw EMCError(.io, "cannot create a temporary folder: \(errnoText())", file: base)
        }
        return made
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

    /// Whether `name` names a file directly inside a folder: not empty, not `.` or `..`, no `/`, no NUL, no control
    /// character. Every file name read from a manifest must be one, so that nothing outside the folder is ever read,
    /// replaced or removed through it.
    public static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.unicodeScalars.contains { $0 == "/" || $0.properties.generalCategory == .control }
    }
    /// The folder part of `path` ("." when it has none).
    public static func splitDirectory(_ path: String) -> String { let d = splitPath(path).dir; return d.isEmpty ? (path.hasPrefix("/") ? "/" : ".") : d }
}

/// The rule every output path follows: a file already there is replaced only when the user allows it (`--force`), and a
/// command never writes over one of its own inputs (a results log, a shard or a shard set's folder), allowed or not.
public enum OutputPaths {
    /// Checks the outputs of one command before anything is written. `inputs` are files or folders the command reads
    /// (they need not exist yet: a log a sweep is about to write); a folder covers every file inside it. Outputs are
    /// compared by where they would land (their folder's real path and their name) and, when they exist, by device and
    /// inode, so links, `./x` and hard links are seen through. Two outputs naming one file are refused too.
    public static func check(_ outputs: [String], force: Bool, inputs: [String]) throws {
        let folders = inputs.filter { FileSystem.isDirectory($0) }.map { FileSystem.canonicalPath($0) }
        let inputPlaces = inputs.map(landing)
        let inputIdentities = inputs.compactMap(FileIdentity.init)
        var seen: [(path: String, place: String)] = []
        for output in outputs {
            let place = landing(output)
            let identity = FileIdentity(output)
            if inputPlaces.contains(place) || (identity.map { inputIdentities.contains($0) } ?? false) {
                throw EMCError(.invalidArgument, "this output is one of the command's inputs; it is never overwritten", file: output, remedy: .otherPath)
            }
            if let owner = folders.first(where: { contains($0, place) }) {
                throw EMCError(.invalidArgument, "this output is inside \(owner), which the command reads; it is never written there",
                               file: output, remedy: .otherPath)
            }
            if let earlier = seen.first(where: { $0.place == place }) {
                throw EMCError(.invalidArgument, "two outputs name the same file (\(earlier.path))", file: output, remedy: .otherPath)
            }
            seen.append((output, place))
            guard let identity else { continue }
            guard identity.isRegularFile else {
                throw EMCError(.invalidArgument, "not a regular file (a folder, device or pipe); emc writes outputs as files", file: output, remedy: .otherPath)
            }
            guard force else { throw EMCError(.invalidArgument, "a file is already there", file: output, remedy: .replaceFile) }
        }
    }

    /// Where a file at `path` lands: its folder's real path (links resolved) and its name; the real path when it exists.
    public static func landing(_ path: String) -> String {
        if FileSystem.exists(path) { return FileSystem.canonicalPath(path) }
        return FileSystem.join(FileSystem.canonicalPath(FileSystem.splitDirectory(path)), FileSystem.baseName(path))
    }

    private static func contains(_ folder: String, _ path: String) -> Bool {
        path == folder || path.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/")
    }
}

/// A file's device and inode: the same file under any name, link or relative path.
public struct FileIdentity: Equatable, Sendable {
    public let device: UInt64
    public let inode: UInt64
    public let isRegularFile: Bool

    /// nil when nothing is at `path`.
    public init?(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        isRegularFile = (info.st_mode & S_IFMT) == S_IFREG
    }

    public static func == (a: FileIdentity, b: FileIdentity) -> Bool { a.device == b.device && a.inode == b.inode }
}

/// Writes to the process's standard streams that never trap: a message to a closed or full standard error is lost
/// (there is nowhere left to say so), and standard output is checked once, when the command ends.
public enum StandardStreams {
    /// Writes `text` to standard error, ignoring failures.
    public static func error(_ text: String) {
        var bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }

    /// Flushes standard output; an error when anything printed could not be written (a full disk, a file-size limit).
    public static func flushOutput() throws {
        if emc_flush_stdout() != 0 {
            throw EMCError(.io, "cannot write the output: \(writeFailure(errno))", file: "standard output")
        }
    }
}

/// A failed write's cause in a person's words: "disk full", "file size limit", ...
public func writeFailure(_ code: Int32) -> String {
    switch code {
    case ENOSPC: return "disk full (\(errnoText(code)))"
    case EFBIG: return "file size limit reached (\(errnoText(code)))"
    case EDQUOT: return "disk quota exceeded (\(errnoText(code)))"
    default: return errnoText(code)
    }
}
