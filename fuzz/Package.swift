// swift-tools-version: 6.1
// The fuzz targets: one libFuzzer binary over emc's decoders, shard reader, manifests and results logs.
// Built by scripts/fuzz with `-sanitize=fuzzer,address`; not part of the main package's build.
import PackageDescription

let package = Package(
    name: "emc-fuzz",
    dependencies: [.package(name: "emc", path: "..")],
    targets: [
        .executableTarget(name: "emc-fuzz", dependencies: [
            .product(name: "EMCCore", package: "emc"),
            .product(name: "EMCFormats", package: "emc"),
            .product(name: "EMCShards", package: "emc"),
            .product(name: "EMCConvert", package: "emc"),
            .product(name: "EMCSearch", package: "emc"),
            .product(name: "EMCReports", package: "emc"),
            .product(name: "EMCTrainer", package: "emc"),
        ]),
    ]
)
