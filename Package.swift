// swift-tools-version: 6.0
import PackageDescription

// Release builds are plain `-O` (whole-module): bounds checks and preconditions stay on, so
// the op-and-shape checks of the house style exist in every build.
let release: [SwiftSetting] = [.unsafeFlags(["-O", "-wmo"], .when(configuration: .release))]

// Linux only: the thread pool sleeps on a Linux futex (CConjureKernels/pool.c stops a build
// elsewhere with one #error), matrix products need OpenBLAS's CBLAS and oneDNN (libdnnl-dev), the readers Debian's
// libspng, libsndfile, libsamplerate and KissFFT.
let package = Package(
    name: "Conjure",
    products: [
        .executable(name: "conjure", targets: ["conjure"]),
        .library(name: "ConjureTensor", targets: ["ConjureTensor"]),
        .library(name: "ConjureNN", targets: ["ConjureNN"]),
        .library(name: "ConjureOptim", targets: ["ConjureOptim"]),
        .library(name: "ConjureData", targets: ["ConjureData"]),
        .library(name: "ConjureModels", targets: ["ConjureModels"]),
        .library(name: "ConjureMetrics", targets: ["ConjureMetrics"]),
        .library(name: "ConjureTraining", targets: ["ConjureTraining"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "CSPNG", path: "Sources/CSPNG"),
        .systemLibrary(name: "CZlibSys", path: "Sources/CZlibSys"),
        .systemLibrary(name: "CSndfile", path: "Sources/CSndfile"),
        .systemLibrary(name: "CSamplerate", path: "Sources/CSamplerate"),
        .systemLibrary(name: "CKissFFT", path: "Sources/CKissFFT"),
        .target(name: "CConjureKernels", cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])],
                linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        .target(name: "ConjureTensor", dependencies: ["CBLAS", "CDNNL", "CConjureKernels"], swiftSettings: release),
        .target(name: "ConjureNN", dependencies: ["ConjureTensor"], swiftSettings: release),
        .target(name: "ConjureOptim", dependencies: ["ConjureTensor", "ConjureNN", "CConjureKernels"], swiftSettings: release),
        .target(name: "ConjureData", dependencies: ["ConjureTensor", "CSPNG", "CZlibSys", "CSndfile", "CSamplerate", "CKissFFT"], swiftSettings: release),
        .target(name: "ConjureModels", dependencies: ["ConjureTensor", "ConjureNN", "ConjureOptim", "ConjureData"], swiftSettings: release),
        .target(name: "ConjureMetrics", dependencies: ["ConjureTensor", "ConjureNN", "ConjureData", "CBLAS"], swiftSettings: release),
        .target(
            name: "ConjureTraining",
            dependencies: [
                "ConjureTensor", "ConjureNN", "ConjureOptim", "ConjureData", "ConjureModels", "ConjureMetrics", "CConjureKernels",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ],
            swiftSettings: release),
        .target(
            name: "ConjureCLI",
            dependencies: [
                "ConjureTraining", "ConjureOptim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: release),
        .executableTarget(name: "conjure", dependencies: ["ConjureCLI"], swiftSettings: release),
        .target(name: "ConjureTestSupport", dependencies: ["ConjureTensor"], path: "Sources/ConjureTestSupport"),
        .testTarget(name: "ConjureTensorTests", dependencies: ["ConjureTensor", "ConjureTestSupport"]),
        .testTarget(name: "ConjureNNTests", dependencies: ["ConjureNN", "ConjureOptim", "ConjureData", "ConjureModels", "ConjureTestSupport"]),
        .testTarget(name: "ConjureModelsTests", dependencies: ["ConjureModels", "ConjureNN", "ConjureOptim", "ConjureData", "ConjureTestSupport"]),
        .testTarget(name: "ConjureOptimTests", dependencies: ["ConjureOptim", "ConjureNN", "ConjureTestSupport"]),
        .testTarget(name: "ConjureCLITests", dependencies: ["ConjureCLI", "ConjureTraining"]),
        .testTarget(name: "ConjureDataTests", dependencies: ["ConjureData", "ConjureTestSupport"]),
        .testTarget(name: "ConjureMetricsTests", dependencies: ["ConjureMetrics", "ConjureTestSupport"]),
        .testTarget(name: "ConjureTrainingTests", dependencies: ["ConjureTraining", "ConjureTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
