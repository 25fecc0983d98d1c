import EMCCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A fresh folder under /tmp (or /dev/shm) for one test, removed (with its contents) when released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    /// `inMemory`: under /dev/shm where there is one (for tests that append thousands of fsynced lines).
    public init(_ label: String = "emc-test", inMemory: Bool = false) {
        let parent = inMemory && FileSystem.isRealDirectory("/dev/shm") ? "/dev/shm" : "/tmp"
        var template = Array("\(parent)/\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: the test machine's /tmp is not writable")
        path = String(cString: made!)
    }

    deinit { FileSystem.removeTree(path) }

    public func file(_ name: String) -> String { path + "/" + name }
}
