import ArgumentParser
import EMCCore
import EMCTrainer

@main
struct EMC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emc",
        abstract: "Measure the Effective Model Complexity of neural networks: how many samples a model can fit.",
        discussion: """
        emc converts raw datasets into compressed, checksummed shards, derives perturbed variants, \
        and searches for the largest training set a model fits to 100% accuracy.
        Set EMC_THREADS to change the BLAS thread count (default 1).
        """,
        version: EMCEnvironment.version,
        subcommands: [Convert.self, Perturb.self, Synth.self, Inspect.self, Verify.self, Run.self, Sweep.self, ReportCommand.self, Doctor.self, Bench.self])
}

/// Flags shared by commands that print results.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print machine-readable JSON on stdout instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "Print no progress.")
    var quiet = false
}
