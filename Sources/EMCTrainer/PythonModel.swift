import EMCCore
import Foundation

/// A researcher's own PyTorch model, written `py:MODULE:CALLABLE,key=value,...`: MODULE is a Python file (a path ending
/// in `.py`, relative to the folder emc runs in) or a dotted module name on the worker's path, CALLABLE a function of
/// it that receives the input shape (C, H, W) or (F,), the class count and the keys, and returns an `nn.Module`. Values
/// are typed by their literal in the worker: integers, floats, `true`/`false`, otherwise strings. The torch trainer's
/// worker builds it; its parameter count and a hash of its source come from the worker before any trial
/// (docs/torch-worker.md).
public struct PythonModel: Sendable, Equatable, CustomStringConvertible {
    public var module: String
    public var callable: String
    /// The keys in the order written; the canonical description sorts them.
    public var options: [Option]

    public struct Option: Sendable, Equatable {
        public var key: String
        public var value: String
    }

    /// Whether `module` names a file (a path) rather than a dotted module.
    public var isFile: Bool { module.hasSuffix(".py") || module.contains("/") }

    public init(parsing body: String, spec: String) throws {
        func bad(_ why: String) -> EMCError {
            EMCError(.invalidArgument, "'\(spec)': \(why); a PyTorch model reads py:path/to/models.py:make_model,key=value or py:package.module:make_model")
        }
        let head = body.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false)
        guard let target = head.first, let colon = target.lastIndex(of: ":") else { throw bad("it names no module and function") }
        module = String(target[..<colon])
        callable = String(target[target.index(after: colon)...])
        guard !module.isEmpty, !module.contains("\0") else { throw bad("the module is empty") }
        guard let first = callable.first, first == "_" || first.isLetter,
              callable.allSatisfy({ $0 == "_" || $0.isLetter || $0.isNumber }) else { throw bad("'\(callable)' is not a Python function name") }
        if !(module.hasSuffix(".py") || module.contains("/")) {
            guard module.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ part in
                guard let c = part.first, c == "_" || c.isLetter else { return false }
                return part.allSatisfy { $0 == "_" || $0.isLetter || $0.isNumber }
            }) else { throw bad("'\(module)' is neither a .py file nor a dotted module name") }
        }
        options = []
        if head.count == 2 {
            for item in head[1].split(separator: ",", omittingEmptySubsequences: false) {
                let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty else { throw bad("'\(item)' is not key=value") }
                guard let c = kv[0].first, c == "_" || c.isLetter, kv[0].allSatisfy({ $0 == "_" || $0.isLetter || $0.isNumber }) else {
                    throw bad("'\(kv[0])' is not a Python keyword")
                }
                guard !options.contains(where: { $0.key == kv[0] }) else { throw bad("\(kv[0]) is given twice") }
                guard !["shape", "classes"].contains(kv[0]) else { throw bad("\(kv[0]) is passed by emc itself") }
                options.append(Option(key: kv[0], value: kv[1]))
            }
        }
    }

    /// `py:MODULE:CALLABLE` with the keys sorted (the same model however its keys were ordered).
    public var description: String {
        "py:\(module):\(callable)" + options.sorted { $0.key < $1.key }.map { ",\($0.key)=\($0.value)" }.joined()
    }

    /// The same model with a relative file path resolved against `folder` (a manifest's).
    public func resolved(against folder: String) -> PythonModel {
        guard isFile, !module.hasPrefix("/") else { return self }
        var copy = self
        copy.module = FileSystem.join(folder, module)
        return copy
    }
}
