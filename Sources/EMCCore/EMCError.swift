/// Where in a file something went wrong: the unit a person would look for.
public enum Place: Sendable, Equatable, CustomStringConvertible {
    case offset(Int)
    case line(Int)
    case record(Int)
    case chunk(Int, samples: Range<Int>? = nil)
    case sample(Int)
    case member(String)
    case field(String)

    public var description: String {
        switch self {
        case .offset(let o): return "byte offset \(o)"
        case .line(let l): return "line \(l)"
        case .record(let r): return "record \(r)"
        case .chunk(let c, let samples):
            if let s = samples { return "chunk \(c) (samples \(s.lowerBound)..<\(s.upperBound))" }
            return "chunk \(c)"
        case .sample(let s): return "sample \(s)"
        case .member(let m): return "member \(m)"
        case .field(let f): return "field \(f)"
        }
    }
}

/// The one error type of emc: what went wrong, in which file, at which place, and what was
/// expected versus found. Its description is a sentence a newcomer can act on.
public struct EMCError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The operating system refused (open, read, write, rename...).
        case io
        /// The bytes do not follow the format (bad magic, impossible size, wrong count).
        case format
        /// The file ends before the format says it should.
        case truncated
        /// A checksum does not match: the data changed after it was written.
        case checksum
        /// A flag, spec or argument is not valid.
        case invalidArgument = "invalid argument"
        /// Valid input we do not handle (yet).
        case unsupported
        /// A file, folder or split that should exist does not.
        case missing
        /// A native library reported a failure.
        case library
    }

    public var kind: Kind
    public var message: String
    public var file: String?
    public var place: Place?
    public var expected: String?
    public var found: String?

    public init(_ kind: Kind, _ message: String, file: String? = nil, place: Place? = nil,
                expected: String? = nil, found: String? = nil) {
        self.kind = kind
        self.message = message
        self.file = file
        self.place = place
        self.expected = expected
        self.found = found
    }

    /// The same error with the file (and place, if it had none) filled in by a caller that knows them.
    public func at(file: String? = nil, place: Place? = nil) -> EMCError {
        var copy = self
        if copy.file == nil { copy.file = file }
        if copy.place == nil { copy.place = place }
        return copy
    }

    public var description: String {
        var where_: [String] = []
        if let file { where_.append(file) }
        if let place { where_.append(place.description) }
        var text = where_.isEmpty ? "" : where_.joined(separator: ": ") + ": "
        text += kind == .io || kind == .invalidArgument || kind == .missing ? message : "\(kind.rawValue): \(message)"
        switch (expected, found) {
        case let (e?, f?): text += " (expected \(e), found \(f))"
        case let (e?, nil): text += " (expected \(e))"
        case let (nil, f?): text += " (found \(f))"
        default: break
        }
        return text
    }
}

extension EMCError {
    /// Adds the file to any EMCError thrown by `body`; other errors pass through unchanged.
    public static func locating<T>(file: String, place: Place? = nil, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as EMCError { throw error.at(file: file, place: place) }
    }
}
