import EMCCore
import Foundation

// The libFuzzer driver. The target is chosen by EMC_FUZZ_TARGET (one binary, one link, many targets);
// `emc-fuzz --make-corpus DIR` writes each target's seed inputs to DIR/<target>/.

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

nonisolated(unsafe) var selected: FuzzTarget?

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do { try selected?.run(bytes) } catch {}
    return 0
}

func writeCorpus(_ root: String) throws {
    for target in targets {
        let dir = root + "/" + target.name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (i, seed) in try target.seeds().enumerated() {
            try Data(seed).write(to: URL(fileURLWithPath: "\(dir)/seed-\(i)"))
        }
        print("\(target.name): \(try target.seeds().count) seed(s) in \(dir)")
    }
}

// SwiftPM links an executable's entry point under this name; libFuzzer's own `main` is not used.
@_cdecl("emc_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let arguments = CommandLine.arguments
    if arguments.count == 3 && arguments[1] == "--make-corpus" {
        do { try writeCorpus(arguments[2]); return 0 } catch { print("emc-fuzz: \(error)"); return 1 }
    }
    let name = ProcessInfo.processInfo.environment["EMC_FUZZ_TARGET"] ?? ""
    guard let target = targets.first(where: { $0.name == name }) else {
        print("emc-fuzz: set EMC_FUZZ_TARGET to one of: " + targets.map { "\($0.name) (\($0.summary))" }.joined(separator: ", "))
        return 2
    }
    selected = target
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v, testOneInput)
}
