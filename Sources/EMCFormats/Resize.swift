import EMCCore

/// Image resizing for dataset conversion.
public enum Resize {
    /// How an image is brought to the target square.
    public enum Mode: String, Sendable {
        /// Shorter side to the target, then the centre square (keeps the aspect ratio; the default).
        case centerCrop = "center-crop"
        /// Both sides to the target (distorts the aspect ratio).
        case stretch
    }

    /// `image` as a `size`×`size` RGB image: area-averaging (antialiased) when shrinking, so no aliasing,
    /// and box sampling when enlarging.
    public static func square(_ image: RasterImage, size: Int, mode: Mode) -> RasterImage {
        switch mode {
        case .stretch:
            return area(image, width: size, height: size)
        case .centerCrop:
            let scale = Double(size) / Double(min(image.width, image.height))
            let w = max(size, Int((Double(image.width) * scale).rounded())), h = max(size, Int((Double(image.height) * scale).rounded()))
            let resized = area(image, width: w, height: h)
            return crop(resized, x: (w - size) / 2, y: (h - size) / 2, width: size, height: size)
        }
    }

    public static func crop(_ image: RasterImage, x: Int, y: Int, width: Int, height: Int) -> RasterImage {
        var out = RasterImage(width: width, height: height, channels: image.channels)
        let c = image.channels
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for row in 0..<height {
                    let from = ((y + row) * image.width + x) * c
                    (dst.baseAddress! + row * width * c).update(from: src.baseAddress! + from, count: width * c)
                }
            }
        }
        return out
    }

    /// Area resampling: each output pixel is the average of the source area it covers (fractional
    /// coverage at the edges), separably, rows then columns.
    public static func area(_ image: RasterImage, width: Int, height: Int) -> RasterImage {
        if image.width == width && image.height == height { return image }
        let c = image.channels
        let xw = weights(from: image.width, to: width), yw = weights(from: image.height, to: height)
        // Horizontal pass: height_in × width_out, in Float.
        var temp = [Float](repeating: 0, count: image.height * width * c)
        image.pixels.withUnsafeBufferPointer { src in
            temp.withUnsafeMutableBufferPointer { dst in
                for y in 0..<image.height {
                    let row = src.baseAddress! + y * image.width * c
                    for (x, taps) in xw.enumerated() {
                        for ch in 0..<c {
                            var sum: Float = 0
                            for (i, w) in taps { sum += Float(row[i * c + ch]) * w }
                            dst[(y * width + x) * c + ch] = sum
                        }
                    }
                }
            }
        }
        var out = RasterImage(width: width, height: height, channels: c)
        temp.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                for (y, taps) in yw.enumerated() {
                    for x in 0..<(width * c) {
                        var sum: Float = 0
                        for (i, w) in taps { sum += src[i * width * c + x] * w }
                        dst[y * width * c + x] = UInt8(max(0, min(255, sum.rounded())))
                    }
                }
            }
        }
        return out
    }

    /// For each output index, the source indices and weights (summing to 1) of its area.
    static func weights(from n: Int, to m: Int) -> [[(Int, Float)]] {
        let scale = Double(n) / Double(m)
        return (0..<m).map { o in
            if scale <= 1 {  // enlarging: the nearest source pixel (box sampling)
                return [(min(n - 1, Int((Double(o) + 0.5) * scale)), 1)]
            }
            let start = Double(o) * scale, end = start + scale
            var taps: [(Int, Float)] = []
            var i = Int(start)
            while Double(i) < end && i < n {
                let overlap = min(end, Double(i + 1)) - max(start, Double(i))
                if overlap > 1e-9 { taps.append((i, Float(overlap / scale))) }
                i += 1
            }
            return taps
        }
    }
}
