/// What one sample is: an 8-bit image (H×W×C, interleaved) or a vector of float32 features.
public struct SampleSchema: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable { case image, tabular }

    public var kind: Kind
    public var height: Int
    public var width: Int
    public var channels: Int
    public var features: Int

    public static func image(height: Int, width: Int, channels: Int) -> SampleSchema {
        SampleSchema(kind: .image, height: height, width: width, channels: channels, features: 0)
    }

    public static func tabular(features: Int) -> SampleSchema {
        SampleSchema(kind: .tabular, height: 1, width: features, channels: 1, features: features)
    }

    /// Bytes one sample occupies.
    public var sampleBytes: Int { kind == .image ? height * width * channels : 4 * features }

    /// Values per sample (pixels × channels, or features).
    public var valuesPerSample: Int { kind == .image ? height * width * channels : features }

    /// The per-channel statistics' length: channels for images, features for tabular data.
    public var statisticsWidth: Int { kind == .image ? channels : features }

    public var description: String {
        kind == .image ? "\(height)×\(width)×\(channels) uint8 image" : "\(features) float32 features"
    }

    enum CodingKeys: String, CodingKey { case kind, height, width, channels, features, sampleBytes }

    public init(kind: Kind, height: Int, width: Int, channels: Int, features: Int) {
        self.kind = kind
        self.height = height
        self.width = width
        self.channels = channels
        self.features = features
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        height = try c.decode(Int.self, forKey: .height)
        width = try c.decode(Int.self, forKey: .width)
        channels = try c.decode(Int.self, forKey: .channels)
        features = try c.decode(Int.self, forKey: .features)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(height, forKey: .height)
        try c.encode(width, forKey: .width)
        try c.encode(channels, forKey: .channels)
        try c.encode(features, forKey: .features)
        try c.encode(sampleBytes, forKey: .sampleBytes)
    }

    /// Checks the shape is usable; the error names what is wrong.
    public func validate() throws {
        switch kind {
        case .image:
            guard height > 0, width > 0, (1...4).contains(channels), height * width * channels <= 1 << 26 else {
                throw EMCError(.format, "image shape \(height)×\(width)×\(channels) is not usable")
            }
        case .tabular:
            guard features > 0, features <= 1 << 24 else { throw EMCError(.format, "feature count \(features) is not usable") }
        }
    }
}

/// The label space: class count and names, and for CIFAR-100 the coarse (superclass) labels.
public struct ClassInfo: Codable, Sendable, Equatable {
    public var count: Int
    public var names: [String]
    public var coarseNames: [String]?
    /// coarseOfFine[fine] = coarse class id.
    public var coarseOfFine: [Int]?

    public init(count: Int, names: [String], coarseNames: [String]? = nil, coarseOfFine: [Int]? = nil) {
        self.count = count
        self.names = names
        self.coarseNames = coarseNames
        self.coarseOfFine = coarseOfFine
    }

    public func name(_ label: Int) -> String { label < names.count ? names[label] : "class \(label)" }
}
