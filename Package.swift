// swift-tools-version:6.1
// FlexMoE builds in two modes from one package:
//   host (default)          every module, the server, the tests;
//   FLEXMOE_EMBEDDED=1      only the board-side modules, as Embedded Swift with whole-module
//                           optimisation, for `--triple aarch64-none-none-elf` (see Tools/cross-build).
import PackageDescription
import Foundation

let embedded = ProcessInfo.processInfo.environment["FLEXMOE_EMBEDDED"] == "1"

/// Settings for code that runs on the boards; in embedded mode it is compiled as Embedded Swift.
let boardSettings: [SwiftSetting] = embedded
    ? [.enableExperimentalFeature("Embedded"), .unsafeFlags(["-wmo"])]
    : []

/// Modules that run on the boards (and on the host, for tests, the server and simulation).
var targets: [Target] = [
    .systemLibrary(
        name: "CZstd", pkgConfig: "libzstd",
        providers: [.apt(["libzstd-dev"])]),
    .target(name: "CFlexSystem"),
    .target(name: "CFlexMath", linkerSettings: [.linkedLibrary("m")]),
    .target(name: "FlexTensor", dependencies: ["CFlexMath"], swiftSettings: boardSettings),
    .target(name: "FlexWire", dependencies: ["FlexTensor", "CZstd"], swiftSettings: boardSettings),
    .target(name: "FlexModel", dependencies: ["FlexTensor"], swiftSettings: boardSettings),
    // gzip'd IDX files are read on the host only (zlib); the boards read raw files.
    .target(
        name: "FlexData",
        dependencies: embedded ? ["FlexTensor", "FlexWire", "CFlexSystem"] : ["FlexTensor", "FlexWire", "CFlexSystem", "CZlib"],
        swiftSettings: boardSettings),
    .target(
        name: "FlexEdge", dependencies: ["FlexTensor", "FlexWire", "FlexModel", "FlexData", "CFlexSystem"],
        swiftSettings: boardSettings),
    .executableTarget(
        name: "flexmoe-edge", dependencies: ["FlexEdge", "FlexTensor", "FlexWire", "FlexModel", "FlexData", "CFlexSystem"],
        swiftSettings: boardSettings),
    .executableTarget(
        name: "flexmoe-memprof", dependencies: ["FlexEdge", "FlexModel", "FlexTensor", "CFlexSystem"],
        swiftSettings: boardSettings),
]
var products: [Product] = [
    .executable(name: "flexmoe-edge", targets: ["flexmoe-edge"]),
    .executable(name: "flexmoe-memprof", targets: ["flexmoe-memprof"]),
]
var dependencies: [Package.Dependency] = []

if !embedded {
    dependencies += [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ]
    products += [
        .executable(name: "flexmoe-server", targets: ["flexmoe-server"]),
        // Libraries for the benchmark package in Benchmarks/, which is kept out of the main build.
        .library(name: "FlexTensor", targets: ["FlexTensor"]),
        .library(name: "FlexWire", targets: ["FlexWire"]),
        .library(name: "FlexAssign", targets: ["FlexAssign"]),
        .library(name: "FlexModel", targets: ["FlexModel"]),
        .library(name: "FlexData", targets: ["FlexData"]),
        .library(name: "FlexServer", targets: ["FlexServer"]),
        .library(name: "FlexEdge", targets: ["FlexEdge"]),
        .library(name: "FlexSimulation", targets: ["FlexSimulation"]),
        .library(name: "FlexServerTesting", targets: ["FlexServerTesting"]),
    ]
    targets += [
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "FlexAssign", dependencies: ["FlexTensor"]),
        .executableTarget(
            name: "flexmoe-server",
            dependencies: [
                "FlexAssign", "FlexTensor", "FlexWire", "FlexData", "FlexModel", "FlexServer", "FlexSimulation",
                "FlexServerTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .target(
            name: "FlexServer",
            dependencies: [
                "FlexAssign", "FlexTensor", "FlexWire", "FlexModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        // Experiments: FlexEdge's device round step driven by FlexServer's round state machine, in process.
        .target(
            name: "FlexSimulation",
            dependencies: [
                "FlexServer", "FlexEdge", "FlexAssign", "FlexModel", "FlexData", "FlexWire", "FlexTensor",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Test support for the server: a raw-request protocol client and a server-process harness.
        .target(name: "FlexServerTesting", dependencies: ["FlexServer", "FlexWire", "FlexModel", "FlexTensor"]),
        .testTarget(
            name: "FlexServerTests",
            dependencies: [
                "FlexServer", "FlexServerTesting", "FlexWire", "FlexTensor", "FlexAssign", "FlexModel", "flexmoe-server",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "FlexTestSupport", dependencies: ["FlexTensor", "FlexWire"]),
        .testTarget(name: "FlexAssignTests", dependencies: ["FlexAssign"]),
        .testTarget(name: "FlexModelTests", dependencies: ["FlexModel", "FlexData", "FlexTensor", "FlexTestSupport"]),
        .testTarget(name: "FlexEdgeTests", dependencies: ["FlexEdge", "FlexWire", "FlexTensor", "FlexTestSupport"]),
        .testTarget(name: "FlexDataTests", dependencies: ["FlexData", "FlexTensor", "FlexTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "FlexTensorTests", dependencies: ["FlexTensor", "FlexTestSupport"]),
        // Golden fixtures (docs/FORMAT.md) are hex files in Fixtures/, read through Bundle.module.
        .testTarget(name: "FlexWireTests", dependencies: ["FlexWire", "FlexTensor", "FlexTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(
            name: "FlexSimulationTests",
            dependencies: ["FlexSimulation", "FlexServer", "FlexServerTesting", "FlexEdge", "FlexAssign", "FlexModel", "FlexData"]),
    ]
}

let package = Package(
    name: "FlexMoE",
    products: products,
    dependencies: dependencies,
    targets: targets
)
