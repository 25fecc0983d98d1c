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

    /// What the writer must mend before its first append: a last line without its newline.
    private var tornTail: TornTail?
    private enum TornTail { case complete, cut(at: Int) }

    /// Opens (creating its folder if needed) the log at `path` for appending. Nothing is written until the first
    /// append, which first mends a torn last line: a complete record without its newline gets the newline, anything
    /// else (a write cut by a kill) is cut off. Any other line that is not a valid record is an error naming the line.
    public init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileSystem.createDirectory(dir) }
        guard FileSystem.exists(path) else { return }
        let bytes = try ReadableFile.contents(of: path)
        let (parsed, tail) = try Self.parseTolerant(bytes, path: path)
        records = parsed
        tornTail = tail
    }

    /// The records of the log at `path`, read only (nothing is ever written: a read-only log, or one a running search
    /// is still writing, is read as it is). A last line without its newline counts when it is a complete record and is
    /// left out otherwise (a line still being written). The log may be a pipe (`emc report <(zcat log.gz)`). None when
    /// there is no file.
    public static func records(at path: String) throws -> [TrialRecord] {
        guard FileSystem.exists(path) else { return [] }
        return try parseTolerant(try ReadableFile.stream(path), path: path).records
    }

    /// Every complete line's record, and what to do about a last line without its newline.
    private static func parseTolerant(_ bytes: [UInt8], path: String) throws -> (records: [TrialRecord], tail: TornTail?) {
        guard let last = bytes.last, last != 0x0A else { return (try parse(bytes[...], path: path), nil) }
        let keep = (bytes.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0
        var records = try parse(bytes[..<keep], path: path)
        guard (try? decoder().decode(TrialRecord.self, from: Data(bytes[keep...]))) != nil else { return (records, .cut(at: keep)) }
        // A whole record without its newline: read (and checked) like any other line.
        records += try parse(bytes[keep...], path: path, firstLine: bytes[..<keep].filter { $0 == 0x0A }.count + 1)
        return (records, .complete)
    }

    private static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = TrialRecord.nonFiniteDecoding
        return decoder
    }

    private static func parse(_ bytes: ArraySlice<UInt8>, path: String, firstLine: Int = 1) throws -> [TrialRecord] {
        let decoder = decoder()
        var records: [TrialRecord] = []
        var lineNumber = firstLine - 1
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.isEmpty { continue }
            let record: TrialRecord
            do {
                record = try decoder.decode(TrialRecord.self, from: Data(line))
            } catch {
                throw EMCError(.format, "line is not a trial record (\(error))", file: path, place: .line(lineNumber))
            }
            do { try record.validate() } catch let e as EMCError {
                throw EMCError(.format, "line holds an impossible trial record: \(e.message)", file: path, place: .line(lineNumber))
            }
            records.append(record)
        }
        return records
    }

    /// The recorded trial for (key, n, replicate), if any: a learning-rate pilot's when `pilot`, any other otherwise
    /// (a search never takes a pilot's trial as its own).
    public func trial(key: String, n: Int, replicate: Int = 0, pilot: Bool = false) -> TrialRecord? {
        lock.lock(); defer { lock.unlock() }
        return records.first { $0.key == key && $0.n == n && $0.kind == .trial && $0.replicateIndex == replicate && ($0.role == "pilot") == pilot }
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
        switch tornTail {
        case .complete: try FileSystem.append([0x0A], to: path)
        case .cut(let keep):
            guard truncate(path, off_t(keep)) == 0 else {
                throw EMCError(.io, "cannot mend the torn last line: \(String(cString: strerror(errno)))", file: path)
            }
        case nil: break
        }
        tornTail = nil
        try FileSystem.append(line, to: path)
        records.append(record)
    }
}
