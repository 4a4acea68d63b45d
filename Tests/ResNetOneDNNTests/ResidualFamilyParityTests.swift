import XCTest
import ResNetKit
import ResNetOneDNN

/// The bottleneck block and the residual MLP on the oneDNN backend against the reference, through
/// `BackendComparison`: each layer's output, the loss, every gradient, and the losses and weights
/// after Adam steps, at small shapes.
final class ResidualFamilyParityTests: XCTestCase {
    private func failures(_ report: ComparisonReport) -> String {
        (report.outputs + report.gradients + report.weights + (report.stepLossDifference.map { [$0] } ?? []))
            .filter { !$0.passed }
            .map { "\($0.name): max abs \($0.maxAbsolute), relative \($0.maxRelative)" }
            .joined(separator: "; ")
    }

    func testBottleneckBlocksMatch() throws {
        let comparison = BackendComparison(
            makeModel: { backend in
                let network = Sequential {
                    BottleneckBlock(filters: 4, strides: 2)
                    BottleneckBlock(filters: 4)
                    GlobalAveragePool2D()
                    Dense(units: 5)
                }
                return try Model(name: "bottleneck", network: network, inputShape: TensorShape(3, 9, 9), backend: backend, seed: 4)
            },
            batch: 3, steps: 5, seed: 2, timingRepeats: 1)
        let report = try comparison.run(candidate: try OneDNNBackend(threads: 2), reference: ReferenceBackend<Float>(threads: 2))
        XCTAssertEqual(report.outputs.count, 5, "4 layers and the loss")
        // Per block: 3 kernels and 3 BN scales and shifts; the first block adds a projection
        // kernel with its BN. Then the dense kernel and bias.
        let firstBlock = 3 * 3 + 3
        let secondBlock = 3 * 3
        XCTAssertEqual(report.gradients.count, firstBlock + secondBlock + 2)
        XCTAssertTrue(report.passed, failures(report))
    }

    func testResidualMLPMatches() throws {
        let comparison = BackendComparison(
            makeModel: { backend in
                try ResidualMLP(width: 16, blocks: 2).makeModel(features: 6, outputs: 4, backend: backend, seed: 3)
            },
            batch: 5, steps: 5, seed: 2, timingRepeats: 1)
        let report = try comparison.run(candidate: try OneDNNBackend(threads: 2), reference: ReferenceBackend<Float>(threads: 2))
        // Dense and ReLU, two blocks of two dense layers, the output layer: 6 kernels and 6 biases.
        XCTAssertEqual(report.gradients.count, 12)
        XCTAssertTrue(report.passed, failures(report))
    }
}
