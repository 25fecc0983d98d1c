import EMCCore
import EMCTrainer
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How the torch trainer's workers run: the interpreter, the device and threads, how long silence means a hang.
public struct TorchWorkerOptions: Sendable {
    /// The Python that runs `python -m emcshards.worker` (it needs the emcshards package with torch).
    public var python: String
    /// Seconds without any message from a worker (a progress note comes every epoch, and every few seconds within a
    /// long one) before it is taken to hang: it is killed and its trial's attempt fails.
    public var timeout: Double
    /// The torch device the trials train on ("cpu", "cuda", "cuda:1").
    public var device = "cpu"
    /// Threads each worker's torch may use.
    public var threads = 1
    /// Variables added to the workers' environment.
    public var environment: [String: String] = [:]

    public init(python: String? = nil, timeout: Double = TorchWorkerOptions.defaultTimeout) {
        self.python = python ?? Self.defaultPython
        self.timeout = timeout
    }

    /// `EMC_PYTHON`, else `python3`.
    /// The interpreter `python` names: a path as given, or a command found on PATH (an error says how to give one).
    public static func locate(_ python: String) throws -> String { try TorchWorker.resolve(python) }

    public static var defaultPython: String { ProcessInfo.processInfo.environment["EMC_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3" }
    public static let defaultTimeout = 600.0
    /// The shortest `--worker-timeout` a user may set (tests set shorter ones through the options directly).
    public static let minimumTimeout = 10.0

    /// cpu, cuda, cuda:N or mps.
    public static func isDevice(_ text: String) -> Bool {
        if ["cpu", "cuda", "mps"].contains(text) { return true }
        guard text.hasPrefix("cuda:"), let k = Int(text.dropFirst(5)), k >= 0, k < 1024 else { return false }
        return true
    }
}

/// The worker process itself failed (it exited, went silent past the timeout, or broke the protocol): the trial's
/// attempt failed, not the trial. Never a result.
/// A message's id, read strictly (an integer; not `true` or a string).
private struct Envelope: Decodable { let id: Int? }

struct WorkerFailure: Error {
    let message: String
    /// It sent nothing within the timeout (rather than exiting or breaking the protocol).
    var timedOut = false
}

/// One `python -m emcshards.worker` process and its JSON-lines channel (docs/torch-worker.md). Used by one thread at a
/// time; `TorchFitter` pools them.
final class TorchWorker {
    static let protocolVersion = 1

    let options: TorchWorkerOptions
    private let process = Process()
    private let input: FileHandle
    private let output: Int32
    /// The worker's stderr: a file unlinked as soon as it is open (nothing is left behind, however emc ends), read
    /// back through this handle for error messages.
    private let stderrLog: FileHandle
    private var pending: [UInt8] = []
    /// How far `pending` has been searched for a newline (a long line is scanned once, not once per read).
    private var scanned = 0
    /// The longest line a worker may send (a result with its loss history is a few KiB).
    static let maxLineBytes = 64 << 20
    private var nextID = 1
    /// The handshake's answer: the worker's and torch's versions.
    private(set) var hello: [String: Any] = [:]

    var pid: Int32 { process.processIdentifier }

    init(options: TorchWorkerOptions) throws {
        self.options = options
        let python = try Self.resolve(options.python)
        let stdinPipe = Pipe(), stdoutPipe = Pipe()
        let stderrPath = FileSystem.join(NSTemporaryDirectory(), "emc-worker-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log")
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        guard let errorLog = FileHandle(forWritingAtPath: stderrPath), let reader = FileHandle(forReadingAtPath: stderrPath) else {
            throw EMCError(.io, "cannot create the torch worker's log", file: stderrPath)
        }
        stderrLog = reader
        unlink(stderrPath)
        // A worker that has exited closes its stdin: writing to it must be an error to handle, not a SIGPIPE that ends emc.
        Self.ignoreBrokenPipes
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "emcshards.worker"]
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in options.environment { environment[k] = v }
        environment["PYTHONUNBUFFERED"] = "1"
        // The folder emc runs in is not put first on the worker's import path (Python 3.11+): a numpy.py there must not
        // replace numpy. A py: model named as a dotted module is looked up there on purpose by the worker.
        environment["PYTHONSAFEPATH"] = "1"
        process.environment = environment
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = errorLog
        do { try process.run() } catch {
            throw EMCError(.missing, "cannot start the torch worker with \(python): \(error.localizedDescription)")
        }
        try? errorLog.close()
        input = stdinPipe.fileHandleForWriting
        output = stdoutPipe.fileHandleForReading.fileDescriptor
        try handshake(python: python)
    }

    deinit {
        kill()
        try? stderrLog.close()
    }

    /// SIGPIPE ignored once for the process (writes to a closed pipe then fail with EPIPE, which emc reports).
    static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN); return () }()

    /// A command name found on PATH, or a path as given.
    static func resolve(_ python: String) throws -> String {
        if python.contains("/") {
            guard FileManager.default.isExecutableFile(atPath: python) else {
                throw EMCError(.missing, "no Python interpreter at \(python): give --python PATH (or set EMC_PYTHON) to one with emcshards[torch] installed (scripts/torch-env makes one)")
            }
            return python
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = FileSystem.join(String(dir), python)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw EMCError(.missing, "no \(python) on PATH: give --python PATH (or set EMC_PYTHON) to a Python with emcshards[torch] installed (scripts/torch-env makes one)")
    }

    private func handshake(python: String) throws {
        let message: [String: Any]
        do {
            message = try call("hello", ["protocol": Self.protocolVersion, "client": "emc \(EMCEnvironment.version)"])
        } catch let failure as WorkerFailure {
            let said = lastErrorLines()
            if failure.timedOut {
                throw EMCError(.library, "the torch worker at \(python) did not answer the handshake within \(formatSeconds(options.timeout)) "
                               + "(importing torch can take longer on a busy machine: raise --worker-timeout)\(said.isEmpty ? "" : "; it said: \(said)")")
            }
            let cause = said.contains("No module named 'emcshards'") || said.contains("No module named emcshards")
                ? "it has no emcshards package" : failure.message
            throw EMCError(.missing, "\(python) cannot run the torch worker (\(cause))\(said.isEmpty ? "" : "; it said: \(said)"). "
                           + "Install the package with torch into that Python (pip install './python[torch]'), or make the cached one with scripts/torch-env and pass --python ~/.cache/emc/venv/bin/python")
        }
        if let error = message["error"] as? [String: Any] {
            let code = error["code"] as? String ?? "?", text = error["message"] as? String ?? ""
            switch code {
            case "torch-missing":
                throw EMCError(.missing, "\(text). Install torch into that Python (pip install './python[torch]'), or make the cached one with scripts/torch-env and pass --python ~/.cache/emc/venv/bin/python")
            case "protocol-version":
                throw EMCError(.unsupported, "the torch worker at \(python) speaks another protocol: \(text)")
            default:
                throw EMCError(.library, "the torch worker at \(python) refused the handshake (\(code)): \(text)")
            }
        }
        guard let result = message["result"] as? [String: Any], result["protocol"] as? Int == Self.protocolVersion else {
            throw EMCError(.unsupported, "the torch worker at \(python) answered the handshake without protocol \(Self.protocolVersion): \(message)")
        }
        hello = result
        // The device must be there before any trial trains (an error, never a trial recorded as not fitted).
        let device = options.device
        if device.hasPrefix("cuda") {
            let count = result["devices"] as? Int ?? 0
            let index = device == "cuda" ? 0 : Int(device.dropFirst(5)) ?? 0
            guard result["cuda"] as? Bool == true, index < count else {
                throw EMCError(.unsupported, "device \(device) was asked for, but torch \(result["torch"] ?? "?") at \(python) sees \(count) CUDA device(s)")
            }
        } else if device == "mps", result["mps"] as? Bool != true {
            throw EMCError(.unsupported, "device mps was asked for, but torch \(result["torch"] ?? "?") at \(python) has no MPS backend here")
        }
    }

    /// Sends one request and returns its final message (a result or an error value), passing progress notes on.
    func call(_ method: String, _ params: Any, progress: (([String: Any], String) -> Void)? = nil) throws -> [String: Any] {
        let id = nextID
        nextID += 1
        let request = try JSONSerialization.data(withJSONObject: ["id": id, "method": method, "params": params], options: [.sortedKeys])
        do { try input.write(contentsOf: request + Data([0x0A])) } catch {
            throw WorkerFailure(message: "the worker is gone (\(exitDescription()))")
        }
        while true {
            let line = try readLine()
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
                throw WorkerFailure(message: "the worker wrote a line that is not a protocol message: \(String(decoding: line.prefix(200), as: UTF8.self))")
            }
            guard (try? JSONDecoder().decode(Envelope.self, from: Data(line)))?.id == id else {
                if let error = object["error"] as? [String: Any] {
                    throw WorkerFailure(message: "the worker reported \(error["code"] ?? "?"): \(error["message"] ?? "")")
                }
                throw WorkerFailure(message: "the worker answered request \(object["id"] ?? "nil") while emc waited for \(id)")
            }
            if let note = object["progress"] as? [String: Any] {
                progress?(note, String(decoding: line, as: UTF8.self))
                continue
            }
            return object
        }
    }

    /// The next line of the worker's stdout, waiting at most `options.timeout` for it.
    private func readLine() throws -> [UInt8] {
        var deadline = Clock.now() + options.timeout
        while true {
            if let newline = pending[scanned...].firstIndex(of: 0x0A) {
                let line = Array(pending[..<newline])
                pending.removeFirst(newline + 1)
                scanned = 0
                return line
            }
            scanned = pending.count
            guard pending.count <= Self.maxLineBytes else {
                kill()
                throw WorkerFailure(message: "the worker sent a line longer than \(Self.maxLineBytes >> 20) MiB: not a protocol message")
            }
            let left = deadline - Clock.now()
            if left <= 0 {
                kill()
                throw WorkerFailure(message: "the worker sent nothing for \(formatSeconds(options.timeout)) (it hangs; --worker-timeout sets how long emc waits)",
                                    timedOut: true)
            }
            var descriptor = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(left, 3600) * 1000))
            if ready < 0 { if errno == EINTR { continue }; throw WorkerFailure(message: "cannot wait for the worker: errno \(errno)") }
            if ready == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let got = chunk.withUnsafeMutableBytes { Glibc.read(output, $0.baseAddress, $0.count) }
            if got < 0 { if errno == EINTR { continue }; throw WorkerFailure(message: "cannot read from the worker: errno \(errno)") }
            if got == 0 {
                process.waitUntilExit()
                let said = lastErrorLines()
                throw WorkerFailure(message: "the worker \(exitDescription())\(said.isEmpty ? "" : "; its last words: \(said)")")
            }
            pending += chunk[0..<got]
            deadline = Clock.now() + options.timeout
        }
    }

    private func exitDescription() -> String {
        guard !process.isRunning else { return "is still running" }
        return process.terminationReason == .uncaughtSignal ? "was killed by signal \(process.terminationStatus)" : "exited with status \(process.terminationStatus)"
    }

    /// The last lines the worker wrote to stderr (for error messages).
    func lastErrorLines(_ count: Int = 3) -> String {
        let end = stderrLog.seekToEndOfFile()
        stderrLog.seek(toFileOffset: end > 4096 ? end - 4096 : 0)
        let data = stderrLog.readDataToEndOfFile()
        let lines = String(decoding: data.suffix(4096), as: UTF8.self).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return lines.suffix(count).joined(separator: " / ")
    }

    /// Asks the worker to stop, and makes sure it has.
    func shutdown() {
        guard process.isRunning else { return }
        if let request = try? JSONSerialization.data(withJSONObject: ["id": nextID, "method": "shutdown"]) {
            try? input.write(contentsOf: request + Data([0x0A]))
        }
        try? input.close()
        let deadline = Clock.now() + 5
        while process.isRunning && Clock.now() < deadline { usleep(10_000) }
        kill()
    }

    /// Ends the worker at once (SIGKILL) and reaps it.
    func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

func formatSeconds(_ s: Double) -> String { s >= 1 ? String(format: "%g s", s) : String(format: "%g ms", s * 1000) }
