// swift-tools-version:6.0
import PackageDescription

// A plain Swift package that uses ResNetKit without C++ interoperability: it builds a small
// residual network and trains it on the pure-Swift reference backend.
let package = Package(
    name: "ReferenceTraining",
    dependencies: [.package(name: "swift-resnet", path: "../..")],
    targets: [
        .executableTarget(
            name: "ReferenceTraining",
            dependencies: [.product(name: "ResNetKit", package: "swift-resnet")]
        )
    ]
)
