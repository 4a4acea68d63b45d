// swift-tools-version:6.0
import PackageDescription

// ResNetKit has C++ interop off so that any Swift package can import it; ResNetOneDNN and the
// tool turn it on to reach the oneDNN bridge.
let cxxInterop: [SwiftSetting] = [.interoperabilityMode(.Cxx)]

let package = Package(
    name: "swift-resnet",
    products: [
        .library(name: "ResNetKit", targets: ["ResNetKit"]),
        .library(name: "ResNetOneDNN", targets: ["ResNetOneDNN"]),
        .library(name: "ResNetMPI", targets: ["ResNetMPI"]),
        .executable(name: "resnet", targets: ["resnet"]),
    ],
    targets: [
        .target(
            name: "CxxBridge",
            path: "CxxBridge",
            publicHeadersPath: "include",
            linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("dl")]
        ),
        // zlib inflates gzip files and deflated zip members; a C module keeps ResNetKit free of
        // C++ interop.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .target(name: "ResNetKit", dependencies: ["CZlib"]),
        // MPI is loaded at run time (dlopen) by CMPI, so nothing here links against it and
        // machines without MPI build and run everything but distributed training.
        .target(name: "CMPI", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "ResNetMPI", dependencies: ["ResNetKit", "CMPI"]),
        .target(
            name: "ResNetOneDNN",
            dependencies: ["ResNetKit", "CxxBridge"],
            swiftSettings: cxxInterop
        ),
        .executableTarget(
            name: "resnet",
            dependencies: ["ResNetKit", "ResNetOneDNN", "ResNetMPI"],
            swiftSettings: cxxInterop
        ),
        .testTarget(name: "ResNetKitTests", dependencies: ["ResNetKit", "CZlib"]),
        .testTarget(
            name: "ResNetOneDNNTests",
            dependencies: ["ResNetKit", "ResNetOneDNN"],
            swiftSettings: cxxInterop
        ),
    ],
    swiftLanguageModes: [.v5],
    cxxLanguageStandard: .cxx17
)
