import EMCCore

/// Seeded synthetic samples for tests: smooth image fields with mild noise, or float features.
public enum Fixtures {
    public static func images(count: Int, height: Int = 8, width: Int = 8, channels: Int = 3, classes: Int = 10,
                              seed: UInt64 = 1) -> LabeledSamples {
        let rng = CounterRNG(seed: seed, stream: .test)
        let schema = SampleSchema.image(height: height, width: width, channels: channels)
        var data = [UInt8](repeating: 0, count: count * schema.sampleBytes)
        var labels = [UInt32](repeating: 0, count: count)
        for i in 0..<count {
            labels[i] = rng.int(UInt64(i) << 20, below: UInt32(classes))
            for y in 0..<height {
                for x in 0..<width {
                    for c in 0..<channels {
                        let j = ((y * width + x) * channels + c)
                        let base = (x * 7 + y * 5 + c * 40 + Int(labels[i]) * 20) % 200
                        data[i * schema.sampleBytes + j] = UInt8(base + Int(rng.word(UInt64(i) << 20 | UInt64(j + 1)) % 8))
                    }
                }
            }
        }
        return LabeledSamples(schema: schema, data: data, labels: labels)
    }

    public static func tabular(count: Int, features: Int = 5, classes: Int = 3, seed: UInt64 = 2) -> LabeledSamples {
        let rng = CounterRNG(seed: seed, stream: .test)
        var values = [Float](repeating: 0, count: count * features)
        for i in 0..<values.count { values[i] = Float(rng.normal(UInt64(i))) }
        let data = values.withUnsafeBytes { Array($0) }
        let labels = (0..<count).map { rng.int(UInt64(1 << 40 | $0), below: UInt32(classes)) }
        return LabeledSamples(schema: .tabular(features: features), data: data, labels: labels)
    }
}
