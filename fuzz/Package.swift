// swift-tools-version: 6.0
// libFuzzer harnesses for Conjure's file readers. Not part of the main build: scripts/fuzz.sh
// builds this package in debug mode with `-sanitize=fuzzer,address` and runs one reader.
import PackageDescription

let package = Package(
    name: "ConjureFuzz",
    dependencies: [.package(name: "Conjure", path: "..")],
    targets: [
        .executableTarget(
            name: "conjure-fuzz",
            dependencies: [.product(name: "ConjureData", package: "Conjure")],
            path: "Sources/ConjureFuzz"),
    ],
    swiftLanguageModes: [.v5]
)
