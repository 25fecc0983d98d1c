import ArgumentParser
import EMCCore
import EMCPipeline
import EMCVariants
import EMCShards
import EMCTransforms
import Foundation

struct Perturb: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Derive a perturbed variant of a shard set: random or noisy labels, merged classes, noise or permuted inputs.",
        discussion: """
        A variant is an overlay: a dataset.json naming its base (by relative path and content id) plus only what changes \
        (a compressed label column for label transforms; input transforms are applied on read). Variants of variants work. \
        Every transform is a pure function of (seed, the sample's original index, its value). Label transforms change the \
        train split only unless --splits says otherwise (a merge or another class count relabels every split); input transforms apply to every split.

        Examples:
          emc perturb datasets/fashion-mnist --out datasets/fashion-mnist-random --labels random
          emc perturb datasets/cifar100 --out datasets/cifar100-coarse --merge-classes 20 --merge-mode superclass
          emc perturb datasets/fashion-mnist --out datasets/fashion-mnist-permuted --inputs permute
        """)

    @Argument(help: "The base shard set (or variant).")
    var base: String

    @Option(help: "Output folder for the variant.")
    var out: String

    @Option(help: "Label transform: random (uniform over the classes, or --classes k).")
    var labels: LabelsKind?

    @Option(help: "With --labels random: the number of classes (default: the base's).")
    var classes: Int?

    @Option(help: "Give a seeded fraction p of samples a different random class.")
    var labelNoise: Double?

    @Option(help: "Merge the classes into k groups.")
    var mergeClasses: Int?

    @Option(help: "How to merge: block (contiguous ids), random (seeded balanced partition), superclass (CIFAR-100 coarse).")
    var mergeMode = LabelTransform.MergeMode.block

    @Option(help: "Input transform: gaussian, permute (one permutation for all samples) or permute-each.")
    var inputs: InputKind?

    @Option(help: "Seed of the transforms.")
    var seed: UInt64 = 0

    @Option(help: "Splits whose labels change, comma-separated (default: train; every split for a transform that changes the class count).")
    var splits: String?

    @Flag(help: "Replace what is already in the output folder.")
    var force = false

    @Flag(help: "Write full shards instead of an overlay.")
    var materialize = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        let labelOptions = [labels != nil, labelNoise != nil, mergeClasses != nil].filter { $0 }.count
        guard labelOptions <= 1 else { throw ValidationError("give one label transform: --labels, --label-noise or --merge-classes") }
        guard labelOptions == 1 || inputs != nil else { throw ValidationError("give a label transform (--labels, --label-noise, --merge-classes) or --inputs") }
        if classes != nil && labels == nil { throw ValidationError("--classes goes with --labels random") }
    }

    func run() throws {
        var request = PerturbRequest(base: base, out: out)
        if labels != nil {
            request.labels = .random(classes: try classes ?? DatasetManifest.load(directory: base).classes.count, seed: seed)
        }
        if let p = labelNoise { request.labels = .noise(probability: p, seed: seed) }
        if let k = mergeClasses { request.labels = .merge(classes: k, mode: mergeMode, seed: seed) }
        switch inputs {
        case .gaussian?: request.inputs = .gaussian(seed: seed)
        case .permute?: request.inputs = .permute(seed: seed)
        case .permuteEach?: request.inputs = .permuteEach(seed: seed)
        case nil: break
        }
        request.labelSplits = splits.map { $0.split(separator: ",").map(String.init) }
        request.force = force
        request.materialize = materialize
        let progress = materialize ? ProgressReporter("materialize", total: nil, unit: "samples", quiet: output.quiet || output.json) : nil
        let manifest = try VariantBuilder.make(request, progress: progress)
        progress?.finish()
        if output.json { return try printJSON(manifest) }
        if output.quiet { return }
        let what = [request.labels?.description, request.inputs?.description].compactMap { $0 }.joined(separator: "; ")
        print("wrote \(materialize ? "materialized variant" : "variant") \(out) of \(base): \(what)")
        print("  \(manifest.classes.count) classes; content id \(manifest.contentId.prefix(12))")
    }
}

/// `--labels`: the label transforms that take no number.
enum LabelsKind: String, CaseIterable, ExpressibleByArgument { case random }

/// `--inputs`: the input transforms.
enum InputKind: String, CaseIterable, ExpressibleByArgument {
    case gaussian, permute
    case permuteEach = "permute-each"
}

extension LabelTransform.MergeMode: ExpressibleByArgument {}
