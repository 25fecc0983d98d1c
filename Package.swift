// swift-tools-version: 6.1
import PackageDescription

/// A system library target: a module map plus a one-line shim header, found through pkg-config,
/// with the Debian package that provides it (scripts/setup installs it).
func systemLibrary(_ name: String, pkgConfig: String, apt: String) -> Target {
    .systemLibrary(name: name, path: "Sources/\(name)", pkgConfig: pkgConfig, providers: [.apt([apt])])
}

let package = Package(
    name: "emc",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "emc", targets: ["emc"]),
        .library(name: "EMCCore", targets: ["EMCCore"]),
        .library(name: "EMCFormats", targets: ["EMCFormats"]),
        .library(name: "EMCShards", targets: ["EMCShards"]),
        .library(name: "EMCTrainer", targets: ["EMCTrainer"]),
        .library(name: "EMCConvert", targets: ["EMCConvert"]),
        .library(name: "EMCTransforms", targets: ["EMCTransforms"]),
        .library(name: "EMCVariants", targets: ["EMCVariants"]),
        .library(name: "EMCPipeline", targets: ["EMCPipeline"]),
        .library(name: "EMCSearch", targets: ["EMCSearch"]),
        .library(name: "EMCReports", targets: ["EMCReports"]),
        .library(name: "EMCSweeps", targets: ["EMCSweeps"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Native libraries from Debian's -dev packages.
        systemLibrary("CLZ4", pkgConfig: "liblz4", apt: "liblz4-dev"),
        systemLibrary("CZstd", pkgConfig: "libzstd", apt: "libzstd-dev"),
        systemLibrary("CPNG", pkgConfig: "libpng", apt: "libpng-dev"),
        systemLibrary("CZlib", pkgConfig: "zlib", apt: "zlib1g-dev"),
        systemLibrary("CTurboJPEG", pkgConfig: "libturbojpeg", apt: "libturbojpeg0-dev"),
        systemLibrary("CBLAS", pkgConfig: "openblas", apt: "libopenblas-dev"),
        systemLibrary("CLAPACKE", pkgConfig: "lapacke", apt: "liblapacke-dev"),

        // Small C kernels that Swift cannot express well, each owned by one module: the SSE4.2 CRC32C and
        // SSSE3 byte-delta (EMCCore), the layers' elementwise and data-movement loops (EMCTrainer), and the
        // uint8 → float sample conversion (EMCPipeline).
        .target(name: "CEMCKernels", path: "Sources/CEMCKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "CTrainerKernels", path: "Sources/CTrainerKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "CPipelineKernels", path: "Sources/CPipelineKernels", cSettings: [.unsafeFlags(["-O3"])]),

        .target(name: "EMCCore", dependencies: ["CEMCKernels"]),
        .target(name: "EMCFormats", dependencies: ["EMCCore", "CPNG", "CTurboJPEG", "CZlib"]),
        .target(name: "EMCShards", dependencies: ["EMCCore", "CLZ4", "CZstd"]),
        .target(name: "EMCTransforms", dependencies: ["EMCCore"]),
        .target(name: "EMCVariants", dependencies: ["EMCCore", "EMCShards", "EMCTransforms"]),
        .target(name: "EMCPipeline", dependencies: ["EMCCore", "EMCShards", "EMCVariants", "CPipelineKernels"]),
        // The search (run API, search, boundary, records, simulation); reports over its records (tables, plots,
        // findings); sweeps of searches (experiment manifests, executors, Slurm).
        .target(name: "EMCSearch", dependencies: ["EMCCore", "EMCVariants", "EMCPipeline", "EMCTrainer"]),
        .target(name: "EMCReports", dependencies: ["EMCCore", "EMCTransforms", "EMCTrainer", "EMCSearch"]),
        .target(name: "EMCSweeps", dependencies: ["EMCCore", "EMCShards", "EMCTransforms", "EMCVariants", "EMCPipeline", "EMCTrainer", "EMCSearch", "EMCReports"]),
        .target(name: "EMCTrainer", dependencies: ["EMCCore", "CBLAS", "CLAPACKE", "CTrainerKernels"]),
        // Wires decoders to the shard writer (the two know nothing of each other), and exports what emc reads as NumPy arrays.
        .target(name: "EMCConvert", dependencies: ["EMCCore", "EMCFormats", "EMCShards", "EMCVariants", "EMCPipeline"]),
        // The benchmarks behind `emc bench`, each against a baseline measured in the same run.
        .target(name: "EMCBench", dependencies: ["EMCCore", "EMCFormats", "EMCShards", "EMCTrainer", "EMCConvert", "EMCVariants", "EMCPipeline", "EMCSearch", "EMCReports", "EMCSweeps"]),
        .executableTarget(name: "emc", dependencies: [
            "EMCCore", "EMCFormats", "EMCShards", "EMCTrainer", "EMCConvert", "EMCTransforms", "EMCVariants", "EMCPipeline", "EMCSearch", "EMCReports", "EMCSweeps", "EMCBench",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .target(name: "EMCTestSupport", dependencies: ["EMCCore", "EMCShards"], path: "Tests/EMCTestSupport"),
        .testTarget(name: "EMCCoreTests", dependencies: ["EMCCore", "EMCTestSupport"]),
        .testTarget(name: "EMCFormatsTests", dependencies: ["EMCFormats", "EMCTestSupport"]),
        .testTarget(name: "EMCShardsTests", dependencies: ["EMCShards", "EMCTestSupport"]),
        .testTarget(name: "EMCTrainerTests", dependencies: ["EMCTrainer", "EMCTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "EMCTransformsTests", dependencies: ["EMCTransforms", "EMCTestSupport"]),
        .testTarget(name: "EMCPipelineTests", dependencies: ["EMCPipeline", "EMCVariants", "EMCTrainer", "EMCConvert", "EMCTestSupport"]),
        .testTarget(name: "EMCSearchTests", dependencies: ["EMCSearch", "EMCReports", "EMCSweeps", "EMCVariants", "EMCPipeline", "EMCConvert", "EMCTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "EMCCommandTests", dependencies: ["emc", "EMCSearch", "EMCReports", "EMCSweeps", "EMCPipeline", "EMCTestSupport",
                                                            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "EMCConvertTests", dependencies: ["EMCConvert", "EMCFormats", "EMCShards", "EMCVariants", "EMCTestSupport"]),
    ]
)
