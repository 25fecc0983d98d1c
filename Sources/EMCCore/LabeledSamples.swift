/// A split decoded into memory: `count` fixed-size samples back to back, and their labels.
/// This is what a decoder hands to the shard writer.
public struct LabeledSamples: Sendable {
    public var schema: SampleSchema
    public var data: [UInt8]
    public var labels: [UInt32]

    public init(schema: SampleSchema, data: [UInt8], labels: [UInt32]) {
        precondition(data.count == labels.count * schema.sampleBytes, "LabeledSamples: data size does not match labels × sample size")
        self.schema = schema
        self.data = data
        self.labels = labels
    }

    public var count: Int { labels.count }

    /// The bytes of sample `i`.
    public func sample(_ i: Int) -> ArraySlice<UInt8> {
        data[(i * schema.sampleBytes)..<((i + 1) * schema.sampleBytes)]
    }
}
