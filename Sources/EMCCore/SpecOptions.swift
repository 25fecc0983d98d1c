import Foundation

/// The one parser of emc's `key=value,key=value` specs (models, optimizers, label and input transforms).
///
/// Strict by design, because a typo in a spec silently changes an experiment: an unknown key, a repeated key,
/// a value that is not a number, and a number outside its range are each an error that names the key and the
/// whole spec. Keys are case-insensitive; values keep their case.
public struct SpecOptions {
    private var values: [String: String] = [:]
    private var used: Set<String> = []
    /// The whole spec, as the user wrote it (for messages).
    public let spec: String

    /// Parses `text` (the part after `family:`, or a whole transform spec); `spec` is what messages quote.
    public init(_ text: String, spec: String) throws {
        self.spec = spec
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty {
                if text.isEmpty { continue }
                throw EMCError(.invalidArgument, "'\(spec)' has an empty item (two commas, or a trailing one)")
            }
            let kv = trimmed.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty else {
                throw EMCError(.invalidArgument, "'\(trimmed)' in '\(spec)' is not key=value")
            }
            let key = kv[0].lowercased()
            guard values[key] == nil else {
                throw EMCError(.invalidArgument, "\(key) is given twice in '\(spec)' (\(key)=\(values[key]!) and \(key)=\(kv[1])); give it once")
            }
            values[key] = kv[1]
        }
    }

    /// True when the spec gives `key` (without marking it used).
    public func has(_ key: String) -> Bool { values[key] != nil }

    public mutating func string(_ key: String, default value: String) -> String {
        used.insert(key)
        return values[key] ?? value
    }

    /// A string that must be one of `choices`.
    public mutating func choice(_ key: String, default value: String, from choices: [String]) throws -> String {
        let v = string(key, default: value)
        guard choices.contains(v) else {
            throw EMCError(.invalidArgument, "\(key)=\(v) in '\(spec)' must be one of \(choices.joined(separator: ", "))")
        }
        return v
    }

    /// A whole number in `range`.
    public mutating func int(_ key: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
        used.insert(key)
        guard let text = values[key] else { return value }
        guard let v = Int(text) else { throw EMCError(.invalidArgument, "\(key)=\(text) in '\(spec)' is not a whole number") }
        guard range.contains(v) else { throw EMCError(.invalidArgument, "\(key)=\(text) in '\(spec)' must be \(describe(range))") }
        return v
    }

    /// A seed: any unsigned 64-bit number.
    public mutating func seed(_ key: String = "seed", default value: UInt64 = 0) throws -> UInt64 {
        used.insert(key)
        guard let text = values[key] else { return value }
        guard let v = UInt64(text) else { throw EMCError(.invalidArgument, "\(key)=\(text) in '\(spec)' is not a seed (a whole number ≥ 0)") }
        return v
    }

    /// A finite number in `range` (an open end where `openLower`/`openUpper`).
    public mutating func double(_ key: String, default value: Double, in range: ClosedRange<Double>,
                                openLower: Bool = false, openUpper: Bool = false) throws -> Double {
        used.insert(key)
        guard let text = values[key] else { return value }
        guard let v = Double(text), v.isFinite else { throw EMCError(.invalidArgument, "\(key)=\(text) in '\(spec)' is not a number") }
        let below = openLower ? v <= range.lowerBound : v < range.lowerBound
        let above = openUpper ? v >= range.upperBound : v > range.upperBound
        guard !below && !above else {
            let lower = openLower ? "> \(format(range.lowerBound))" : "≥ \(format(range.lowerBound))"
            let upper = openUpper ? "< \(format(range.upperBound))" : "≤ \(format(range.upperBound))"
            let text = range.upperBound == .greatestFiniteMagnitude ? lower : "\(lower) and \(upper)"
            throw EMCError(.invalidArgument, "\(key)=\(values[key]!) in '\(spec)' must be \(text)")
        }
        return v
    }

    public mutating func bool(_ key: String, default value: Bool) throws -> Bool {
        used.insert(key)
        guard let text = values[key]?.lowercased() else { return value }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw EMCError(.invalidArgument, "\(key)=\(text) in '\(spec)' must be true or false")
        }
    }

    /// Throws when the spec gave a key nothing asked for, listing the keys this spec knows.
    public func rejectUnused() throws {
        let unknown = Set(values.keys).subtracting(used)
        if !unknown.isEmpty {
            throw EMCError(.invalidArgument, "unknown option(s) \(unknown.sorted().joined(separator: ", ")) in '\(spec)'; known: \(used.sorted().joined(separator: ", "))")
        }
    }

    private func describe(_ range: ClosedRange<Int>) -> String {
        range.upperBound == .max ? "≥ \(range.lowerBound)" : "between \(range.lowerBound) and \(range.upperBound)"
    }

    private func format(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : "\(v)" }
}
