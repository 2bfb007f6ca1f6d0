// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The optimizer kernels are written for 8-lane float vectors. Built for the baseline x86-64 target
/// (SSE2) every vector operation is split in two and the kernels run at ~40 % of the memory
/// bandwidth; with AVX2 they reach the plain C loop built with -march=native (BENCHMARKS.md). So on
/// x86-64 OptimizerKit is built for x86-64-v3 (AVX2, every x86 server CPU since 2013–2015), and the
/// daemon refuses to start on a CPU without AVX2 with a message saying how to build for it:
/// OPTIMIZERD_PORTABLE=1 swift build ... targets the baseline instead.
/// (Swift never contracts a*b+c into an FMA, so results are the same bits with either target.)
/// The C kernels in CVectorMath do not depend on this: each is compiled for AVX-512, AVX2 and the
/// baseline with target attributes, and `KernelVariant` picks one at run time.
let kernelSettings: [SwiftSetting] = {
    #if arch(x86_64)
    if Context.environment["OPTIMIZERD_PORTABLE"].map({ !$0.isEmpty && $0 != "0" }) != true {
        return [.unsafeFlags(["-target-cpu", "haswell"]), .define("OPTIMIZERD_KERNELS_AVX2")]
    }
    #endif
    return []
}()

let package = Package(
    name: "optimizerd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "OptimizerKit", targets: ["OptimizerKit"]),
        .library(name: "OptimizerWire", targets: ["OptimizerWire"]),
        .library(name: "OptimizerStore", targets: ["OptimizerStore"]),
        .library(name: "OptimizerServer", targets: ["OptimizerServer"]),
        .executable(name: "optimizerd", targets: ["optimizerd"]),
        .executable(name: "optimizerd-bench", targets: ["OptimizerBenchmarks"]),
        .executable(name: "optimizerd-fuzz", targets: ["OptimizerFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CVectorMath"),
        // The low-bit state kernels (bfloat16 and 8-bit Adam), per-CPU variants as in CVectorMath.
        .target(name: "CLowBit", dependencies: ["CVectorMath"]),
        .target(name: "OptimizerKit", dependencies: ["CVectorMath", "CLowBit"], swiftSettings: swiftSettings + kernelSettings),
        .target(name: "OptimizerWire", dependencies: ["OptimizerKit"], swiftSettings: swiftSettings),
        .target(name: "CChecksum"),
        .target(
            name: "OptimizerStore",
            dependencies: ["OptimizerWire", "OptimizerKit", "CChecksum"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OptimizerServer",
            dependencies: [
                "OptimizerKit",
                "OptimizerWire",
                "OptimizerStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            // The repository's openapi.yaml (through a symlink), compiled into the binary: served at
            // GET /openapi.yaml wherever the daemon runs. Likewise the dashboard's files (GET /).
            resources: [
                .embedInCode("Resources/openapi.yaml"),
                .embedInCode("Dashboard/Resources/index.html"),
                .embedInCode("Dashboard/Resources/charts.js"),
                .embedInCode("Dashboard/Resources/chart-specs.js"),
                .embedInCode("Dashboard/Resources/dashboard.js"),
                .embedInCode("Dashboard/Resources/dashboard.css"),
                .embedInCode("Dashboard/Resources/favicon.svg"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "optimizerd",
            dependencies: [
                "OptimizerServer",
                "OptimizerKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The benchmarks' yardstick: a plain C Adam loop built for this machine (never shipped).
        .target(name: "CBaseline", cSettings: [.unsafeFlags(["-O3", "-march=native", "-fno-math-errno"])]),
        .executableTarget(
            name: "OptimizerBenchmarks",
            dependencies: ["OptimizerKit", "CBaseline", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        // Fuzzing (scripts/fuzz.sh): the targets' harness is a plain library, so `swift test` replays
        // the kept corpus through it; the driver is a libFuzzer binary when built with
        // -sanitize=fuzzer -DFUZZING and a corpus replayer otherwise.
        .target(name: "OptimizerFuzzing", dependencies: ["OptimizerWire", "OptimizerKit"], swiftSettings: swiftSettings),
        .target(name: "CLibFuzzer"),
        .executableTarget(name: "OptimizerFuzz", dependencies: ["OptimizerFuzzing", "CLibFuzzer"], swiftSettings: swiftSettings),
        .testTarget(
            name: "OptimizerFuzzingTests",
            dependencies: ["OptimizerFuzzing", "OptimizerWire", "OptimizerKit"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OptimizerStoreTests",
            dependencies: ["CChecksum", "OptimizerStore", "OptimizerWire", "OptimizerKit"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OptimizerTestSupport",
            dependencies: ["OptimizerKit", "OptimizerWire"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConformanceTests",
            dependencies: ["OptimizerTestSupport", "OptimizerKit", "OptimizerWire"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "OptimizerKitTests", dependencies: ["OptimizerKit"], swiftSettings: swiftSettings),
        .testTarget(
            name: "OptimizerWireTests",
            dependencies: ["OptimizerWire", "OptimizerKit"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OptimizerServerTests",
            dependencies: [
                "OptimizerServer",
                "OptimizerWire",
                "OptimizerKit",
                "OptimizerTestSupport",
                "optimizerd",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
