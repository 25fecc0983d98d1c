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
    /// What the user can do about it, when there is one thing to do.
    public var remedy: Remedy?

    public init(_ kind: Kind, _ message: String, file: String? = nil, place: Place? = nil,
                expected: String? = nil, found: String? = nil, remedy: Remedy? = nil) {
        self.remedy = remedy
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
        if let remedy { text += "; " + remedy.description }
        return text
    }
}

/// What a user can do about an error. Typed, because libraries know no command line: the library says it in
/// plain words (`description`), and the command line names the flag that does it.
public enum Remedy: Sendable, Equatable, CustomStringConvertible {
    /// Replace what is already at the output (a shard set or variant).
    case replaceOutput
    /// Choose another output folder.
    case otherOutput
    /// Replace the file already at an output path, or write it elsewhere.
    case replaceFile
    /// Write the output somewhere else (it names an input).
    case otherPath
    /// Raise the image pixel limit (the file is genuine).
    case raisePixelLimit
    /// State the number of classes (this many, when known).
    case giveClassCount(Int?)
    /// Use a smaller model or batch.
    case smallerModelOrBatch
    /// Normalise inputs another way (unit or none).
    case otherNormalization
    /// Say where the dataset definitions are.
    case definitionsFolder
    /// Choose which splits change.
    case chooseSplits
    /// Replace the report in a report folder, or write it into another folder.
    case replaceReport
    /// Write the report into another folder.
    case otherReportFolder

    public var description: String {
        switch self {
        case .replaceOutput: return "allow replacing it, or choose another output folder"
        case .otherOutput: return "choose another output folder"
        case .replaceFile: return "allow replacing it, or write it elsewhere"
        case .otherPath: return "write it elsewhere"
        case .raisePixelLimit: return "raise the pixel limit if the file is genuine"
        case .giveClassCount(let n): return n.map { "if \($0) classes is right, give the class count" } ?? "give the class count"
        case .smallerModelOrBatch: return "choose a smaller model or batch"
        case .otherNormalization: return "normalise by 255 or not at all instead"
        case .definitionsFolder: return "say where the dataset definitions are (or set EMC_MANIFESTS)"
        case .chooseSplits: return "relabel every split"
        case .replaceReport: return "allow replacing the report there, or choose another folder"
        case .otherReportFolder: return "choose another folder for the report"
        }
    }
}

extension EMCError {
    /// Adds the file to any EMCError thrown by `body`; other errors pass through unchanged.
    public static func locating<T>(file: String, place: Place? = nil, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as EMCError { throw error.at(file: file, place: place) }
    }
}
