import EMCCore

/// Image batches in NumPy's `.npz` (a zip of `.npy` arrays, stored or deflated): images as N×H×W×C or
/// N×C×H×W uint8, or flat planar rows (Imagenet32/64's `data`, N×(3·S·S)), plus an integer label array.
public enum NPZ {
    public enum Layout: String, Sendable, Codable { case auto, nhwc, nchw, planar }

    public struct Options: Sendable, Codable {
        public var imagesKey: String?
        public var labelsKey: String?
        public var layout: Layout
        /// Side of the images for the planar layout.
        public var size: Int?
        /// Added to every label (−1 for Imagenet32/64's 1-based labels).
        public var labelOffset: Int

        public init(imagesKey: String? = nil, labelsKey: String? = nil, layout: Layout = .auto, size: Int? = nil, labelOffset: Int = 0) {
            self.imagesKey = imagesKey
            self.labelsKey = labelsKey
            self.layout = layout
            self.size = size
            self.labelOffset = labelOffset
        }
    }

    /// The images and labels members of an archive, chosen by key or found by type.
    static func members(_ zip: ZipArchive, options: Options) throws -> (images: ZipArchive.Member, labels: ZipArchive.Member, headers: (NPY.Header, NPY.Header)) {
        var headers: [String: NPY.Header] = [:]
        for m in zip.members where m.name.hasSuffix(".npy") { headers[m.name] = try NPY.readHeader(try zip.reader(m)) }
        func find(_ key: String?, _ accept: (NPY.Header) -> Bool, _ what: String) throws -> ZipArchive.Member {
            if let key {
                guard let m = zip.members.first(where: { $0.name == key + ".npy" }) else {
                    throw EMCError(.missing, "no array '\(key)' (it has \(zip.members.map { String($0.name.dropLast(4)) }.joined(separator: ", ")))", file: zip.path)
                }
                return m
            }
            guard let m = zip.members.first(where: { headers[$0.name].map(accept) ?? false }) else {
                throw EMCError(.missing, "no \(what) array found (arrays: \(headers.map { "\($0.key) \($0.value.descr) \($0.value.shape)" }.sorted().joined(separator: "; ")))", file: zip.path)
            }
            return m
        }
        let images = try find(options.imagesKey, { ($0.descr == "|u1" || $0.descr == "<u1") && ($0.shape.count == 4 || $0.shape.count == 2) }, "uint8 image")
        let labels = try find(options.labelsKey, { $0.element != nil && $0.shape.count == 1 }, "integer label")
        guard let ih = headers[images.name], ih.shape.count == 4 || ih.shape.count == 2 else {
            throw EMCError(.format, "images '\(images.name)' must be N×H×W×C, N×C×H×W or N×(C·S·S), shape is \(headers[images.name]?.shape ?? [])", file: zip.path)
        }
        guard headers[labels.name] != nil else { throw EMCError(.format, "labels '\(labels.name)' is not a .npy array", file: zip.path) }
        // A header may declare any shape; the member's size (checked against its CRC when read) says what it can hold.
        for (member, size) in [(images, 1), (labels, headers[labels.name]!.element?.size ?? 1)] {
            let declared = headers[member.name]!.count.multipliedReportingOverflow(by: size)
            guard !declared.overflow, declared.partialValue <= member.size else {
                throw EMCError(.format, "array \(member.name) declares shape \(headers[member.name]!.shape), more data than the member holds",
                               file: zip.path, place: .member(member.name), expected: "at most \(member.size) bytes", found: "\(headers[member.name]!.shape)")
            }
        }
        return (images, labels, (headers[images.name]!, headers[labels.name]!))
    }

    /// Sample count of an archive (from headers only).
    public static func count(path: String, options: Options) throws -> Int {
        let zip = try ZipArchive(path: path)
        return try members(zip, options: options).headers.1.count
    }

    /// Decodes a whole archive into interleaved H×W×C samples.
    public static func load(path: String, options: Options) throws -> LabeledSamples {
        let zip = try ZipArchive(path: path)
        let (imagesMember, labelsMember, (h, lh)) = try members(zip, options: options)
        let n = h.shape[0]
        guard lh.count == n else {
            throw EMCError(.format, "images and labels disagree on the sample count", file: path, expected: "\(n) labels", found: "\(lh.count)")
        }
        var layout = options.layout
        var height: Int, width: Int, channels: Int
        if h.shape.count == 2 || layout == .planar {
            guard h.shape.count == 2 else { throw EMCError(.format, "planar layout needs N × (C·S·S) rows, shape is \(h.shape)", file: path) }
            let values: Int = h.shape[1]
            let candidates: [Int] = [32, 64, 16, 8, 128]
            let guess: Int? = candidates.first { (s: Int) -> Bool in values % (s * s) == 0 && values / (s * s) <= 4 }
            let size: Int = options.size ?? guess ?? 0
            guard size > 0, h.shape[1] % (size * size) == 0 else { throw EMCError(.format, "cannot read \(h.shape[1])-value rows as square images", file: path) }
            (height, width, channels) = (size, size, h.shape[1] / (size * size))
            layout = .planar
        } else {
            if layout == .auto {
                // Channel-first when dimension 1 looks like channels (1 or 3) and the last does not.
                layout = [1, 3].contains(h.shape[1]) && ![1, 3].contains(h.shape[3]) ? .nchw : .nhwc
            }
            (height, width, channels) = layout == .nhwc ? (h.shape[1], h.shape[2], h.shape[3]) : (h.shape[2], h.shape[3], h.shape[1])
        }
        let schema = SampleSchema.image(height: height, width: width, channels: channels)
        try EMCError.locating(file: path) { try schema.validate() }
        let imagesReader = try zip.reader(imagesMember)
        _ = try NPY.readHeader(imagesReader)
        var data = try NPY.readBytes(imagesReader, header: h)
        guard try imagesReader.atEnd() else { throw EMCError(.format, "image array has extra bytes", file: imagesReader.path) }
        if layout != .nhwc {
            // Planar (C, H, W) per sample → interleaved (H, W, C).
            let plane = height * width
            var out = [UInt8](repeating: 0, count: data.count)
            for s in 0..<n {
                let base = s * plane * channels
                for c in 0..<channels { for i in 0..<plane { out[base + i * channels + c] = data[base + c * plane + i] } }
            }
            data = out
        }
        let labelsReader = try zip.reader(labelsMember)
        _ = try NPY.readHeader(labelsReader)
        let raw = try NPY.readLabels(labelsReader, header: lh)
        guard try labelsReader.atEnd() else { throw EMCError(.format, "label array has extra bytes", file: labelsReader.path) }
        var labels = [UInt32](repeating: 0, count: n)
        for (i, l) in raw.enumerated() {
            let v = l + Int64(options.labelOffset)
            guard v >= 0 && v < 1 << 24 else {
                throw EMCError(.format, "label \(l) (after offset \(options.labelOffset): \(v)) is not a class id", file: path, place: .sample(i))
            }
            labels[i] = UInt32(v)
        }
        return LabeledSamples(schema: schema, data: data, labels: labels)
    }
}
