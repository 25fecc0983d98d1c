import EMCCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The JSONL results log: one line per trial, appended and flushed as each trial ends, so a killed search
/// loses at most the trial it was running. A rerun reads the log and skips every trial already in it.
public final class ResultsLog: @unchecked Sendable {
    public let path: String
    public private(set) var records: [TrialRecord] = []
    private let lock = NSLock()

    /// Opens (creating if needed) the log at `path`. A torn last line (a write cut by a kill) is removed;
    /// any other line that is not a valid record is an error naming the line.
    public init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileSystem.createDirectory(dir) }
        guard FileSystem.exists(path) else { return }
        var bytes = try ReadableFile.contents(of: path)
        if let last = bytes.last, last != 0x0A {
            // A partial final line: cut it off so the next append starts on a fresh line.
            let keep = (bytes.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0
            bytes.removeLast(bytes.count - keep)
            guard truncate(path, off_t(keep)) == 0 else {
                throw EMCError(.io, "cannot repair the torn last line: \(String(cString: strerror(errno)))", file: path)
            }
        }
        records = try Self.parse(bytes, path: path)
    }

    /// The records of the log at `path` without opening it for appending (a torn last line, one a running search may
    /// still be writing, is left out and left alone); none when there is no file.
    public static func records(at path: String) throws -> [TrialRecord] {
        guard FileSystem.exists(path) else { return [] }
        var bytes = try ReadableFile.contents(of: path)
        bytes.removeLast(bytes.count - ((bytes.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0))
        return try parse(bytes, path: path)
    }

    private static func parse(_ bytes: [UInt8], path: String) throws -> [TrialRecord] {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = TrialRecord.nonFiniteDecoding
        var records: [TrialRecord] = []
        var lineNumber = 0
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.isEmpty { continue }
            do {
                records.append(try decoder.decode(TrialRecord.self, from: Data(line)))
            } catch {
                throw EMCError(.format, "line is not a trial record (\(error))", file: path, place: .line(lineNumber))
            }
        }
        return records
    }

    /// The recorded trial for (key, n, replicate), if any.
    public func trial(key: String, n: Int, replicate: Int = 0) -> TrialRecord? {
        lock.lock(); defer { lock.unlock() }
        return records.first { $0.key == key && $0.n == n && $0.kind == .trial && $0.replicateIndex == replicate }
    }

    /// Appends one record as a single write and flushes it to disk.
    public func append(_ record: TrialRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // A diverged trial's loss is NaN or infinite; JSON has no such numbers, so they are written as strings.
        encoder.nonConformingFloatEncodingStrategy = TrialRecord.nonFiniteEncoding
        var line = Array(try encoder.encode(record))
        line.append(0x0A)
        lock.lock(); defer { lock.unlock() }
        try FileSystem.append(line, to: path)
        records.append(record)
    }
}
