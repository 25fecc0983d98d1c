import Foundation

/// Runs `executable` with `arguments` (with `environment` added to this process's, in `directory` when given, with no
/// standard input); its exit status and both outputs, read while it runs so a chatty child never stalls.
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil) throws
    -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let captured = CapturedStream()
    Thread { captured.data = err.fileHandleForReading.readDataToEndOfFile(); captured.done.signal() }.start()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    captured.done.wait()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self), String(decoding: captured.data, as: UTF8.self))
}

private final class CapturedStream: @unchecked Sendable {
    var data = Data()
    let done = DispatchSemaphore(value: 0)
}
