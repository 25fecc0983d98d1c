import CTurboJPEG
import EMCCore

/// JPEG through libjpeg-turbo's TurboJPEG API. Decoding can use DCT scaling (1/2, 1/4, 1/8...),
/// which makes large photos several times cheaper when the target is small.
public enum JPEG {
    /// libjpeg-turbo has no run-time version call; this is the version emc was built against.
    public static var buildVersion: String {
        let n = Int(LIBJPEG_TURBO_VERSION_NUMBER)
        return "\(n / 1_000_000).\((n / 1000) % 1000).\(n % 1000)"
    }

    private static func errorText(_ handle: tjhandle?) -> String {
        String(cString: tjGetErrorStr2(handle))
    }

    /// Dimensions and colour space read from the header.
    public struct Header: Sendable { public var width: Int; public var height: Int }

    /// The scaled size libjpeg-turbo will produce for `num/denom` (rounding up, as TJSCALED does).
    static func scaled(_ size: Int, _ num: Int32, _ denom: Int32) -> Int {
        (size * Int(num) + Int(denom) - 1) / Int(denom)
    }

    /// Decodes JPEG bytes to 8-bit RGB. Gray and CMYK files become RGB too.
    /// With `minimumSize`, picks the smallest DCT scale whose output is still at least that large
    /// in both dimensions (so a later resize only ever shrinks).
    /// The corresponding C functions are `tjDecompressHeader3` and `tjDecompress2`.
    /// An image of more than `maxPixels` pixels (as stored, before scaling) is refused before decoding.
    public static func decode(_ bytes: [UInt8], minimumSize: (width: Int, height: Int)? = nil,
                              maxPixels: Int = RasterImage.defaultMaxPixels, file: String = "<memory>") throws -> RasterImage {
        guard !bytes.isEmpty else { throw EMCError(.format, "empty file, expected a JPEG image", file: file) }
        guard let handle = tjInitDecompress() else { throw EMCError(.library, "tjInitDecompress failed") }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let headerOK = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsampling, &colorspace)
        }
        guard headerOK == 0 else { throw EMCError(.format, "not a readable JPEG: \(errorText(handle))", file: file) }
        try checkPixelLimit(width: Int(width), height: Int(height), maxPixels: maxPixels, format: "JPEG", file: file)
        var outW = Int(width), outH = Int(height)
        if let minimumSize {
            var count: Int32 = 0
            if let factors = tjGetScalingFactors(&count) {
                for i in 0..<Int(count) {
                    let f = factors[i]
                    let w = scaled(Int(width), f.num, f.denom), h = scaled(Int(height), f.num, f.denom)
                    if w >= minimumSize.width && h >= minimumSize.height && w * h < outW * outH {
                        outW = w
                        outH = h
                    }
                }
            }
        }
        // CMYK and YCCK files (from print workflows) decode to CMYK; libjpeg cannot convert them to RGB.
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        var pixels = [UInt8](repeating: 0, count: outW * outH * (cmyk ? 4 : 3))
        let code = bytes.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(src.count), dst.baseAddress, Int32(outW), 0, Int32(outH),
                              Int32((cmyk ? TJPF_CMYK : TJPF_RGB).rawValue), 0)
            }
        }
        if code != 0 {
            // Warnings (e.g. premature end of data) are errors too: a cut file would give a grey tail.
            throw EMCError(.format, "JPEG data is corrupt or truncated: \(errorText(handle))", file: file)
        }
        if cmyk {
            // JPEG CMYK is stored inverted (Adobe): R = C·K / 255, and so on.
            var rgb = [UInt8](repeating: 0, count: outW * outH * 3)
            for i in 0..<(outW * outH) {
                let k = Int(pixels[4 * i + 3])
                for c in 0..<3 { rgb[3 * i + c] = UInt8(Int(pixels[4 * i + c]) * k / 255) }
            }
            pixels = rgb
        }
        return RasterImage(width: outW, height: outH, channels: 3, pixels: pixels)
    }

    /// Encodes an 8-bit RGB or gray image as a baseline JPEG at `quality` (1...100), 4:2:0 for colour.
    /// The corresponding C function is `tjCompress2`.
    public static func encode(_ raster: RasterImage, quality: Int = 90) throws -> [UInt8] {
        guard raster.channels == 1 || raster.channels == 3 else {
            throw EMCError(.invalidArgument, "JPEG encode supports 1 or 3 channels, not \(raster.channels)")
        }
        guard let handle = tjInitCompress() else { throw EMCError(.library, "tjInitCompress failed") }
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let format = raster.channels == 3 ? TJPF_RGB : TJPF_GRAY
        let sampling = raster.channels == 3 ? TJSAMP_420 : TJSAMP_GRAY
        let code = raster.pixels.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(raster.width), 0, Int32(raster.height), Int32(format.rawValue),
                        &output, &size, Int32(sampling.rawValue), Int32(quality), 0)
        }
        defer { if let output { tjFree(output) } }
        guard code == 0, let output else { throw EMCError(.library, "JPEG encode failed: \(errorText(handle))") }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }

    /// Encodes 4-channel CMYK pixels (stored inverted, as Adobe writes them) as a CMYK JPEG (for tests and fixtures).
    /// The corresponding C function is `tjCompress2` with `TJPF_CMYK`.
    public static func encodeCMYK(_ pixels: [UInt8], width: Int, height: Int, quality: Int = 95) throws -> [UInt8] {
        guard pixels.count == width * height * 4 else { throw EMCError(.invalidArgument, "CMYK pixels must be width × height × 4") }
        guard let handle = tjInitCompress() else { throw EMCError(.library, "tjInitCompress failed") }
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let code = pixels.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(width), 0, Int32(height), Int32(TJPF_CMYK.rawValue), &output, &size,
                        Int32(TJSAMP_444.rawValue), Int32(quality), 0)
        }
        defer { if let output { tjFree(output) } }
        guard code == 0, let output else { throw EMCError(.library, "CMYK JPEG encode failed: \(errorText(handle))") }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }
}
