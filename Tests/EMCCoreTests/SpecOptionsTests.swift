import EMCCore
import Testing

@Suite("The one spec parser: strict key=value")
struct SpecOptionsTests {
    @Test("values in range are read; absent keys take their defaults")
    func reads() throws {
        var o = try SpecOptions("width=8, act=tanh,lr=1e-3", spec: "mlp:width=8, act=tanh,lr=1e-3")
        #expect(try o.int("width", default: 16, in: 1...100) == 8)
        #expect(try o.int("depth", default: 2, in: 0...9) == 2)
        #expect(try o.choice("act", default: "relu", from: ["relu", "tanh"]) == "tanh")
        #expect(try o.double("lr", default: 0.1, in: 0...1, openLower: true) == 1e-3)
        try o.rejectUnused()
    }

    @Test("each bad spec is an error that names the key", arguments: [
        ("width=8,width=16", "given twice"), ("width=abc", "not a whole number"), ("width=0", "between 1 and 100"),
        ("width=9223372036854775807", "between 1 and 100"), ("lr=nan", "not a number"), ("lr=0", "> 0"), ("act=sigmoid", "one of"),
        ("width=8,,", "empty item"), ("width", "not key=value"), ("epoch=3", "unknown option(s) epoch"),
    ])
    func rejects(text: String, words: String) throws {
        let e = #expect(throws: EMCError.self) {
            var o = try SpecOptions(text, spec: "m:" + text)
            _ = try o.int("width", default: 16, in: 1...100)
            _ = try o.double("lr", default: 0.1, in: 0...1, openLower: true)
            _ = try o.choice("act", default: "relu", from: ["relu", "tanh"])
            try o.rejectUnused()
        }
        #expect(e?.kind == .invalidArgument)
        #expect(e?.description.contains(words) == true, "\(String(describing: e))")
    }

    @Test("a seed must be a whole number ≥ 0, never silently 0")
    func seeds() throws {
        var good = try SpecOptions("seed=18446744073709551615", spec: "s")
        #expect(try good.seed() == .max)
        var bad = try SpecOptions("seed=-1", spec: "s")
        #expect(throws: EMCError.self) { _ = try bad.seed() }
    }
}
