import EMCCore

/// Per-channel counts of 8-bit values: exact means and standard deviations in one pass, in any order.
public struct ChannelHistogram: Sendable {
    public let channels: Int
    public private(set) var counts: [Int]

    public init(channels: Int) {
        self.channels = channels
        counts = [Int](repeating: 0, count: 256 * channels)
    }

    /// Counts interleaved samples' bytes (channel = byte index mod channels).
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        let c = channels
        counts.withUnsafeMutableBufferPointer { h in
            var channel = 0
            for byte in bytes {
                h[channel * 256 + Int(byte)] += 1
                channel += 1
                if channel == c { channel = 0 }
            }
        }
    }

    public mutating func add(_ bytes: [UInt8]) { bytes.withUnsafeBytes { add($0) } }

    public mutating func merge(_ other: ChannelHistogram) {
        for i in counts.indices { counts[i] += other.counts[i] }
    }

    /// Population mean and standard deviation per channel.
    public var statistics: ChannelStatistics {
        var mean = [Double](), std = [Double]()
        for ch in 0..<channels {
            var n = 0, sum = 0, sumSq = 0
            for v in 0..<256 {
                let k = counts[ch * 256 + v]
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
}

extension ChannelStatistics {
    /// Exact per-channel mean and (population) standard deviation of 8-bit image samples, from
    /// per-channel histograms: one pass, no rounding drift, independent of sample order.
    public static func of(images samples: LabeledSamples) -> ChannelStatistics {
        var histogram = ChannelHistogram(channels: samples.schema.channels)
        histogram.add(samples.data)
        return histogram.statistics
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
