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
    /// The log's size when it was read: a torn tail is mended only while the file still has this size (no other
    /// writer has appended, or mended it, since).
    private var sizeWhenRead = 0

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
        sizeWhenRead = bytes.count
    }

    /// The records of the log at `path`, read only (nothing is ever written: a read-only log, or one a running search
    /// is still writing, is read as it is). A last line without its newline counts when it is a complete record and is
    /// left out otherwise (a line still being written). The log may be a pipe (`emc report <(zcat log.gz)`). None when
    /// there is no file.
    /// `finished`: the log is not being written (a report's input), so a file whose only line is not a complete record
    /// is an error rather than a first line still being written.
    public static func records(at path: String, finished: Bool = false) throws -> [TrialRecord] {
        guard FileSystem.exists(path) else { return [] }
        let bytes = try ReadableFile.stream(path)
        let (records, tail) = try parseTolerant(bytes, path: path)
        if finished, records.isEmpty, case .cut = tail {
            throw EMCError(.format, "holds no complete trial record: its only line is cut short or is not a record", file: path, place: .line(1))
        }
        return records
    }

    /// Every complete line's record, and what to do about a last line without its newline.
    private static func parseTolerant(_ bytes: [UInt8], path: String) throws -> (records: [TrialRecord], tail: TornTail?) {
        guard let last = bytes.last, last != 0x0A else { return (try parse(bytes[...], path: path), nil) }
        let keep = (bytes.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0
        var records = try parse(bytes[..<keep], path: path)
        guard let record = try? decoder().decode(TrialRecord.self, from: Data(bytes[keep...])) else { return (records, .cut(at: keep)) }
        // A whole record without its newline: checked like any other line.
        records.append(try checked(record, path: path, line: bytes[..<keep].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }))
        return (records, .complete)
    }

    /// The record after `TrialRecord.validate`, or an error naming the file and the line.
    private static func checked(_ record: TrialRecord, path: String, line: Int) throws -> TrialRecord {
        do { try record.validate() } catch let e as EMCError {
            throw EMCError(.format, "line holds an impossible trial record: \(e.message)", file: path, place: .line(line))
        }
        return record
    }

    private static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = TrialRecord.nonFiniteDecoding
        return decoder
    }

    private static func parse(_ bytes: ArraySlice<UInt8>, path: String) throws -> [TrialRecord] {
        let decoder = decoder()
        var records: [TrialRecord] = []
        var lineNumber = 0
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.isEmpty { continue }
            let record: TrialRecord
            do {
                record = try decoder.decode(TrialRecord.self, from: Data(line))
            } catch {
                throw EMCError(.format, "line is not a trial record (\(error))", file: path, place: .line(lineNumber))
            }
            records.append(try checked(record, path: path, line: lineNumber))
        }
        return records
    }

    /// The recorded trial for (key, n, replicate), if any: a learning-rate pilot's when `pilot`, any other otherwise
    /// (a search never takes a pilot's trial as its own).
    public func trial(key: String, n: Int, replicate: Int = 0, pilot: Bool = false) -> TrialRecord? {
        lock.lock(); defer { lock.unlock() }
        return records.first { $0.key == key && $0.n == n && $0.kind == .trial && $0.replicateIndex == replicate && ($0.role == .pilot) == pilot }
    }

    /// Appends `line` under the file's lock, first mending a torn last line seen when the log was read, if the file
    /// is still exactly as it was then: a newline after a complete record, or the partial line cut off. Another writer
    /// that appended or mended since has changed its size, and then nothing is cut.
    private func appendLocked(_ line: [UInt8]) throws {
        let torn = tornTail, sizeWhenRead = sizeWhenRead, path = path
        try FileSystem.append(line, to: path) { fd, size in
            guard let torn, size == sizeWhenRead else { return }
            switch torn {
            case .complete: try FileSystem.write([0x0A], to: fd, path: path)
            case .cut(let keep):
                guard ftruncate(fd, off_t(keep)) == 0 else {
                    throw EMCError(.io, "cannot mend the torn last line: \(String(cString: strerror(errno)))", file: path)
                }
            }
        }
        tornTail = nil
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
        try appendLocked(line)
        records.append(record)
    }
}
