import ArgumentParser
import EMCFormats
import EMCShards
import EMCCore
import EMCTrainer
import Foundation

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that every native library emc links works, and what data is available.",
        discussion: "Prints each library's version and proves it with a tiny real call. Exits non-zero when anything is missing or fails.")

    @Option(help: "Where the Debian package dataset-fashion-mnist installs Fashion-MNIST.")
    var fashionMNIST = "/usr/share/datasets/fashion-mnist"

    @Flag(help: "Print machine-readable JSON on stdout instead of text.")
    var json = false

    struct Report: Encodable {
        var emcVersion: String
        var libraries: [LibraryCheck]
        var blasThreads: Int
        /// The CPUs this process may run on (its affinity: what Slurm or taskset gave it).
        var cpus: Int
        var crc32cHardware: Bool
        var fashionMNIST: String
        var fashionMNISTPresent: Bool
        var ok: Bool
    }

    func run() throws {
        BLAS.useOneThread()
        let libraries = CodecLibraries.checks() + ImageLibraries.checks() + BLAS.libraryChecks()
        let files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        let dataPresent = files.allSatisfy { FileSystem.exists(FileSystem.join(fashionMNIST, $0)) }
        let report = Report(emcVersion: EMCEnvironment.version, libraries: libraries, blasThreads: BLAS.threads, cpus: EMCEnvironment.cpuCount,
                            crc32cHardware: CRC32C.usesHardware, fashionMNIST: fashionMNIST,
                            fashionMNISTPresent: dataPresent, ok: libraries.allSatisfy(\.ok) && dataPresent)
        if json {
            try printJSON(report)
        } else {
            print("emc \(report.emcVersion)")
            for lib in libraries {
                print("  \(lib.ok ? "ok  " : "FAIL") \(lib.library.padding(toLength: 13, withPad: " ", startingAt: 0)) \(lib.version)")
                if let detail = lib.detail { print("       \(String(repeating: " ", count: 13)) \(detail)") }
                if let error = lib.error { print("       \(String(repeating: " ", count: 13)) error: \(error)") }
            }
            print("  BLAS threads: \(report.blasThreads) (always one; emc splits a trial over --threads itself, with the same bits)")
            print("  CPUs: \(report.cpus) this process may run on (its affinity, as Slurm or taskset set it)")
            print("  CRC32C: \(report.crc32cHardware ? "SSE4.2 instruction" : "software (slicing-by-8)")")
            print("  Fashion-MNIST: \(dataPresent ? "present" : "MISSING") at \(fashionMNIST)"
                  + (dataPresent ? "" : " (install it with scripts/setup, or: apt-get install dataset-fashion-mnist)"))
        }
        if !report.ok {
            let failed = libraries.filter { !$0.ok }.map(\.library) + (dataPresent ? [] : ["Fashion-MNIST data"])
            StandardStreams.error("not ready: \(failed.joined(separator: ", ")) failed or missing\n")
            throw ExitCode(1)
        }
    }
}
