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
        // The upper bounds keep every layer's size arithmetic far from overflow; memory is checked when built.
        switch family {
        case .mlp:
            width = try options.int("width", default: 16, in: 1...(1 << 20))
            depth = try options.int("depth", default: 2, in: 0...256)
        case .cnn:
            channels = try options.int("channels", default: 16, in: 1...(1 << 14))
            convLayers = try options.int("layers", default: 2, in: 1...32)
            growth = try options.int("growth", default: 1, in: 1...2)
            fc = try options.int("fc", default: 0, in: 0...(1 << 20))
        }
        activation = ActivationKind(rawValue: try options.choice("act", default: "relu", from: ActivationKind.allCases.map(\.rawValue)))!
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

    /// The model, allocated for batches of up to `maxBatch`. Refused, before anything is allocated, when it would
    /// need more than `memoryLimit` bytes (default: this machine's physical memory).
    public func build(input: FeatureShape, classes: Int, maxBatch: Int, memoryLimit: Int = EMCEnvironment.physicalMemory) throws -> Model {
        let layers = try layers(input: input, classes: classes)
        try checkMemory(layers: layers, maxBatch: maxBatch, memoryLimit: memoryLimit)
        return Model(layers: layers, maxBatch: maxBatch)
    }

    /// Throws when the model for batches of `maxBatch` would need more than `memoryLimit` bytes (nothing is allocated).
    public func checkMemory(input: FeatureShape, classes: Int, maxBatch: Int, memoryLimit: Int = EMCEnvironment.physicalMemory) throws {
        try checkMemory(layers: try layers(input: input, classes: classes), maxBatch: maxBatch, memoryLimit: memoryLimit)
    }

    private func checkMemory(layers: [Layer], maxBatch: Int, memoryLimit: Int) throws {
        guard maxBatch >= 1 else { throw EMCError(.invalidArgument, "the batch size must be at least 1, got \(maxBatch)") }
        let bytes = Model.estimatedBytes(layers: layers, maxBatch: maxBatch)
        guard let bytes, bytes <= memoryLimit else {
            let need = bytes.map { String(format: "about %.1f GiB", Double($0) / Double(1 << 30)) } ?? "more memory than can be counted"
            throw EMCError(.invalidArgument, "\(self) with batches of \(maxBatch) needs \(need) for its parameters, optimizer state and "
                           + "activations; this machine has \(String(format: "%.1f GiB", Double(memoryLimit) / Double(1 << 30)))",
                           remedy: .smallerModelOrBatch)
        }
    }

    /// Parameter count without allocating the model.
    public func parameterCount(input: FeatureShape, classes: Int) throws -> Int {
        try layers(input: input, classes: classes).reduce(0) { $0 + $1.parameterCount }
    }
}
