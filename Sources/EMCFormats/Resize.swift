import EMCCore

/// Image resizing for dataset conversion.
public enum Resize {
    /// How an image is brought to the target square.
    public enum Mode: String, Sendable, CaseIterable {
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
            // The centre square of the image resized so its shorter side is `size`; only the cropped outputs are
            // computed, so a 1×900,000 image costs what its crop costs, not the 57-gigapixel resize around it.
            let scale = Double(size) / Double(min(image.width, image.height))
            let w = max(size, Int((Double(image.width) * scale).rounded())), h = max(size, Int((Double(image.height) * scale).rounded()))
            return area(image, width: w, height: h, crop: (x: (w - size) / 2, y: (h - size) / 2, width: size, height: size))
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
    /// coverage at the edges), separably, rows then columns. With `crop`, only that window of the
    /// `width`×`height` result is computed. Memory beyond the output is one intermediate row.
    public static func area(_ image: RasterImage, width: Int, height: Int,
                            crop: (x: Int, y: Int, width: Int, height: Int)? = nil) -> RasterImage {
        let window = crop ?? (x: 0, y: 0, width: width, height: height)
        if image.width == width && image.height == height {
            return crop == nil ? image : Resize.crop(image, x: window.x, y: window.y, width: window.width, height: window.height)
        }
        let c = image.channels
        let xw = weights(from: image.width, to: width, outputs: window.x..<(window.x + window.width))
        let yw = weights(from: image.height, to: height, outputs: window.y..<(window.y + window.height))
        let rowCount = window.width * c
        var out = RasterImage(width: window.width, height: window.height, channels: c)
        // One source row resampled horizontally at a time (the last one kept: neighbouring outputs share edge rows),
        // summed into the output row in the same order as a full intermediate image would be.
        var row = [Float](repeating: 0, count: rowCount), sum = [Float](repeating: 0, count: rowCount)
        var rowIndex = -1
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                row.withUnsafeMutableBufferPointer { row in
                    sum.withUnsafeMutableBufferPointer { sum in
                        for (y, taps) in yw.enumerated() {
                            sum.update(repeating: 0)
                            for (i, w) in taps {
                                if i != rowIndex {
                                    let line = src.baseAddress! + i * image.width * c
                                    for (x, xtaps) in xw.enumerated() {
                                        for ch in 0..<c {
                                            var s: Float = 0
                                            for (j, v) in xtaps { s += Float(line[j * c + ch]) * v }
                                            row[x * c + ch] = s
                                        }
                                    }
                                    rowIndex = i
                                }
                                for x in 0..<rowCount { sum[x] += row[x] * w }
                            }
                            for x in 0..<rowCount { dst[y * rowCount + x] = UInt8(max(0, min(255, sum[x].rounded()))) }
                        }
                    }
                }
            }
        }
        return out
    }

    /// For each output index, the source indices and weights (summing to 1) of its area.
    static func weights(from n: Int, to m: Int, outputs: Range<Int>) -> [[(Int, Float)]] {
        let scale = Double(n) / Double(m)
        return outputs.map { o in
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
