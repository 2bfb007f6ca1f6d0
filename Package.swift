// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "optimizerd",
    products: [
        .library(name: "OptimizerKit", targets: ["OptimizerKit"]),
        .library(name: "OptimizerWire", targets: ["OptimizerWire"]),
        .library(name: "OptimizerStore", targets: ["OptimizerStore"]),
        .executable(name: "optimizerd-bench", targets: ["OptimizerBenchmarks"]),
    ],
    targets: [
        .target(name: "OptimizerKit", swiftSettings: swiftSettings),
        .target(name: "OptimizerWire", dependencies: ["OptimizerKit"], swiftSettings: swiftSettings),
        .target(name: "CChecksum"),
        .target(
            name: "OptimizerStore",
            dependencies: ["OptimizerWire", "OptimizerKit", "CChecksum"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "OptimizerBenchmarks", dependencies: ["OptimizerKit"], swiftSettings: swiftSettings),
        .testTarget(
            name: "OptimizerStoreTests",
            dependencies: ["OptimizerStore", "OptimizerWire", "OptimizerKit"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OptimizerTestSupport",
            dependencies: ["OptimizerKit", "OptimizerWire"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConformanceTests",
            dependencies: ["OptimizerTestSupport", "OptimizerKit"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "OptimizerKitTests", dependencies: ["OptimizerKit"], swiftSettings: swiftSettings),
        .testTarget(
            name: "OptimizerWireTests",
            dependencies: ["OptimizerWire", "OptimizerKit"],
            swiftSettings: swiftSettings
        ),
    ]
)
