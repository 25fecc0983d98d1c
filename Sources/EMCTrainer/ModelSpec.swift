import Foundation
import EMCCore

/// A model written as a string (docs/models.md has each family's layers and the PyTorch they match):
///
/// - `mlp:width=W,depth=D,act=relu`: D hidden layers of W units (default D = 2, the paper's 2-layer MLP), then the
///   output layer.
/// - `cnn:channels=C,layers=L,growth=1|2,fc=H,act=relu`: the paper's ConvNet. Per layer a 3×3 convolution (padding 1)
///   + activation + 2×2 max-pool; channels fixed (growth=1) or doubling each layer (growth=2); then a hidden FC of H
///   units and activation (fc=0: none), then the output layer.
/// - `resnet:width=k,blocks=b,stages=s,shortcut=projection|a|conv3,act=relu`: a stem (3×3 convolution to 16·k
///   channels, batch norm, activation), s stages of b basic blocks (channels doubling and stride 2 from the second
///   stage), global average pooling and the output layer. A shortcut that changes shape is a 1×1 convolution with batch
///   norm (`projection`, the default), the parameter-free option A (`a`, the CIFAR ResNet's) or a 3×3 convolution with
///   batch norm (`conv3`, the paper authors' code).
/// - `efficientnet:phi=p` or `efficientnet:width=w,depth=d`, with `stages=s`: EfficientNet-B0's MBConv stages with
///   compound scaling (width ×1.1^p, depth ×1.2^p; channels rounded to multiples of 8, repeats rounded up), SiLU,
///   squeeze-and-excitation; the first s of B0's seven stages (default all), then the 1×1 head convolution to 1280·w.
/// - `vit:dim=D,depth=L,heads=H,patch=P,mlp=R,pool=cls|mean`: patch embedding (a P×P convolution with stride P), a class
///   token (`cls`) or none (`mean`), learned position embeddings, L pre-LayerNorm encoder blocks (multi-head
///   self-attention, then an MLP of R·D units with GELU, each in a residual branch), a final LayerNorm, the class token
///   or the mean of the tokens, and the output layer.
/// - `py:path/to/models.py:make_model,key=value,...` or `py:package.module:make_model,...`: a researcher's own PyTorch
///   model (`PythonModel`), which only the torch trainer trains (docs/torch-worker.md).
public struct ModelSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Family: String, Sendable, Codable, CaseIterable {
        case mlp, cnn, resnet, efficientnet, vit
        /// A researcher's own `nn.Module` (`py:`), built by the torch trainer's worker.
        case python = "py"

        /// The convolutional families (the paper's "CNNs"): cnn, resnet, efficientnet.
        public var isConvolutional: Bool { self == .cnn || self == .resnet || self == .efficientnet }
        /// The activation a spec gets when it names none (`act=`).
        public var defaultActivation: ActivationKind { self == .efficientnet ? .silu : self == .vit ? .gelu : .relu }
    }
    public enum Shortcut: String, Sendable, CaseIterable { case projection, a, conv3 }

    public var family: Family
    public var width = 16
    public var depth = 2
    public var channels = 16
    public var convLayers = 2
    public var growth = 1
    public var fc = 0
    public var activation: ActivationKind = .relu
    // resnet
    public var widthFactor = 1.0
    public var blocks = 2
    public var stages = 3
    public var shortcut = Shortcut.projection
    // efficientnet (phi, when given, sets both multipliers)
    public var phi: Double?
    public var widthMultiplier = 1.0
    public var depthMultiplier = 1.0
    /// EfficientNet: how many of B0's seven MBConv stages (fewer for small inputs and fixtures).
    public var mbStages = 7
    // vit
    public var dim = 64
    public var encoderDepth = 2
    public var heads = 4
    public var patch = 4
    public var mlpRatio = 4
    public var classToken = true
    // py
    public var python: PythonModel?

    public init(family: Family) { self.family = family }

    public init(parsing text: String) throws {
        if text.hasPrefix("py:") {
            self.init(family: .python)
            python = try PythonModel(parsing: String(text.dropFirst(3)), spec: text)
            return
        }
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let familyName = parts.first, let family = Family(rawValue: familyName.lowercased()) else {
            throw EMCError(.invalidArgument, "model spec '\(text)' must start with mlp:, cnn:, resnet:, efficientnet:, vit: or py: "
                           + "(e.g. mlp:width=16, cnn:channels=8,layers=2, resnet:width=1,blocks=2, efficientnet:phi=0 or vit:dim=64,depth=2)")
        }
        self.init(family: family)
        var options = try SpecOptions(parts.count > 1 ? parts[1] : "", spec: text)
        // The upper bounds keep every layer's size arithmetic far from overflow; memory is checked when built.
        switch family {
        case .python: throw EMCError(.invalidArgument, "'\(text)': a PyTorch model reads py:path/to/models.py:make_model")
        case .mlp:
            width = try options.int("width", default: 16, in: 1...(1 << 20))
            depth = try options.int("depth", default: 2, in: 0...256)
        case .cnn:
            channels = try options.int("channels", default: 16, in: 1...(1 << 14))
            convLayers = try options.int("layers", default: 2, in: 1...32)
            growth = try options.int("growth", default: 1, in: 1...2)
            fc = try options.int("fc", default: 0, in: 0...(1 << 20))
        case .resnet:
            widthFactor = try options.double("width", default: 1, in: 1.0 / 16...64)
            blocks = try options.int("blocks", default: 2, in: 1...64)
            stages = try options.int("stages", default: 3, in: 1...6)
            shortcut = Shortcut(rawValue: try options.choice("shortcut", default: "projection", from: Shortcut.allCases.map(\.rawValue)))!
        case .efficientnet:
            if options.has("phi") && (options.has("width") || options.has("depth")) {
                throw EMCError(.invalidArgument, "'\(text)': give phi (compound scaling) or width and depth multipliers, not both")
            }
            if options.has("phi") {
                let p = try options.double("phi", default: 0, in: -12...8)
                phi = p
                widthMultiplier = pow(1.1, p)
                depthMultiplier = pow(1.2, p)
            } else {
                widthMultiplier = try options.double("width", default: 1, in: 0.05...8)
                depthMultiplier = try options.double("depth", default: 1, in: 0.05...8)
            }
            mbStages = try options.int("stages", default: 7, in: 1...7)
        case .vit:
            dim = try options.int("dim", default: 64, in: 1...(1 << 14))
            encoderDepth = try options.int("depth", default: 2, in: 0...64)
            heads = try options.int("heads", default: 4, in: 1...256)
            patch = try options.int("patch", default: 4, in: 1...512)
            mlpRatio = try options.int("mlp", default: 4, in: 1...16)
            classToken = try options.choice("pool", default: "cls", from: ["cls", "mean"]) == "cls"
            guard dim % heads == 0 else {
                throw EMCError(.invalidArgument, "'\(text)': dim=\(dim) does not split into heads=\(heads) heads; choose dim divisible by heads")
            }
        }
        activation = ActivationKind(rawValue: try options.choice("act", default: family.defaultActivation.rawValue,
                                                                 from: ActivationKind.allCases.map(\.rawValue)))!
        try options.rejectUnused()
    }

    /// The revision of the model's arithmetic in the native trainer: it goes up when a change alters the bits its training
    /// computes, and a search configuration's identity carries it from revision 2 on, so trials of two revisions never
    /// share a resume key or pool in a report. 1 for mlp, cnn, resnet and efficientnet. For vit, 2: attention's products
    /// and the token-wise linear maps' products whose sums are at most 64 long by emc's own kernels, each element one fused
    /// multiply-add chain; and 3 with a class token (`pool=cls`, the default) and at least one block: the last block
    /// computes the class token alone once every token's keys and values are known (the same function; its sums, over
    /// fewer rows, round differently). For resnet and efficientnet, 2: batch norm's per-channel sums and a depthwise
    /// convolution's filter gradient by micro-batches of `microBatchSamples` samples added in a fixed tree
    /// (`MicroBatchSums`), so that a team splits them by samples, as the layers around them, rather than by channels.
    public var arithmeticRevision: Int {
        switch family {
        case .vit: return classToken && encoderDepth > 0 ? 3 : 2
        case .resnet, .efficientnet: return 2
        case .mlp, .cnn, .python: return 1
        }
    }

    /// Samples per micro-batch of the sums over a batch in the native trainer (`MicroBatchSums`): 16 for resnet and
    /// efficientnet from their arithmetic revision 2, nil (each sum over the whole batch in order) for the others. A
    /// batch of at most 16 samples is one micro-batch, and the layers sum it as revision 1 did (the whole-batch path);
    /// 16 lets a batch of 128 split over up to 8 threads.
    public var microBatchSamples: Int? { family == .resnet || family == .efficientnet ? Self.microBatch : nil }

    /// The samples per micro-batch of every model that sums by micro-batches (`microBatchSamples`).
    public static let microBatch = 16

    public var description: String {
        switch family {
        case .python: return python?.description ?? "py:?"
        case .mlp: return "mlp:width=\(width),depth=\(depth),act=\(activation.rawValue)"
        case .cnn: return "cnn:channels=\(channels),layers=\(convLayers),growth=\(growth),fc=\(fc),act=\(activation.rawValue)"
        case .resnet:
            return "resnet:width=\(Self.format(widthFactor)),blocks=\(blocks),stages=\(stages),shortcut=\(shortcut.rawValue),act=\(activation.rawValue)"
        case .efficientnet:
            let stagesPart = mbStages == 7 ? "" : ",stages=\(mbStages)"
            if let phi { return "efficientnet:phi=\(Self.format(phi))\(stagesPart),act=\(activation.rawValue)" }
            return "efficientnet:width=\(Self.format(widthMultiplier)),depth=\(Self.format(depthMultiplier))\(stagesPart),act=\(activation.rawValue)"
        case .vit:
            return "vit:dim=\(dim),depth=\(encoderDepth),heads=\(heads),patch=\(patch),mlp=\(mlpRatio),pool=\(classToken ? "cls" : "mean"),act=\(activation.rawValue)"
        }
    }

    private static func format(_ v: Double) -> String { String(format: "%g", v) }

    /// A size option by the name the spec writes it (width, depth, channels, layers, blocks, dim...), as a number for
    /// plots; nil when the family has no such option.
    public func size(_ name: String) -> Double? {
        switch (family, name) {
        case (.mlp, "width"): return Double(width)
        case (.mlp, "depth"): return Double(depth)
        case (.cnn, "channels"): return Double(channels)
        case (.cnn, "layers"): return Double(convLayers)
        case (.cnn, "fc"): return Double(fc)
        case (.resnet, "width"): return widthFactor
        case (.resnet, "blocks"): return Double(blocks)
        case (.resnet, "stages"): return Double(stages)
        case (.efficientnet, "phi"): return phi
        case (.efficientnet, "width"): return phi == nil ? widthMultiplier : nil
        case (.efficientnet, "depth"): return phi == nil ? depthMultiplier : nil
        case (.vit, "dim"): return Double(dim)
        case (.vit, "depth"): return Double(encoderDepth)
        case (.vit, "heads"): return Double(heads)
        case (.vit, "patch"): return Double(patch)
        default: return nil
        }
    }

    /// The same architecture with another activation (a ReLU model and its tanh twin compare on this).
    public func with(activation: ActivationKind) -> ModelSpec {
        var spec = self
        spec.activation = activation
        return spec
    }

    /// Base channels of a resnet (16·k, at least 1).
    public var resnetBaseChannels: Int { max(1, Int((16 * widthFactor).rounded())) }

    /// EfficientNet-B0's stages (torchvision's table): expansion, kernel, stride, output channels, repeats.
    static let efficientNetB0: [(expand: Int, kernel: Int, stride: Int, channels: Int, repeats: Int)] = [
        (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1),
    ]

    /// torchvision's `_make_divisible(c·width, 8)`: the nearest multiple of 8, at least 8 and at least 90% of c·width.
    static func roundChannels(_ c: Int, _ width: Double) -> Int {
        let v = Double(c) * width
        var rounded = max(8, Int(v + 4) / 8 * 8)
        if Double(rounded) < 0.9 * v { rounded += 8 }
        return rounded
    }

    /// The layers for inputs of `input` shape and `classes` outputs.
    public func layers(input: FeatureShape, classes: Int) throws -> [Layer] {
        var layers: [Layer] = []
        var shape = input
        switch family {
        case .python:
            throw EMCError(.unsupported, "\(self) is a PyTorch model: only the torch trainer builds it (--trainer torch)")
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
        case .resnet: try resnetLayers(&layers, &shape)
        case .efficientnet: try efficientNetLayers(&layers, &shape)
        case .vit: try vitLayers(&layers, &shape)
        }
        layers.append(Linear(input: shape, outputs: classes))
        return layers
    }

    private func requireImage(_ shape: FeatureShape, atLeast side: Int, why: String) throws {
        guard shape.height >= side && shape.width >= side else {
            throw EMCError(.invalidArgument, "\(self) needs images of at least \(side)×\(side) (\(why)); the data's samples are \(shape)"
                           + (shape.height == 1 && shape.width == 1 ? " (vectors: use mlp)" : ""))
        }
    }

    /// A convolution without bias, then batch norm (the order of every ResNet and EfficientNet convolution), then the
    /// activation when `activated`.
    private func convBN(_ layers: inout [Layer], _ shape: inout FeatureShape, _ out: Int, kernel: Int, stride: Int, activated: Bool = false) {
        let conv = Conv2D(input: shape, outChannels: out, kernel: kernel, stride: stride, padding: (kernel - 1) / 2, bias: false)
        layers.append(conv); shape = conv.outputShape
        if activated { bnActivation(&layers, shape) } else { layers.append(BatchNorm(input: shape, microBatch: microBatchSamples)) }
    }

    /// Batch norm then the activation: one fused layer for ReLU (`BatchNorm(relu:)`, the same function in fewer passes).
    private func bnActivation(_ layers: inout [Layer], _ shape: FeatureShape) {
        if activation == .relu { layers.append(BatchNorm(input: shape, relu: true, microBatch: microBatchSamples)); return }
        layers.append(BatchNorm(input: shape, microBatch: microBatchSamples))
        layers.append(Activation(activation, input: shape))
    }

    private func resnetLayers(_ layers: inout [Layer], _ shape: inout FeatureShape) throws {
        try requireImage(shape, atLeast: 1 << (stages - 1), why: "\(stages) stages halve it \(stages - 1) times")
        var c = resnetBaseChannels
        convBN(&layers, &shape, c, kernel: 3, stride: 1, activated: true)
        for stage in 0..<stages {
            if stage > 0 { c *= 2 }
            for block in 0..<blocks {
                let stride = stage > 0 && block == 0 ? 2 : 1
                let input = shape
                var main: [Layer] = [], s = input
                convBN(&main, &s, c, kernel: 3, stride: stride, activated: true)
                convBN(&main, &s, c, kernel: 3, stride: 1)
                var side: [Layer] = []
                if stride != 1 || input.channels != c {
                    var t = input
                    switch shortcut {
                    case .projection: convBN(&side, &t, c, kernel: 1, stride: stride)
                    case .conv3: convBN(&side, &t, c, kernel: 3, stride: stride)
                    case .a: side.append(try ShortcutA(input: input, outChannels: c, stride: stride))
                    }
                }
                layers.append(try Residual(name: "basic-block", main: main, shortcut: side)); shape = s
                layers.append(Activation(activation, input: shape))
            }
        }
        layers.append(GlobalAvgPool(input: shape)); shape = .vector(shape.channels)
    }

    private func efficientNetLayers(_ layers: inout [Layer], _ shape: inout FeatureShape) throws {
        try requireImage(shape, atLeast: 8, why: "five stride-2 stages")
        convBN(&layers, &shape, Self.roundChannels(32, widthMultiplier), kernel: 3, stride: 2, activated: true)
        for stage in Self.efficientNetB0.prefix(mbStages) {
            let out = Self.roundChannels(stage.channels, widthMultiplier)
            let repeats = Int((Double(stage.repeats) * depthMultiplier).rounded(.up))
            for r in 0..<repeats {
                let stride = r == 0 ? stage.stride : 1
                let input = shape
                var main: [Layer] = [], s = input
                let expanded = input.channels * stage.expand
                if stage.expand != 1 {
                    main.append(Linear(input: s, outputs: expanded, pointwise: true, bias: false))
                    s = main.last!.outputShape
                    bnActivation(&main, s)
                }
                let dw = DepthwiseConv2D(input: s, kernel: stage.kernel, stride: stride, padding: (stage.kernel - 1) / 2, bias: false,
                                         microBatch: microBatchSamples)
                main.append(dw); s = dw.outputShape
                bnActivation(&main, s)
                main.append(SqueezeExcite(input: s, squeezed: max(1, input.channels / 4)))
                main.append(Linear(input: s, outputs: out, pointwise: true, bias: false))
                s = main.last!.outputShape
                main.append(BatchNorm(input: s, microBatch: microBatchSamples))
                if stride == 1 && input.channels == out {
                    layers.append(try Residual(name: "mbconv", main: main))
                } else {
                    layers.append(contentsOf: main)
                }
                shape = s
            }
        }
        let head = Self.roundChannels(1280, widthMultiplier)
        layers.append(Linear(input: shape, outputs: head, pointwise: true, bias: false)); shape = layers.last!.outputShape
        bnActivation(&layers, shape)
        layers.append(GlobalAvgPool(input: shape)); shape = .vector(shape.channels)
    }

    private func vitLayers(_ layers: inout [Layer], _ shape: inout FeatureShape) throws {
        guard shape.height % patch == 0 && shape.width % patch == 0 && shape.height >= patch && shape.width >= patch else {
            throw EMCError(.invalidArgument, "\(self): patch=\(patch) does not tile the data's \(shape) samples; choose a patch size that divides "
                           + "\(shape.height) and \(shape.width)" + (shape.height == 1 && shape.width == 1 ? " (vectors: use mlp)" : ""))
        }
        let embed = Conv2D(input: shape, outChannels: dim, kernel: patch, stride: patch)
        layers.append(embed); shape = embed.outputShape
        let tokens = PatchTokens(input: shape, classToken: classToken)
        layers.append(tokens); shape = tokens.outputShape
        // The token-wise maps by emc's in-place products (arithmetic revision 2).
        func tokenwise(_ input: FeatureShape, _ outputs: Int) -> Linear {
            Linear(input: input, outputs: outputs, pointwise: true, inPlaceProducts: true)
        }
        for block in 0..<encoderDepth {
            // A class-token ViT's head reads only the class token, so in the last block nothing reads the other tokens
            // after their keys and values: that block computes the class token's query, attention, projection and MLP
            // alone (the same function and gradients, without the other tokens' share of the block's work; arithmetic
            // revision 3). Its shortcut takes the class token of the block's input.
            let classOnly = classToken && block == encoderDepth - 1
            let qkv: Layer = classOnly ? ClassQueryProjection(input: shape) : tokenwise(shape, 3 * dim)
            let attention = try SelfAttention(input: qkv.outputShape, heads: heads, classQueryOnly: classOnly)
            layers.append(try Residual(name: "attention-block", main: [LayerNorm(input: shape), qkv, attention, tokenwise(attention.outputShape, dim)],
                                       shortcut: classOnly ? [TokenPool(input: shape, classToken: true)] : []))
            shape = attention.outputShape
            let hidden = tokenwise(shape, mlpRatio * dim)
            layers.append(try Residual(name: "mlp-block", main: [LayerNorm(input: shape), hidden, Activation(activation, input: hidden.outputShape),
                                                                tokenwise(hidden.outputShape, dim)]))
        }
        layers.append(LayerNorm(input: shape))
        if !classToken || encoderDepth == 0 { layers.append(TokenPool(input: shape, classToken: classToken)); shape = .vector(dim) }
    }

    /// The model, allocated for batches of up to `maxBatch`. Refused, before anything is allocated, when it would
    /// need more than `memoryLimit` bytes (default: this machine's physical memory).
    /// `threads`: the threads its passes split over (`ThreadTeam`; the same bits at any count).
    public func build(input: FeatureShape, classes: Int, maxBatch: Int, threads: Int = 1,
                      memoryLimit: Int = EMCEnvironment.physicalMemory) throws -> Model {
        let layers = try layers(input: input, classes: classes)
        try checkMemory(layers: layers, maxBatch: maxBatch, memoryLimit: memoryLimit)
        return Model(layers: layers, maxBatch: maxBatch, threads: threads)
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

    /// Throws, naming them, when a layer of this model has no R-operator yet: a search that asks for the Hessian check
    /// calls it before any training.
    public func checkHessianSupport(input: FeatureShape, classes: Int) throws {
        try Model.requireHessianSupport(try layers(input: input, classes: classes), model: description)
    }

    /// Parameter count without allocating the model.
    public func parameterCount(input: FeatureShape, classes: Int) throws -> Int {
        try layers(input: input, classes: classes).reduce(0) { $0 + $1.parameterCount }
    }
}
