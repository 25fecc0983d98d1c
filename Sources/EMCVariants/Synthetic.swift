import EMCCore
import EMCShards
import Foundation

/// A procedural, class-conditional image set: a stand-in for ImageNet-20MS (20 million 128×128 images in
/// 10 classes sampled from a diffusion model), which cannot be shipped, so that users can plan and test at
/// that scale. Every image is a pure function of (seed, split, index): its class is drawn uniformly, and each
/// class has its own distribution of shape (disc, square, triangle, ring, stripes), colour palette and texture
/// frequency over a gradient background, with per-image position, size, colour jitter and pixel noise.
public struct SyntheticImages: Sendable {
    public let size: Int
    public let classes: Int
    public let seed: UInt64

    public init(size: Int, classes: Int, seed: UInt64) throws {
        guard size >= 8 && size <= 1024 else { throw EMCError(.invalidArgument, "the image size must be 8...1024, not \(size)") }
        guard classes >= 2 && classes <= 1000 else { throw EMCError(.invalidArgument, "the number of classes must be 2...1000, not \(classes)") }
        self.size = size
        self.classes = classes
        self.seed = seed
    }

    public var schema: SampleSchema { .image(height: size, width: size, channels: 3) }

    /// Index space of a split: train images are 0..., test images 2^40...
    public static func globalIndex(split: String, _ i: Int) -> UInt64 { (split == "train" ? 0 : 1 << 40) + UInt64(i) }

    public func label(_ index: UInt64) -> UInt32 { CounterRNG(seed: seed, stream: .synthetic).int(index, below: UInt32(classes)) }

    /// Per-class parameters: shape kind, hue of shape and background, texture frequency.
    struct ClassStyle {
        var shape: Int
        var hue: Float
        var backgroundHue: Float
        var frequency: Float
    }

    func style(_ k: Int) -> ClassStyle {
        let b = CounterRNG(seed: seed ^ 0x5EED, stream: .synthetic).block(index: UInt64(k))
        return ClassStyle(shape: k % 5, hue: (Float(k) + Float(b.0 % 1000) / 2000) / Float(classes),
                          backgroundHue: Float(b.1 % 1000) / 1000, frequency: 2 + Float(k / 5 % 4) * 3 + Float(b.2 % 100) / 100)
    }

    /// Renders image `index` (its label is `label(index)`) into `out` (size × size × 3 bytes).
    public func render(_ index: UInt64, into out: UnsafeMutableRawBufferPointer) {
        let k = Int(label(index))
        let st = style(k)
        let rng = CounterRNG(seed: seed, stream: .synthetic).derived(index)
        let b = rng.block(index: 0)
        let s = Float(size)
        let cx = s * (0.3 + 0.4 * Float(b.0 % 1000) / 1000), cy = s * (0.3 + 0.4 * Float(b.1 % 1000) / 1000)
        let radius = s * (0.15 + 0.15 * Float(b.2 % 1000) / 1000)
        let jitter = (Float(b.3 % 1000) / 1000 - 0.5) * 0.08
        let shapeColour = hsv(st.hue + jitter, 0.8, 0.9)
        let background = hsv(st.backgroundHue, 0.3, 0.35)
        let angle = Float(rng.block(index: 1).0 % 6283) / 1000
        let (ca, sa) = (cos(angle), sin(angle))
        let p = out.bindMemory(to: UInt8.self)
        let noise = rng.derived(1)
        for y in 0..<size {
            for x in 0..<size {
                let fx = Float(x) - cx, fy = Float(y) - cy
                let u = (fx * ca + fy * sa) / radius, v = (-fx * sa + fy * ca) / radius
                let inside: Bool
                switch st.shape {
                case 0: inside = u * u + v * v < 1
                case 1: inside = abs(u) < 0.85 && abs(v) < 0.85
                case 2: inside = v > -0.7 && v < 0.9 - 1.6 * abs(u)
                case 3: let r = u * u + v * v; inside = r < 1 && r > 0.4
                default: inside = abs(u) < 1.2 && abs(v) < 1.2 && sin(u * st.frequency) > 0
                }
                let texture = 0.08 * sin((Float(x) + Float(y)) * st.frequency * 0.05)
                let shade = 0.75 + 0.25 * Float(y) / s
                let w = noise.word(UInt64(y * size + x))
                for c in 0..<3 {
                    let base = inside ? shapeColour[c] + texture : background[c] * shade
                    let value = base * 255 + Float(w >> (8 * UInt32(c)) & 0x7) - 3.5
                    p[(y * size + x) * 3 + c] = UInt8(max(0, min(255, value)))
                }
            }
        }
    }

    func hsv(_ h: Float, _ s: Float, _ v: Float) -> [Float] {
        let hh = (h - h.rounded(.down)) * 6
        let i = Int(hh) % 6, f = hh - Float(Int(hh))
        let p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f))
        switch i {
        case 0: return [v, t, p]
        case 1: return [q, v, p]
        case 2: return [p, v, t]
        case 3: return [p, q, v]
        case 4: return [t, p, v]
        default: return [v, p, q]
        }
    }

    /// Writes `train` + `test` images straight into a shard set, in parallel, with memory bounded by the
    /// writer's chunk window (independent of the sample count).
    public func write(to directory: String, train: Int, test: Int, options: ShardSetOptions, progress: ProgressReporter?) throws -> DatasetManifest {
        var opts = options
        opts.shuffle = false  // generation order is already i.i.d.: every prefix is a uniform random subset
        let writer = try ShardSetWriter(directory: directory, name: "synthetic-\(size)px-\(classes)c", schema: schema,
                                        classes: ClassInfo(count: classes, names: (0..<classes).map { "class \($0)" }),
                                        options: opts, decoder: "synth", sources: [],
                                        extraOptions: ["size": "\(size)", "classes": "\(classes)", "seed": "\(seed)",
                                                       "statistics": "estimated from the first \(min(train, 2000)) train images"])
        writer.setCodec(options.codec ?? CodecSpec.automatic(for: writer.schema, sample: nil))
        writer.setStatistics(try estimateStatistics(count: min(train, 2000)))
        let sb = schema.sampleBytes
        for (split, n) in [("train", train), ("test", test)] where n > 0 {
            let generator = self
            try writer.write(split: split, count: n, progress: progress, shuffled: true) { positions, data, labels, indices in
                for (k, p) in positions.enumerated() {
                    let index = SyntheticImages.globalIndex(split: split, p)
                    generator.render(index, into: UnsafeMutableRawBufferPointer(rebasing: data[(k * sb)..<((k + 1) * sb)]))
                    labels[k] = generator.label(index).littleEndian
                    indices[k] = index.littleEndian
                }
            }
        }
        return try writer.finish()
    }

    func estimateStatistics(count: Int) throws -> ChannelStatistics {
        let sb = schema.sampleBytes
        var data = [UInt8](repeating: 0, count: max(1, count) * sb)
        data.withUnsafeMutableBytes { out in
            for i in 0..<count { render(UInt64(i), into: UnsafeMutableRawBufferPointer(rebasing: out[(i * sb)..<((i + 1) * sb)])) }
        }
        return .of(images: LabeledSamples(schema: schema, data: data, labels: [UInt32](repeating: 0, count: max(1, count))))
    }
}
