import EMCCore

extension ChannelStatistics {
    /// Exact per-channel mean and (population) standard deviation of 8-bit image samples, from
    /// per-channel histograms: one pass, no rounding drift, independent of sample order.
    public static func of(images samples: LabeledSamples) -> ChannelStatistics {
        let c = samples.schema.channels
        var histogram = [Int](repeating: 0, count: 256 * c)
        samples.data.withUnsafeBufferPointer { p in
            histogram.withUnsafeMutableBufferPointer { h in
                var channel = 0
                for byte in p {
                    h[channel * 256 + Int(byte)] += 1
                    channel += 1
                    if channel == c { channel = 0 }
                }
            }
        }
        var mean = [Double](), std = [Double]()
        for ch in 0..<c {
            var n = 0, sum = 0, sumSq = 0
            for v in 0..<256 {
                let k = histogram[ch * 256 + v]
                n += k
                sum += k * v
                sumSq += k * v * v
            }
            let m = n > 0 ? Double(sum) / Double(n) : 0
            mean.append(m)
            std.append(n > 0 ? max(0, Double(sumSq) / Double(n) - m * m).squareRoot() : 0)
        }
        return ChannelStatistics(mean: mean, std: std)
    }

    /// Per-feature mean and standard deviation of float32 tabular samples (two-pass in Double).
    public static func of(tabular samples: LabeledSamples) -> ChannelStatistics {
        let f = samples.schema.features
        var sum = [Double](repeating: 0, count: f), sq = [Double](repeating: 0, count: f)
        samples.data.withUnsafeBytes { raw in
            let values = raw.bindMemory(to: Float.self)
            for i in 0..<samples.count { for j in 0..<f { sum[j] += Double(values[i * f + j]) } }
            let n = Double(max(1, samples.count))
            for j in 0..<f { sum[j] /= n }
            for i in 0..<samples.count { for j in 0..<f { let d = Double(values[i * f + j]) - sum[j]; sq[j] += d * d } }
            for j in 0..<f { sq[j] = (sq[j] / n).squareRoot() }
        }
        return ChannelStatistics(mean: sum, std: sq)
    }

    public static func of(_ samples: LabeledSamples) -> ChannelStatistics {
        samples.schema.kind == .image ? of(images: samples) : of(tabular: samples)
    }
}
