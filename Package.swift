// swift-tools-version: 6.0
// Facet — masked-face recognition matching cluster.
// Layout: C libraries behind thin `C*` system-library targets; pure cores (FacetNN, FacetIndex,
// FacetClassify, FacetImaging) that know nothing of ZeroMQ, LMDB or processes; services on top.
import PackageDescription

// Hot numeric targets are optimised even in debug builds, so `swift test` (debug) runs the CNN,
// the index and the shape predictor at useful speed. Release builds are unaffected.
let optimisedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "Facet",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "facet", targets: ["facet"]),
        .library(name: "FacetClient", targets: ["FacetClient"]),
        .library(name: "FacetFace", targets: ["FacetFace"]),
        .library(name: "FacetIndex", targets: ["FacetIndex"]),
        .library(name: "FacetStore", targets: ["FacetStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        // MARK: C libraries from Debian (see FINDINGS: no pkgConfig for libzmq, it drags a rejected -isystem)
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CLinear", providers: [.apt(["liblinear-dev"])]),

        // MARK: pure cores
        .target(name: "FacetImaging", dependencies: ["CTurboJPEG", "CPNG"], swiftSettings: optimisedInDebug),
        .target(name: "CFacetConv", dependencies: ["COpenBLAS"], cSettings: [.unsafeFlags(["-O3"])],
                linkerSettings: [.linkedLibrary("openblas")]),
        .target(name: "FacetNN", dependencies: ["COpenBLAS", "CFacetConv"], swiftSettings: optimisedInDebug),
        .target(name: "CFacetKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "FacetIndex", dependencies: ["COpenBLAS", "CFacetKernels"], swiftSettings: optimisedInDebug),
        .target(name: "FacetClassify", dependencies: ["CLinear"], swiftSettings: optimisedInDebug),

        // MARK: face pipeline
        .target(name: "FacetFace", dependencies: ["FacetImaging", "FacetNN"], swiftSettings: optimisedInDebug),
        .target(name: "FacetMasking", dependencies: ["FacetImaging", "FacetFace", "CPNG", "COpenBLAS"],
                resources: [.copy("Resources")], swiftSettings: optimisedInDebug),
        .target(name: "FacetEval", dependencies: ["FacetFace", "FacetMasking", "FacetClassify", "FacetIndex"], swiftSettings: optimisedInDebug),

        // MARK: storage, wire, transport
        .target(name: "FacetStore", dependencies: ["CLMDB", "FacetIndex", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: optimisedInDebug),
        .target(name: "FacetWire", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "FacetTransport", dependencies: ["CZeroMQ", .product(name: "Logging", package: "swift-log")]),

        // MARK: services and clients
        .target(name: "FacetCluster", dependencies: [
            "FacetFace", "FacetMasking", "FacetIndex", "FacetStore", "FacetClassify", "FacetWire", "FacetTransport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "FacetClient", dependencies: ["FacetWire", "FacetTransport", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "FacetTestSupport", dependencies: ["FacetIndex", "FacetStore", "FacetImaging", "COpenBLAS"], path: "Sources/FacetTestSupport",
                resources: [.copy("Resources")], swiftSettings: optimisedInDebug),

        // Child process for the kill -9 durability test (FacetStoreTests).
        .executableTarget(name: "FacetStoreCrashHelper", dependencies: ["FacetStore", "FacetTestSupport"], swiftSettings: optimisedInDebug),

        // MARK: command line (thin)
        .executableTarget(name: "facet", dependencies: [
            "FacetFace", "FacetMasking", "FacetEval", "FacetIndex", "FacetStore", "FacetClassify", "FacetCluster", "FacetClient",
            "FacetTestSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // MARK: tests
        .testTarget(name: "FacetImagingTests", dependencies: ["FacetImaging", "FacetTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "FacetNNTests", dependencies: ["FacetNN", "FacetTestSupport"]),
        .testTarget(name: "FacetFaceTests", dependencies: ["FacetFace", "FacetTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "FacetMaskingTests", dependencies: ["FacetMasking", "FacetFace", "FacetImaging"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "FacetIndexTests", dependencies: ["FacetIndex", "FacetTestSupport"]),
        .testTarget(name: "FacetStoreTests", dependencies: ["FacetStore", "FacetIndex", "FacetTestSupport", "FacetStoreCrashHelper"]),
        .testTarget(name: "FacetClassifyTests", dependencies: ["FacetClassify"], resources: [.copy("Fixtures")]),
        .testTarget(name: "FacetEvalTests", dependencies: ["FacetEval", "FacetClassify", "FacetFace", "FacetMasking", "FacetTestSupport", "facet"], resources: [.copy("Fixtures")]),
        .testTarget(name: "FacetWireTests", dependencies: ["FacetWire"], resources: [.copy("Fixtures")]),
        .testTarget(name: "FacetTransportTests", dependencies: ["FacetTransport", "FacetWire"]),
        .testTarget(name: "FacetClientTests", dependencies: ["FacetClient", "FacetTransport", "FacetWire"]),
        .testTarget(name: "FacetFuzzTests", dependencies: ["FacetImaging", "FacetNN", "FacetFace", "FacetWire", "FacetTransport", "FacetCluster",
                                                   .product(name: "Logging", package: "swift-log")], exclude: ["Corpus"]),
        .testTarget(name: "FacetFaultTests", dependencies: ["FacetCluster", "FacetClient", "FacetWire", "FacetTransport", "FacetTestSupport", "facet"]),
        .testTarget(name: "FacetClusterTests", dependencies: ["FacetCluster", "FacetClient", "FacetClassify", "FacetWire", "FacetTransport", "FacetIndex", "FacetStore", "FacetTestSupport", "facet"]),
    ],
    swiftLanguageModes: [.v5]
)
