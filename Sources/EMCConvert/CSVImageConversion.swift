import EMCCore
import EMCFormats
import EMCShards
import Foundation

/// Images stored as CSV rows of pixel values (plain or gzip), one image per row: height·width·channels values in row
/// order, then the label (`labelColumn` "last") or the label first. Each value is scaled from 0…`maxValue` to 0…255
/// by round(v·255 / maxValue). No test split ships with such files: a seeded, class-balanced hold-out of
/// `testFraction` of each class (`Tabular.stratifiedSplit`) is made.
struct CSVImageSource: ConversionSource {
    let schema: SampleSchema
    let classes: ClassInfo
    let checks: [SourceCheck]
    let recordedOptions: [String: String]
    let splits: [SplitSource]
    var unit: String { "images" }

    init(_ request: ConvertRequest) throws {
        let def = request.dataset
        guard let layout = def.csvImage else { throw EMCError(.format, "a csv-image definition needs a \"csvImage\" layout") }
        guard let names = def.splits["all"], names.count == 1 else {
            throw EMCError(.format, "a csv-image definition names its one file under splits.all")
        }
        let name = names[0]
        let path: String
        if !FileSystem.isDirectory(request.raw) {
            guard FileSystem.exists(request.raw) else { throw EMCError(.missing, "no such file", file: request.raw) }
            path = request.raw
        } else {
            path = FileSystem.join(request.raw, name)
            guard FileSystem.exists(path) else { throw EMCError(.missing, "\(def.name) needs \(name), which is not here", file: request.raw) }
        }
        checks = [SourceChecks.check(path: path, md5: try MD5.hex(file: path), published: def.published(name), contentMD5: nil)]
        let pixels = layout.height * layout.width * layout.channels
        let classCount = def.classes.count
        var data: [UInt8] = [], labels: [UInt32] = []
        let bytes = try Tabular.contents(path)
        var line = 0
        for row in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            line += 1
            if line <= layout.headerRows { continue }
            let text = String(decoding: row, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { continue }
            let fields = text.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == pixels + 1 else {
                throw EMCError(.format, "a row needs \(pixels) pixel values and a label, this one has \(fields.count) fields", file: path, place: .line(line))
            }
            let labelField = layout.labelFirst ? fields[0] : fields[pixels]
            // Compared as a Double first: an infinite or huge label never reaches the integer conversion.
            guard let label = Double(labelField.trimmingCharacters(in: .whitespaces)), label >= 0, label < Double(classCount), label == label.rounded() else {
                throw EMCError(.format, "the label '\(labelField)' is not a class index below \(classCount)", file: path, place: .line(line))
            }
            for field in layout.labelFirst ? fields.dropFirst() : fields.dropLast() {
                guard let v = Double(field.trimmingCharacters(in: .whitespaces)), v >= 0, v <= layout.maxValue else {
                    throw EMCError(.format, "the pixel value '\(field)' is not a number from 0 to \(layout.maxValue)", file: path, place: .line(line))
                }
                data.append(UInt8((v * 255 / layout.maxValue).rounded()))
            }
            labels.append(UInt32(label))
        }
        guard !labels.isEmpty else { throw EMCError(.format, "no rows of pixel values", file: path) }
        schema = SampleSchema.image(height: layout.height, width: layout.width, channels: layout.channels)
        classes = ClassInfo(count: classCount, names: def.classes)
        let fraction = def.testFraction ?? 0.2, seed = def.splitSeed ?? 0
        let (train, test) = Tabular.stratifiedSplit(labels: labels, testFraction: fraction, seed: seed)
        let schema = self.schema
        func subset(_ rows: [Int]) -> LabeledSamples {
            var d: [UInt8] = []
            d.reserveCapacity(rows.count * pixels)
            for r in rows { d.append(contentsOf: data[(r * pixels)..<((r + 1) * pixels)]) }
            return LabeledSamples(schema: schema, data: d, labels: rows.map { labels[$0] })
        }
        splits = [.inMemory("train", subset(train)), .inMemory("test", subset(test))]
        recordedOptions = ["scale": "round(v·255/\(layout.maxValue))",
                           "split": "class-balanced hold-out of \(fraction) per class, seed \(seed)"]
    }
}
