import Foundation
import EMCCore

/// A model written as a string: `mlp:width=W,depth=D,act=relu` or
/// `cnn:channels=C,layers=L,growth=1|2,fc=H,act=relu`.
///
/// - mlp: D hidden layers of W units (default D = 2, the paper's 2-layer MLP), then the output layer.
/// - cnn: the paper's ConvNet. Per layer a 3×3 convolution (padding 1) + activation + 2×2 max-pool;
///   channels fixed (growth=1) or doubling each layer (growth=2); then a hidden FC of H units and
///   activation (fc=0: none), then the output layer.
public struct ModelSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Family: String, Sendable { case mlp, cnn }

    public var family: Family
    public var width = 16
    public var depth = 2
    public var channels = 16
    public var convLayers = 2
    public var growth = 1
    public var fc = 0
    public var activation: ActivationKind = .relu

    public init(family: Family) { self.family = family }

    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let familyName = parts.first, let family = Family(rawValue: familyName.lowercased()) else {
            throw EMCError(.invalidArgument, "model spec '\(text)' must start with mlp: or cnn: (e.g. mlp:width=16 or cnn:channels=8,layers=2)")
        }
        self.init(family: family)
        var options = try SpecOptions(parts.count > 1 ? parts[1] : "", spec: text)
        switch family {
        case .mlp:
            width = try options.int("width", default: 16, min: 1)
            depth = try options.int("depth", default: 2, min: 0)
        case .cnn:
            channels = try options.int("channels", default: 16, min: 1)
            convLayers = try options.int("layers", default: 2, min: 1)
            growth = try options.int("growth", default: 1, min: 1)
            guard growth == 1 || growth == 2 else { throw EMCError(.invalidArgument, "growth must be 1 or 2 in '\(text)'") }
            fc = try options.int("fc", default: 0, min: 0)
        }
        let act = options.string("act", default: "relu")
        guard let kind = ActivationKind(rawValue: act) else {
            throw EMCError(.invalidArgument, "unknown activation '\(act)'; use \(ActivationKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        activation = kind
        try options.rejectUnused()
    }

    public var description: String {
        switch family {
        case .mlp: return "mlp:width=\(width),depth=\(depth),act=\(activation.rawValue)"
        case .cnn: return "cnn:channels=\(channels),layers=\(convLayers),growth=\(growth),fc=\(fc),act=\(activation.rawValue)"
        }
    }

    /// The layers for inputs of `input` shape and `classes` outputs.
    public func layers(input: FeatureShape, classes: Int) throws -> [Layer] {
        var layers: [Layer] = []
        var shape = input
        switch family {
        case .mlp:
            if shape.height != 1 || shape.width != 1 { layers.append(Flatten(input: shape)); shape = .vector(shape.count) }
            for _ in 0..<depth {
                layers.append(Linear(input: shape, outputs: width)); shape = .vector(width)
                layers.append(Activation(activation, input: shape))
            }
        case .cnn:
            var c = channels
            for l in 0..<convLayers {
                guard shape.height >= 2 && shape.width >= 2 else {
                    throw EMCError(.invalidArgument, "\(self): layer \(l + 1) would pool a \(shape) input below 1×1; use fewer layers")
                }
                let conv = Conv2D(input: shape, outChannels: c, kernel: 3, stride: 1, padding: 1)
                layers.append(conv); shape = conv.outputShape
                let pool = MaxPool2D(input: shape, kernel: 2)
                if activation.isMonotonic {
                    // max-pool(act(x)) = act(max-pool(x)) for a non-decreasing act, with the same
                    // gradients (the window's first maximum wins either way): pooling first runs
                    // the activation on a quarter of the values.
                    layers.append(pool); shape = pool.outputShape
                    layers.append(Activation(activation, input: shape))
                } else {
                    layers.append(Activation(activation, input: shape))
                    layers.append(pool); shape = pool.outputShape
                }
                c *= growth
            }
            layers.append(Flatten(input: shape)); shape = .vector(shape.count)
            if fc > 0 {
                layers.append(Linear(input: shape, outputs: fc)); shape = .vector(fc)
                layers.append(Activation(activation, input: shape))
            }
        }
        layers.append(Linear(input: shape, outputs: classes))
        return layers
    }

    public func build(input: FeatureShape, classes: Int, maxBatch: Int) throws -> Model {
        Model(layers: try layers(input: input, classes: classes), maxBatch: maxBatch)
    }

    /// Parameter count without allocating the model.
    public func parameterCount(input: FeatureShape, classes: Int) throws -> Int {
        try layers(input: input, classes: classes).reduce(0) { $0 + $1.parameterCount }
    }
}

/// `key=value` options of a spec string, with errors that name the spec.
struct SpecOptions {
    private var values: [String: String] = [:]
    private var used: Set<String> = []
    let spec: String

    init(_ text: String, spec: String) throws {
        self.spec = spec
        for item in text.split(separator: ",") where !item.isEmpty {
            let kv = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, !kv[0].isEmpty else { throw EMCError(.invalidArgument, "'\(item)' in '\(spec)' is not key=value") }
            values[kv[0].lowercased()] = kv[1]
        }
    }

    mutating func string(_ key: String, default value: String) -> String {
        used.insert(key)
        return values[key] ?? value
    }

    mutating func int(_ key: String, default value: Int, min: Int) throws -> Int {
        used.insert(key)
        guard let text = values[key] else { return value }
        guard let v = Int(text), v >= min else { throw EMCError(.invalidArgument, "\(key)=\(text) in '\(spec)' must be a whole number ≥ \(min)") }
        return v
    }

    mutating func double(_ key: String, default value: Double?) throws -> Double? {
        used.insert(key)
        guard let text = values[key] else { return value }
        guard let v = Double(text), v.isFinite else { throw EMCError(.invalidArgument, "\(key)=\(text) in '\(spec)' is not a number") }
        return v
    }

    mutating func bool(_ key: String, default value: Bool) throws -> Bool {
        used.insert(key)
        guard let text = values[key]?.lowercased() else { return value }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw EMCError(.invalidArgument, "\(key)=\(text) in '\(spec)' must be true or false")
        }
    }

    func rejectUnused() throws {
        let unknown = Set(values.keys).subtracting(used)
        if !unknown.isEmpty {
            throw EMCError(.invalidArgument, "unknown option(s) \(unknown.sorted().joined(separator: ", ")) in '\(spec)'; known: \(used.sorted().joined(separator: ", "))")
        }
    }
}
