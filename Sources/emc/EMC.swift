import ArgumentParser
import EMCCore
import EMCTrainer
import Foundation

@main
struct EMC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emc",
        abstract: "Measure the Effective Model Complexity of neural networks: how many samples a model can fit.",
        discussion: """
        emc converts raw datasets into compressed, checksummed shards, derives perturbed variants, \
        and searches for the largest training set a model fits to 100% accuracy.
        A trial trains on --threads cores and --jobs trials run at once; the results are the same bits at any count.
        """,
        version: EMCEnvironment.version,
        subcommands: [Convert.self, Perturb.self, Synth.self, Inspect.self, Verify.self, Run.self, HessianCommand.self, Sweep.self, SweepTaskCommand.self, ReportCommand.self, Export.self, Doctor.self, Bench.self])
}

/// Flags shared by commands that print results.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print machine-readable JSON on stdout instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "Print no progress.")
    var quiet = false
}

extension EMC {
    /// Runs the command; an emc error is printed as one sentence, with its remedy said as the flag that does it.
    static func main() {
        // Start with signals deliverable and at their default action, whatever the parent left: a sweep ignores SIGTERM
        // and SIGINT while it forwards them to its searches, and a launcher (a test runner's thread) may have blocked
        // them; both survive exec, and either would make a search unstoppable.
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
        // A write past a file-size limit (`ulimit -f`) fails with EFBIG and is reported as such, instead of killing emc.
        signal(SIGXFSZ, SIG_IGN)
        // OpenBLAS picks its kernel when it loads, before main: when it fell back to its generic one on a CPU it does
        // not know, start again with the better kernel named (once; `emc doctor` says which and why).
        if let core = BLAS.preferredCore() {
            setenv("OPENBLAS_CORETYPE", core, 1)
            setenv("EMC_BLAS_CORE_CHOSEN", "1", 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)  // returns only on failure: go on with the generic kernel
        }
        do {
            var command = try parseAsRoot()
            try command.run()
            // Everything printed reached its destination, or the command fails (`emc report --json > file` on a full disk).
            try StandardStreams.flushOutput()
        } catch let error as EMCError {
            StandardStreams.error("error: " + ErrorText.render(error) + "\n")
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}

/// emc errors for a person at the command line: the library's words, and its remedy as a flag.
enum ErrorText {
    static func render(_ error: EMCError) -> String {
        var e = error
        guard let remedy = e.remedy else { return "\(e)" }
        e.remedy = nil
        return "\(e); " + flag(remedy)
    }

    static func flag(_ remedy: Remedy) -> String {
        switch remedy {
        case .replaceOutput: return "pass --force to replace it, or choose another --out"
        case .otherOutput: return "choose another --out"
        case .replaceReport: return "pass --force to replace the report there, or choose another --html folder"
        case .otherReportFolder: return "choose another --html folder"
        case .replaceFile: return "pass --force to replace it, or write it elsewhere"
        case .otherPath: return "write it elsewhere"
        case .raisePixelLimit: return "raise it with --max-pixels if the file is genuine"
        case .giveClassCount(let n): return n.map { "if \($0) classes is right, say so with --classes \($0)" } ?? "give --classes"
        case .smallerModelOrBatch: return "choose a smaller model or --batch"
        case .otherNormalization: return "use --normalize unit or none"
        case .definitionsFolder: return "pass --manifests DIR or set EMC_MANIFESTS"
        case .chooseSplits: return "leave out --splits, or list every split"
        }
    }
}
