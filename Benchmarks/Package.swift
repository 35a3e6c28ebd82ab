// swift-tools-version:6.1
// flexmoe-bench: release-mode benchmarks, kept out of the main build.
//   swift build --package-path Benchmarks -c release && Benchmarks/.build/release/flexmoe-bench --help
import PackageDescription

let package = Package(
    name: "FlexMoEBenchmarks",
    dependencies: [
        .package(name: "FlexMoE", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "flexmoe-bench",
            dependencies: [
                .product(name: "FlexTensor", package: "FlexMoE"),
                .product(name: "FlexWire", package: "FlexMoE"),
                .product(name: "FlexAssign", package: "FlexMoE"),
                .product(name: "FlexModel", package: "FlexMoE"),
                .product(name: "FlexData", package: "FlexMoE"),
                .product(name: "FlexServer", package: "FlexMoE"),
                .product(name: "FlexServerTesting", package: "FlexMoE"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.unsafeFlags(["-Ounchecked", "-wmo"])]),
    ]
)
