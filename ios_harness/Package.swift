// swift-tools-version:5.7
// Core ML timing for edgetailor: a command-line tool for macOS and a library for an iOS test
// target (Core ML exists only on Apple platforms; this package does not build on Linux).
import PackageDescription

let package = Package(
    name: "EdgetailorBench",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "EdgetailorBench", targets: ["EdgetailorBench"]),
        .executable(name: "edgetailor-coreml-bench", targets: ["edgetailor-coreml-bench"]),
    ],
    targets: [
        .target(name: "EdgetailorBench"),
        .executableTarget(name: "edgetailor-coreml-bench", dependencies: ["EdgetailorBench"]),
        .testTarget(name: "EdgetailorBenchTests", dependencies: ["EdgetailorBench"]),
    ]
)
