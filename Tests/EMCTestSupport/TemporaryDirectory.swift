import EMCCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A fresh folder under /tmp for one test, removed (with its contents) when released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "emc-test") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: the test machine's /tmp is not writable")
        path = String(cString: made!)
    }

    deinit { FileSystem.removeTree(path) }

    public func file(_ name: String) -> String { path + "/" + name }
}
