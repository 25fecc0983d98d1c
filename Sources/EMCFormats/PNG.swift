import CPNG
import EMCCore

/// PNG through libpng's simplified `png_image` API, which reports errors in a struct instead of
/// by longjmp (which Swift cannot survive).
public enum PNG {
    /// The library's version as it reports it at run time.
    /// The corresponding C function is `png_get_libpng_ver` (libpng 1.6 names `png_get_libver` so).
    public static var version: String { String(cString: png_get_libpng_ver(nil)) }

    private static func message(_ image: png_image) -> String {
        withUnsafeBytes(of: image.message) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
    }

    /// Decodes PNG bytes into 8-bit RGB (`channels: 3`) or gray (`channels: 1`), whatever the file
    /// holds: gray, palette, alpha (composited on black) and 16-bit all convert.
    /// The corresponding C functions are `png_image_begin_read_from_memory` and `png_image_finish_read`.
    /// An image of more than `maxPixels` pixels is refused before any pixel is allocated.
    public static func decode(_ bytes: [UInt8], channels: Int = 3, maxPixels: Int = RasterImage.defaultMaxPixels,
                              file: String = "<memory>") throws -> RasterImage {
        guard !bytes.isEmpty else { throw EMCError(.format, "empty file, expected a PNG image", file: file) }
        guard channels == 1 || channels == 3 else { throw EMCError(.invalidArgument, "PNG decode: channels must be 1 or 3") }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        let began = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard began != 0 else { throw EMCError(.format, "not a readable PNG: \(message(image))", file: file) }
        image.format = channels == 3 ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
        let width = Int(image.width), height = Int(image.height)
        try checkPixelLimit(width: width, height: height, maxPixels: maxPixels, format: "PNG", file: file)
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let ok = bytes.withUnsafeBytes { _ in
            pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(width * channels), nil) }
        }
        guard ok != 0 else { throw EMCError(.format, "PNG data is corrupt: \(message(image))", file: file) }
        return RasterImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Encodes an 8-bit gray (1 channel) or RGB (3 channels) image as PNG bytes.
    /// The corresponding C function is `png_image_write_to_memory`.
    public static func encode(_ raster: RasterImage) throws -> [UInt8] {
        guard raster.channels == 1 || raster.channels == 3 else {
            throw EMCError(.invalidArgument, "PNG encode supports 1 or 3 channels, not \(raster.channels)")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(raster.width)
        image.height = UInt32(raster.height)
        image.format = raster.channels == 3 ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
        defer { png_image_free(&image) }
        var size = 0
        let stride = Int32(raster.width * raster.channels)
        // First call with no buffer asks for the size.
        var ok = raster.pixels.withUnsafeBytes { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, stride, nil) }
        guard ok != 0, size > 0 else { throw EMCError(.library, "PNG encode failed: \(message(image))") }
        var out = [UInt8](repeating: 0, count: size)
        ok = raster.pixels.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { png_image_write_to_memory(&image, $0.baseAddress, &size, 0, src.baseAddress, stride, nil) }
        }
        guard ok != 0 else { throw EMCError(.library, "PNG encode failed: \(message(image))") }
        out.removeLast(out.count - size)
        return out
    }
}

/// Refuses an image with no pixels or more than `maxPixels` (checked from its header, before decoding).
func checkPixelLimit(width: Int, height: Int, maxPixels: Int, format: String, file: String) throws {
    guard width > 0, height > 0 else { throw EMCError(.format, "\(format) has an impossible size \(width)×\(height)", file: file) }
    guard width * height <= maxPixels else {
        throw EMCError(.invalidArgument, "\(format) image is \(width)×\(height) = \(width * height) pixels, above the limit of \(maxPixels)",
                       file: file, remedy: .raisePixelLimit)
    }
}
