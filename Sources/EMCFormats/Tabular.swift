import EMCCore
import Foundation

/// The schema of a tabular CSV, from `manifests/datasets/<name>.json` (its "table" object).
public struct TableSchema: Codable, Sendable {
    public enum ColumnType: String, Codable, Sendable { case numeric, categorical, binary, ignore, label }

    public struct Column: Codable, Sendable {
        public var name: String
        public var type: ColumnType
    }

    public var separator: String
    /// Lines at the top that are headers (skipped).
    public var headerRows: Int
    public var columns: [Column]
    /// Label value (after trimming and `stripLabelSuffix`) → class, in class order.
    public var labels: [String]
    /// Tokens meaning "missing": numeric → the train mean; categorical → its own category.
    public var missing: [String]?
    /// Lines starting with this are skipped (adult.test's `|1x3 Cross validator`).
    public var skipLinesStartingWith: String?
    /// Removed from label values (adult.test's labels end with a period).
    public var stripLabelSuffix: String?
    /// An unseen test category: "error" (default) or "other" (an extra one-hot slot).
    public var unknownCategory: String?

    public init(separator: String, headerRows: Int, columns: [Column], labels: [String], missing: [String]? = nil,
                skipLinesStartingWith: String? = nil, stripLabelSuffix: String? = nil, unknownCategory: String? = nil) {
        self.separator = separator
        self.headerRows = headerRows
        self.columns = columns
        self.labels = labels
        self.missing = missing
        self.skipLinesStartingWith = skipLinesStartingWith
        self.stripLabelSuffix = stripLabelSuffix
        self.unknownCategory = unknownCategory
    }
}

/// Parses tabular CSVs into float32 feature vectors: numeric columns standardised with train statistics,
/// categoricals one-hot over the train split's vocabulary, binaries as 0/1.
public enum Tabular {
    /// Raw rows of one file: fields per row (as strings only for categoricals; numbers parsed), with line numbers.
    public struct RawTable: Sendable {
        public var file: String
        public var numeric: [[Double]]      // per numeric/binary column, values (NaN for missing)
        public var categorical: [[String]]  // per categorical column
        public var labels: [UInt32]
        public var lines: [Int]
        public var count: Int { labels.count }
    }

    /// Reads and checks every row of a CSV file (plain or gzip).
    public static func read(path: String, schema: TableSchema) throws -> RawTable {
        try parse(try contents(path), file: path, schema: schema)
    }

    /// The bytes of a text file, decompressed when it is gzip.
    public static func contents(_ path: String) throws -> [UInt8] {
        let reader = try openMaybeGzip(path)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try reader.readSome(into: $0) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// Parses CSV bytes. Fields are split on the separator's first byte; surrounding spaces and quotes are trimmed.
    public static func parse(_ bytes: [UInt8], file: String, schema: TableSchema) throws -> RawTable {
        guard !bytes.isEmpty else { throw EMCError(.format, "empty file, expected CSV rows", file: file) }
        guard let sep = schema.separator.utf8.first else { throw EMCError(.invalidArgument, "empty separator in the table schema") }
        let numericColumns = schema.columns.indices.filter { schema.columns[$0].type == .numeric || schema.columns[$0].type == .binary }
        let categoricalColumns = schema.columns.indices.filter { schema.columns[$0].type == .categorical }
        guard let labelColumn = schema.columns.firstIndex(where: { $0.type == .label }) else {
            throw EMCError(.invalidArgument, "the table schema has no label column")
        }
        let labelIndex = Dictionary(uniqueKeysWithValues: schema.labels.enumerated().map { ($1, UInt32($0)) })
        let missing = Set(schema.missing ?? [])
        let skipPrefix = schema.skipLinesStartingWith.map { Array($0.utf8) }
        var table = RawTable(file: file, numeric: Array(repeating: [], count: numericColumns.count),
                             categorical: Array(repeating: [], count: categoricalColumns.count), labels: [], lines: [])
        var columnOfNumeric = [Int](repeating: -1, count: schema.columns.count)
        for (k, c) in numericColumns.enumerated() { columnOfNumeric[c] = k }
        var columnOfCategorical = [Int](repeating: -1, count: schema.columns.count)
        for (k, c) in categoricalColumns.enumerated() { columnOfCategorical[c] = k }
        var fieldStarts = [Int](repeating: 0, count: schema.columns.count + 1)
        var fieldEnds = [Int](repeating: 0, count: schema.columns.count + 1)
        // Spreadsheet exports often start with a UTF-8 byte-order mark; it is not part of the first field.
        let bom = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        try bytes.withUnsafeBufferPointer { p in
            var lineStart = bom, lineNumber = 0
            while lineStart < p.count {
                var lineEnd = lineStart
                while lineEnd < p.count && p[lineEnd] != 0x0A { lineEnd += 1 }
                lineNumber += 1
                defer { lineStart = lineEnd + 1 }
                var end = lineEnd
                if end > lineStart && p[end - 1] == 0x0D { end -= 1 }
                if lineNumber <= schema.headerRows || end == lineStart { continue }
                if let prefix = skipPrefix, end - lineStart >= prefix.count, Array(p[lineStart..<(lineStart + prefix.count)]) == prefix { continue }
                // Split into fields.
                var count = 0, start = lineStart
                for i in lineStart...end {
                    if i == end || p[i] == sep {
                        if count < fieldStarts.count { fieldStarts[count] = start; fieldEnds[count] = i }
                        count += 1
                        start = i + 1
                    }
                }
                guard count == schema.columns.count else {
                    throw EMCError(.format, "row has \(count) columns", file: file, place: .line(lineNumber), expected: "\(schema.columns.count)")
                }
                func text(_ c: Int) -> String {
                    var a = fieldStarts[c], b = fieldEnds[c]
                    while a < b && (p[a] == 0x20 || p[a] == 0x22) { a += 1 }
                    while b > a && (p[b - 1] == 0x20 || p[b - 1] == 0x22) { b -= 1 }
                    return String(decoding: UnsafeBufferPointer(rebasing: p[a..<b]), as: UTF8.self)
                }
                for c in numericColumns {
                    let t = text(c)
                    if missing.contains(t) { table.numeric[columnOfNumeric[c]].append(.nan); continue }
                    guard let v = Double(t), v.isFinite else {
                        throw EMCError(.format, "'\(t)' in column \(schema.columns[c].name) is not a number", file: file, place: .line(lineNumber))
                    }
                    if schema.columns[c].type == .binary && v != 0 && v != 1 {
                        throw EMCError(.format, "binary column \(schema.columns[c].name) holds \(t)", file: file, place: .line(lineNumber), expected: "0 or 1")
                    }
                    table.numeric[columnOfNumeric[c]].append(v)
                }
                for c in categoricalColumns { table.categorical[columnOfCategorical[c]].append(text(c)) }
                var label = text(labelColumn)
                if let suffix = schema.stripLabelSuffix, label.hasSuffix(suffix) { label.removeLast(suffix.count) }
                guard let l = labelIndex[label] else {
                    throw EMCError(.format, "unknown label value '\(label)'", file: file, place: .line(lineNumber),
                                   expected: "one of \(schema.labels.joined(separator: ", "))")
                }
                table.labels.append(l)
                table.lines.append(lineNumber)
            }
        }
        guard table.count > 0 else { throw EMCError(.format, "no data rows", file: file) }
        return table
    }

    /// The fitted encoding: statistics and vocabularies of the train split.
    public struct Encoding: Sendable {
        public var means: [Double]
        public var stds: [Double]
        public var vocabularies: [[String]]
        public var other: Bool
        public var schema: TableSchema

        /// Feature count after one-hot expansion.
        public var features: Int {
            means.count + vocabularies.reduce(0) { $0 + $1.count + (other ? 1 : 0) }
        }

        public init(fitting train: RawTable, schema: TableSchema) {
            self.schema = schema
            let numericColumns = schema.columns.filter { $0.type == .numeric || $0.type == .binary }
            means = []
            stds = []
            for (k, column) in numericColumns.enumerated() {
                let values = train.numeric[k].filter { !$0.isNaN }
                if column.type == .binary || values.isEmpty {
                    means.append(0); stds.append(1)
                    continue
                }
                let m = values.reduce(0, +) / Double(values.count)
                let v = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count)
                means.append(m)
                stds.append(v > 0 ? v.squareRoot() : 1)
            }
            vocabularies = train.categorical.map { Array(Set($0)).sorted() }
            other = schema.unknownCategory == "other"
        }

        /// Feature vectors of `table` as float32 bytes (rows × features × 4).
        public func encode(_ table: RawTable) throws -> [UInt8] {
            let f = features
            var out = [Float](repeating: 0, count: table.count * f)
            let indexes = vocabularies.map { Dictionary(uniqueKeysWithValues: $0.enumerated().map { ($1, $0) }) }
            for r in 0..<table.count {
                var o = r * f
                for k in 0..<means.count {
                    let v = table.numeric[k][r]
                    out[o] = v.isNaN ? 0 : Float((v - means[k]) / stds[k])
                    o += 1
                }
                for (k, vocabulary) in vocabularies.enumerated() {
                    let value = table.categorical[k][r]
                    if let slot = indexes[k][value] {
                        out[o + slot] = 1
                    } else if other {
                        out[o + vocabulary.count] = 1
                    } else {
                        let column = schema.columns.filter { $0.type == .categorical }[k].name
                        throw EMCError(.format, "category '\(value)' of column \(column) never occurs in the train split", file: table.file,
                                       place: .line(table.lines[r]))
                    }
                    o += vocabulary.count + (other ? 1 : 0)
                }
            }
            return out.withUnsafeBytes { Array($0) }
        }

        /// Feature names, for the manifest.
        public var featureNames: [String] {
            var names = schema.columns.filter { $0.type == .numeric || $0.type == .binary }.map(\.name)
            for (k, column) in schema.columns.filter({ $0.type == .categorical }).enumerated() {
                names += vocabularies[k].map { "\(column.name)=\($0)" } + (other ? ["\(column.name)=other"] : [])
            }
            return names
        }
    }

    /// A seeded split of one table into train and test row indices.
    public static func split(count: Int, testFraction: Double, seed: UInt64) -> (train: [Int], test: [Int]) {
        let order = CounterRNG(seed: seed, stream: .split).permutation(count: count).map(Int.init)
        let testCount = Int((Double(count) * testFraction).rounded())
        return (Array(order[testCount...]).sorted(), Array(order[..<testCount]).sorted())
    }

    /// A seeded, class-balanced split: within each class, `testFraction` of its rows (rounded) go to test, chosen by
    /// the seeded permutation of that class's rows; row indices in order.
    public static func stratifiedSplit(labels: [UInt32], testFraction: Double, seed: UInt64) -> (train: [Int], test: [Int]) {
        var train: [Int] = [], test: [Int] = []
        for (label, rows) in Dictionary(grouping: labels.indices, by: { labels[$0] }).sorted(by: { $0.key < $1.key }) {
            let order = CounterRNG(seed: seed, stream: .split).derived(UInt64(label)).permutation(count: rows.count).map(Int.init)
            let testCount = Int((Double(rows.count) * testFraction).rounded())
            test += order[..<testCount].map { rows[$0] }
            train += order[testCount...].map { rows[$0] }
        }
        return (train.sorted(), test.sorted())
    }

    /// The rows `rows` of `table`.
    public static func subset(_ table: RawTable, rows: [Int]) -> RawTable {
        RawTable(file: table.file, numeric: table.numeric.map { c in rows.map { c[$0] } },
                 categorical: table.categorical.map { c in rows.map { c[$0] } }, labels: rows.map { table.labels[$0] },
                 lines: rows.map { table.lines[$0] })
    }
}
