import EMCCore
import EMCShards
import Foundation

/// A procedural, class-conditional image set: a stand-in for ImageNet-20MS (20 million 128×128 images in
/// 10 classes sampled from a diffusion model), which cannot be shipped, so that users can plan and test at
/// that scale. Every image is a pure function of (seed, split, index): its class is drawn uniformly.
///
/// A class is a **shape and a texture**, never a colour: class k has shape k mod 6 (disc, square, triangle, ring,
/// cross, diamond) and texture ⌊k / 6⌋ mod 3 (stripes, checks, plain), with a per-class texture frequency when there
/// are more than 18 classes. Everything else varies within a class: the object's position, rotation, scale and aspect,
/// its colour and the background's (independent of the class), a background gradient, one to three smaller
/// distractor objects of random shapes and colours (clutter), and pixel noise. A model has to find the largest object
/// and read its outline and texture: on 32×32 images a small CNN neither fails nor fits it easily (the README gives
/// the measured numbers).
public struct SyntheticImages: Sendable {
    public let size: Int
    public let classes: Int
    public let seed: UInt64
    /// The generator's version, recorded in the manifest (version 1 drew each class in its own colours: too easy).
    public static let generator = "shapes-textures/2"

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

    static let shapes = 6, textures = 3

    /// Whether (u, v), in the object's own frame (unit radius), is inside shape `kind`.
    @inline(__always)
    static func inside(_ kind: Int, _ u: Float, _ v: Float) -> Bool {
        switch kind {
        case 0: return u * u + v * v < 1
        case 1: return abs(u) < 0.8 && abs(v) < 0.8
        case 2: return v > -0.6 && v < 0.9 - 1.7 * abs(u)
        case 3: let r = u * u + v * v; return r < 1 && r > 0.35
        case 4: return (abs(u) < 0.3 && abs(v) < 1) || (abs(v) < 0.3 && abs(u) < 1)
        default: return abs(u) + abs(v) < 1
        }
    }

    /// One object: centre, radius, aspect, rotation, shape, colour.
    struct Object {
        var cx: Float, cy: Float, radius: Float, aspect: Float, ca: Float, sa: Float, shape: Int, colour: [Float]
    }

    /// A uniform draw in [0, 1) from one 32-bit word.
    @inline(__always)
    static func unit(_ w: UInt32) -> Float { Float(w >> 8) / 16_777_216 }

    /// Renders image `index` (its label is `label(index)`) into `out` (size × size × 3 bytes).
    public func render(_ index: UInt64, into out: UnsafeMutableRawBufferPointer) {
        let k = Int(label(index))
        let shape = k % Self.shapes, texture = (k / Self.shapes) % Self.textures
        let frequency: Float = 2.2 + Float(k / (Self.shapes * Self.textures)) * 0.9
        let rng = CounterRNG(seed: seed, stream: .synthetic).derived(index)
        let b0 = rng.block(index: 0), b1 = rng.block(index: 1), b2 = rng.block(index: 2)
        let s = Float(size)
        func object(_ words: (UInt32, UInt32, UInt32, UInt32), _ extra: (UInt32, UInt32, UInt32, UInt32), shape: Int, big: Bool) -> Object {
            let radius = s * (big ? 0.26 + 0.12 * Self.unit(words.2) : 0.06 + 0.05 * Self.unit(words.2))
            let margin = radius / s
            let angle = Self.unit(words.3) * 2 * .pi
            let colour = hsv(Self.unit(extra.0), 0.45 + 0.5 * Self.unit(extra.1), 0.45 + 0.5 * Self.unit(extra.2))
            return Object(cx: s * (margin + (1 - 2 * margin) * Self.unit(words.0)), cy: s * (margin + (1 - 2 * margin) * Self.unit(words.1)),
                          radius: radius, aspect: 0.75 + 0.5 * Self.unit(extra.3), ca: cos(angle), sa: sin(angle), shape: shape, colour: colour)
        }
        let main = object(b0, b1, shape: shape, big: true)
        // Background: a random colour, darker or lighter, with a gradient in a random direction.
        let background = hsv(Self.unit(b2.0), 0.2 + 0.5 * Self.unit(b2.1), 0.2 + 0.6 * Self.unit(b2.2))
        let gradientAngle = Self.unit(b2.3) * 2 * .pi
        let (ga, gb) = (cos(gradientAngle) / s, sin(gradientAngle) / s)
        // Clutter: one to three smaller objects of random shapes, drawn under the main one.
        let clutter = 1 + Int(rng.block(index: 3).0 % 3)
        var distractors: [Object] = []
        for d in 0..<clutter {
            let w = rng.block(index: UInt64(10 + 2 * d)), e = rng.block(index: UInt64(11 + 2 * d))
            distractors.append(object(w, e, shape: Int(e.0 % UInt32(Self.shapes)), big: false))
        }
        let p = out.bindMemory(to: UInt8.self)
        let noise = rng.derived(1)
        var pixel = [Float](repeating: 0, count: 3)
        for y in 0..<size {
            for x in 0..<size {
                let fx = Float(x) + 0.5, fy = Float(y) + 0.5
                let shade = 0.7 + 0.6 * ((fx - s / 2) * ga + (fy - s / 2) * gb)
                for c in 0..<3 { pixel[c] = background[c] * shade }
                for o in distractors {
                    let dx = fx - o.cx, dy = fy - o.cy
                    let u = (dx * o.ca + dy * o.sa) / (o.radius * o.aspect), v = (-dx * o.sa + dy * o.ca) / o.radius
                    if Self.inside(o.shape, u, v) { for c in 0..<3 { pixel[c] = o.colour[c] } }
                }
                let dx = fx - main.cx, dy = fy - main.cy
                let u = (dx * main.ca + dy * main.sa) / (main.radius * main.aspect), v = (-dx * main.sa + dy * main.ca) / main.radius
                if Self.inside(shape, u, v) {
                    let t: Float
                    switch texture {
                    case 0: t = sin(u * frequency * .pi) > 0 ? 1 : 0.45
                    case 1: t = sin(u * frequency * .pi) * sin(v * frequency * .pi) > 0 ? 1 : 0.45
                    default: t = 0.85
                    }
                    for c in 0..<3 { pixel[c] = main.colour[c] * t }
                }
                let w = noise.word(UInt64(y * size + x))
                for c in 0..<3 {
                    let value = pixel[c] * 255 + Float(w >> (8 * UInt32(c)) & 0xF) - 7.5
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
                                        extraOptions: ["size": "\(size)", "classes": "\(classes)", "seed": "\(seed)", "generator": Self.generator,
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
