import EMCConvert
import EMCCore
import EMCPipeline
import EMCTestSupport
import EMCTransforms
import EMCVariants
import Testing

@Suite("Long variant chains and export prefixes")
struct ChainAndExportTests {
    @Test("a chain of relative bases resolves at any depth up to the cap, and past it says so, never 'base set is missing'")
    func deepChain() throws {
        let root = TemporaryDirectory()
        try FileSystem.createDirectory(root.file("sets"))
        let data = TemporaryDirectory()
        let base = try makeBase(data)
        var previous = base
        var depth = 0
        var stop: EMCError?
        while depth < DatasetView.maxChainDepth + 2 {
            let out = root.file("sets/v\(depth)")
            do {
                _ = try VariantBuilder.make(PerturbRequest(base: previous, out: out, inputs: .gaussian(seed: UInt64(depth))))
            } catch {
                stop = error as? EMCError
                break
            }
            previous = out
            depth += 1
        }
        #expect(depth == DatasetView.maxChainDepth - 1, "variants made before the cap: \(depth)")
        #expect(stop?.message.contains("the most a view resolves") == true, "\(String(describing: stop))")
        #expect(try DatasetView(directory: root.file("sets/v\(depth - 1)")).chain.count == DatasetView.maxChainDepth)
    }

    @Test("an export prefix without a file name is refused (no hidden .x.npy files)", arguments: ["", ".", "/", "some/folder/", ".."])
    func exportPrefix(out: String) throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        let e = #expect(throws: EMCError.self) { _ = try DatasetExport.run(DatasetExport.Request(data: base, out: out)) }
        #expect(e?.message.contains("needs a file name") == true, "\(String(describing: e))")
    }
}
