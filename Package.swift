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
        .executable(name: "optimizerd-bench", targets: ["OptimizerBenchmarks"]),
    ],
    targets: [
        .target(name: "OptimizerKit", swiftSettings: swiftSettings),
        .target(name: "OptimizerWire", dependencies: ["OptimizerKit"], swiftSettings: swiftSettings),
        .executableTarget(name: "OptimizerBenchmarks", dependencies: ["OptimizerKit"], swiftSettings: swiftSettings),
        .testTarget(name: "OptimizerKitTests", dependencies: ["OptimizerKit"], swiftSettings: swiftSettings),
        .testTarget(
            name: "OptimizerWireTests",
            dependencies: ["OptimizerWire", "OptimizerKit"],
            swiftSettings: swiftSettings
        ),
    ]
)
