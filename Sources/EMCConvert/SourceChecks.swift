import EMCCore
import EMCFormats
import EMCShards

/// The result of checking one raw file against its published checksum.
public struct SourceCheck: Sendable, Encodable {
    public enum Status: String, Sendable, Encodable {
        /// The file's MD5 equals the published one.
        case match
        /// The file differs but its decompressed content equals the published content (a recompressed copy).
        case contentMatch = "content-match"
        /// Neither matches: a different or damaged file.
        case mismatch
        /// Nothing is published to compare with.
        case unknown
    }

    public var file: String
    public var bytes: Int
    public var md5: String
    public var status: Status
    public var expected: String?

    public var source: SourceFile { SourceFile(file: FileSystem.baseName(file), bytes: bytes, md5: md5) }
}

enum SourceChecks {
    /// MD5s `path` and compares it with what `published` says.
    /// `contentMD5` is the MD5 of the decompressed content when the decoder already computed it.
    static func check(path: String, md5: String, published: DatasetDefinition.PublishedFile?, contentMD5: String?) -> SourceCheck {
        let bytes = FileSystem.fileSize(path) ?? 0
        guard let published, published.md5 != nil || published.contentMD5 != nil else {
            return SourceCheck(file: path, bytes: bytes, md5: md5, status: .unknown)
        }
        if md5 == published.md5 { return SourceCheck(file: path, bytes: bytes, md5: md5, status: .match, expected: published.md5) }
        if let content = published.contentMD5 {
            if md5 == content { return SourceCheck(file: path, bytes: bytes, md5: md5, status: .contentMatch, expected: content) }
            if contentMD5 == content { return SourceCheck(file: path, bytes: bytes, md5: md5, status: .contentMatch, expected: content) }
        }
        return SourceCheck(file: path, bytes: bytes, md5: md5, status: .mismatch, expected: published.md5 ?? published.contentMD5)
    }
}
