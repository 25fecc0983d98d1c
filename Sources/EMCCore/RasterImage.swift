/// An 8-bit image in memory, rows top to bottom, channels interleaved (H×W×C), the layout of
/// every image sample in emc.
public struct RasterImage: Sendable, Equatable {
    /// The largest image decoders accept unless told otherwise (`emc convert --max-pixels`): 64 Mpx, about
    /// 192 MB decoded. A few kilobytes of PNG can declare far more; a limit turns that into a clear error.
    public static let defaultMaxPixels = 64_000_000

    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "RasterImage: pixel count does not match its shape")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    public init(width: Int, height: Int, channels: Int, fill: UInt8 = 0) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: fill, count: width * height * channels))
    }

    @inline(__always)
    public subscript(x: Int, y: Int, c: Int) -> UInt8 {
        get { pixels[(y * width + x) * channels + c] }
        set { pixels[(y * width + x) * channels + c] = newValue }
    }
}
