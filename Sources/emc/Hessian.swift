import ArgumentParser
import EMCCore
import EMCSearch
import EMCTrainer
import Foundation

struct HessianCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hessian",
        abstract: "Train one trial and check its final loss Hessian: λ_min, λ_max and the Ritz values (a minimum or a saddle).",
        discussion: """
        Trains the trial a search would train at (--seed, --n): the seed's nested subset of n samples, a fresh model, the \
        same rules. Then runs --hessian-steps Lanczos steps on the full-batch loss Hessian over the n samples, each one an \
        exact Hessian-vector product (the R-operator through every layer), and prints the extreme eigenvalues and the \
        verdict: a saddle when λ_min < −tol·λ_max. docs/methods.md, "The Hessian check", says how.

        Example: emc hessian --data datasets/fashion-mnist --model mlp:width=32,depth=1 --optimizer gd:lr=0.3 --n 500
        """)

    @Option(help: "The shard set or variant.")
    var data: String

    @Option(help: "Model spec, e.g. mlp:width=32,depth=1.")
    var model: String

    @Option(parsing: .unconditional, help: "The trial's number of samples.")
    var n: Int

    @Option(parsing: .unconditional, help: "The trial's seed (its nested subset and initialisation).")
    var seed = 0

    @Option(parsing: .unconditional, help: "Which initialisation at (seed, n): 0 is the search's first trial, 1 its confirmation.")
    var replicate = 0

    @OptionGroup var training: TrainingOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard n >= 1 else { throw ValidationError("--n must be at least 1") }
        guard seed >= 0, replicate >= 0 else { throw ValidationError("--seed and --replicate cannot be negative") }
    }

    func run() throws {
        BLAS.useOneThread()
        let search = try SearchRun(try training.settings(data: data, model: model))
        var bar: ProgressReporter?
        let epochs = search.config.fit.epochBudget(samples: n, fullBatch: search.config.optimizer.kind == .gd)
        if !output.quiet && !output.json { print("training \(search.config.model) (\(search.config.parameters) parameters) on n = \(n), seed \(seed), \(search.config.optimizer)") }
        let outcome = try search.checkedTrial(n: n, seed: seed, replicate: replicate) { report in
            if bar == nil { bar = ProgressReporter("  training", total: epochs, unit: "epochs", quiet: output.quiet || output.json) }
            bar?.set(completed: report.epoch)
        }
        bar?.finish()
        if output.json { return try printJSON(outcome) }
        guard let h = outcome.hessian else {
            print("\(outcome.result.rawValue): \(outcome.reason)")
            print("no Hessian check: the trial diverged")
            return
        }
        print("\(outcome.result.rawValue) after \(outcome.epochs) epochs (\(outcome.steps) steps): \(outcome.reason)")
        print(String(format: "Hessian over the %d samples: λ_max %.6g, λ_min %.6g, λ_min/λ_max %.3g → %@ (tolerance %g)",
                     h.samples, h.lambdaMax, h.lambdaMin, h.lambdaMin / h.lambdaMax, h.verdict.rawValue, h.tolerance))
        print(String(format: "  %d Lanczos steps; residuals %.2g (λ_max), %.2g (λ_min); %d Hessian-vector products, %@ = %.1f full passes%@",
                     h.steps, h.residuals.last ?? .nan, h.residuals.first ?? .nan, h.products, formatDuration(h.seconds), h.fullPasses,
                     h.singleBatch ? "" : " (in micro-batches)"))
        let shown = h.ritzValues.count <= 12 ? h.ritzValues : Array(h.ritzValues.prefix(6)) + Array(h.ritzValues.suffix(6))
        print("  Ritz values" + (h.ritzValues.count > 12 ? " (lowest and highest 6)" : "") + ": " + shown.map { String(format: "%.4g", $0) }.joined(separator: ", "))
    }
}
