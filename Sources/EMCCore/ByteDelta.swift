import CEMCKernels

/// The shard format's byte-delta filter: stored[i] = raw[i] − raw[i − stride] (mod 256). Natural images
/// change slowly from pixel to pixel, so deltas are small numbers that compress about twice as well.
/// Decoding is vectorised (SSSE3) for strides 1 to 4, the channel counts of images.
public enum ByteDelta {
    /// Writes the deltas of `source` into `destination` (same length).
    public static func encode(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, stride: Int) {
        precondition(source.count == destination.count && stride > 0)
        guard let s = source.baseAddress, let d = destination.baseAddress else { return }
        emc_delta_encode(d.assumingMemoryBound(to: UInt8.self), s.assumingMemoryBound(to: UInt8.self), source.count, stride)
    }

    /// Undoes `encode` in place.
    public static func decode(_ bytes: UnsafeMutableRawBufferPointer, stride: Int) {
        precondition(stride > 0)
        guard let p = bytes.baseAddress else { return }
        emc_delta_decode(p.assumingMemoryBound(to: UInt8.self), bytes.count, stride)
    }
}
