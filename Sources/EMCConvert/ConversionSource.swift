import EMCCore
import EMCShards
import Foundation

/// One raw dataset, opened and checked, ready to be written: what every decoder hands the conversion driver.
///
/// A source knows its schema, classes and each split's sample count before anything is written (shard
/// headers need them), and delivers samples either all in memory or on demand, a few chunks at a time.
protocol ConversionSource {
    var schema: SampleSchema { get }
    var classes: ClassInfo { get }
    /// Source files with their checksum verdicts (they also identify the conversion in its run key).
    var checks: [SourceCheck] { get }
    var warnings: [String] { get }
    /// Decoder options recorded in the manifest and the run key (image size, feature names, sample order...).
    var recordedOptions: [String: String] { get }
    /// Splits in writing order (train first).
    var splits: [SplitSource] { get }
    /// Files left out (image folders with --skip-bad).
    var skipped: [String] { get }
    /// What progress counts ("samples", "images", "rows").
    var unit: String { get }
    /// Bytes of real samples for choosing the automatic codec (nil: judged by the schema alone).
    var codecSample: [UInt8]? { get }
}

extension ConversionSource {
    var warnings: [String] { [] }
    var recordedOptions: [String: String] { [:] }
    var skipped: [String] { [] }
    var unit: String { "samples" }
    var codecSample: [UInt8]? { nil }
}

/// One split as a source delivers it.
enum SplitSource {
    /// Every sample in memory; the writer shuffles them and computes their statistics.
    case inMemory(String, LabeledSamples)
    /// Samples produced on demand for a range of split positions, from several threads at once.
    case streamed(StreamedSplit)

    var name: String {
        switch self {
        case .inMemory(let name, _): return name
        case .streamed(let s): return s.name
        }
    }

    var count: Int {
        switch self {
        case .inMemory(_, let samples): return samples.count
        case .streamed(let s): return s.count
        }
    }
}

/// A split whose samples a source makes when the writer asks for them.
struct StreamedSplit: Sendable {
    var name: String
    var count: Int
    /// Whether a prefix of the written order is a uniform random subset (nil: the writer's shuffle decides).
    var shuffled: Bool?
    /// Fills `data`, `labels` and `indices` for split positions `positions`; `order` is the writer's order for
    /// this split (position p holds source sample order[p]), which a source that shuffles itself ignores.
    var fill: @Sendable (_ order: [UInt32], _ positions: Range<Int>, _ data: UnsafeMutableRawBufferPointer,
                         _ labels: UnsafeMutableBufferPointer<UInt32>, _ indices: UnsafeMutableBufferPointer<UInt64>) throws -> Void
    /// The channel statistics of what was filled (asked after the split is written; train's go into the manifest).
    var statistics: @Sendable () -> ChannelStatistics?
}

/// A channel histogram summed across the writer's threads.
final class HistogramAccumulator: @unchecked Sendable {
    private let lock = NSLock()
    private var total: ChannelHistogram

    init(channels: Int) { total = ChannelHistogram(channels: channels) }

    func add(_ local: ChannelHistogram) {
        lock.lock(); defer { lock.unlock() }
        total.merge(local)
    }

    var statistics: ChannelStatistics {
        lock.lock(); defer { lock.unlock() }
        return total.statistics
    }
}
