import Foundation

/// What Foundation's JSON parser lets through or cannot survive, checked before it runs: nesting deeper than a
/// manifest ever needs (a parser's recursion would run out of stack), the same key twice in one object (the parser
/// keeps one silently), and numbers beyond a Double (1e999 would become infinity). Manifests are small; one pass.
public enum JSONCheck {
    /// The deepest nesting a manifest may have.
    public static let maxDepth = 64

    /// Throws an error (without a file: the caller adds it) that says what and where (a byte offset in the message).
    public static func check(_ bytes: [UInt8]) throws {
        struct Frame { var keys: Set<String>?; var expectingKey: Bool }
        var stack: [Frame] = []
        var i = 0
        func fail(_ message: String) -> EMCError { EMCError(.format, "\(message) (at byte \(i))") }
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard stack.count < maxDepth else { throw fail("nested deeper than \(maxDepth) levels") }
                stack.append(Frame(keys: b == UInt8(ascii: "{") ? [] : nil, expectingKey: b == UInt8(ascii: "{")))
                i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if !stack.isEmpty { stack.removeLast() }
                i += 1
            case UInt8(ascii: ","):
                if let top = stack.indices.last, stack[top].keys != nil { stack[top].expectingKey = true }
                i += 1
            case UInt8(ascii: ":"):
                if let top = stack.indices.last { stack[top].expectingKey = false }
                i += 1
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                var escaped = false
                while i < bytes.count && bytes[i] != UInt8(ascii: "\"") {
                    if bytes[i] == UInt8(ascii: "\\") { escaped = true; i += 1 }
                    i += 1
                }
                i += 1
                guard let top = stack.indices.last, stack[top].keys != nil, stack[top].expectingKey else { continue }
                let token = Array(bytes[start..<min(i, bytes.count)])
                let key = escaped ? ((try? JSONSerialization.jsonObject(with: Data(token), options: .fragmentsAllowed)) as? String)
                    : String(decoding: token.dropFirst().dropLast(), as: UTF8.self)
                guard let key else { continue }  // a malformed string: the parser says so
                if stack[top].keys!.contains(key) {
                    i = start
                    throw fail("duplicate key \"\(key)\": the same key twice in one object (JSON keeps only one of them)")
                }
                stack[top].keys!.insert(key)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = i
                while i < bytes.count, "+-.0123456789eE".utf8.contains(bytes[i]) { i += 1 }
                let text = String(decoding: bytes[start..<i], as: UTF8.self)
                if let value = Double(text), !value.isFinite {
                    i = start
                    throw fail("the number \(text) is out of range")
                }
            default:
                i += 1
            }
        }
    }

    /// The JSON object in `bytes` after `check`; errors say what is wrong ("not valid JSON (...)", "not a JSON object").
    public static func object(_ bytes: [UInt8], what: String) throws -> [String: Any] {
        try check(bytes)
        let value: Any
        do { value = try JSONSerialization.jsonObject(with: Data(bytes)) } catch {
            throw EMCError(.format, "not valid JSON (\((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)")); \(what)")
        }
        guard let object = value as? [String: Any] else { throw EMCError(.format, "not a JSON object; \(what)") }
        return object
    }
}
