// swift-tools-version: 6.0
// Facet benchmarks, kept out of the main package so `swift build` there stays lean.
// Run through scripts/bench-embedder.sh, which also builds and runs the dlib references side by side.
import PackageDescription

let package = Package(
    name: "FacetBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "Facet", path: "..")],
    targets: [
        .executableTarget(name: "nn-bench", dependencies: [.product(name: "FacetFace", package: "Facet")],
                          swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
    ],
    swiftLanguageModes: [.v5]
)
