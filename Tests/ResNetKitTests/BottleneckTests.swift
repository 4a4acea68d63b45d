import Foundation
import XCTest
@testable import ResNetKit

/// Compares every trainable parameter's tape gradient with central finite differences of
/// `loss`, on a model built on `ReferenceBackend<Double>`. The tolerance reasoning is the one of
/// `ModelGradientTests`: h = 1e-5 in Double, 1e-6 relative to the tensor's largest gradient.
func assertTapeGradientsMatchFiniteDifferences(
    _ model: Model, gradients: [Tensor], loss: () throws -> Double, file: StaticString = #filePath, line: UInt = #line
) throws {
    let backend = try XCTUnwrap(model.backend as? ReferenceBackend<Double>, "needs the Double reference backend")
    let parameters = model.trainableParameters
    XCTAssertEqual(gradients.count, parameters.count, file: file, line: line)
    let step = 1e-5
    for (parameter, gradient) in zip(parameters, gradients) {
        let analytic = try backend.scalars(of: gradient)
        var values = try backend.scalars(of: parameter.value)
        var numeric = [Double](repeating: 0, count: values.count)
        for index in values.indices {
            let original = values[index]
            values[index] = original + step
            parameter.value = try backend.makeTensor(scalars: values, shape: parameter.shape)
            let plus = try loss()
            values[index] = original - step
            parameter.value = try backend.makeTensor(scalars: values, shape: parameter.shape)
            let minus = try loss()
            values[index] = original
            parameter.value = try backend.makeTensor(scalars: values, shape: parameter.shape)
            numeric[index] = (plus - minus) / (2 * step)
        }
        let scale = max(numeric.map(abs).max() ?? 0, 1e-4)
        let difference = zip(analytic, numeric).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(
            difference / scale, 1e-6,
            "\(parameter.name): max abs difference \(difference), largest gradient \(scale)", file: file, line: line)
    }
}

final class BottleneckTests: XCTestCase {
    /// A projection block with stride 2 on an odd input, where the 1x1 shortcut and the padded
    /// 3x3 convolution must agree on the output size, then an identity block.
    private func makeBottleneckModel(_ backend: Backend) throws -> Model {
        let network = Sequential {
            BottleneckBlock(filters: 2, strides: 2)
            BottleneckBlock(filters: 2)
            GlobalAveragePool2D()
            Dense(units: 3)
        }
        return try Model(name: "bottleneck", network: network, inputShape: TensorShape(3, 7, 7), backend: backend, seed: 5)
    }

    func testShapesAndProjection() throws {
        let model = try makeBottleneckModel(ReferenceBackend<Float>(threads: 1))
        let blocks = model.network.layers.compactMap { $0 as? BottleneckBlock }
        XCTAssertTrue(blocks[0].hasProjection, "3 input channels differ from 4 * 2 outputs")
        XCTAssertFalse(blocks[1].hasProjection)

        // 7x7 at stride 2 with padding 1: (7 + 2 - 3) / 2 + 1 = 4.
        let rows = model.network.summaryRows(name: "")
        XCTAssertEqual(rows.first { $0.name == "bottleneck_block.add" }?.outputShape, TensorShape(1, 8, 4, 4))

        // Per block: 1x1 in->2, 3x3 2->2, 1x1 2->8, each with BN scale and shift; the first
        // block adds a 1x1 3->8 projection with BN. Then dense 8->3 with bias.
        let first = (3 * 2 + 2 * 2) + (2 * 2 * 9 + 2 * 2) + (2 * 8 + 2 * 8) + (3 * 8 + 2 * 8)
        let second = (8 * 2 + 2 * 2) + (2 * 2 * 9 + 2 * 2) + (2 * 8 + 2 * 8)
        XCTAssertEqual(model.trainableParameterCount, first + second + (8 * 3 + 3))
    }

    func testTapeGradientsMatchFiniteDifferences() throws {
        let backend = ReferenceBackend<Double>(threads: 1)
        let model = try makeBottleneckModel(backend)
        let data = try SyntheticData.uniform(samples: 3, sampleShape: model.inputShape, classes: 3, seed: 13)
        let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: Adam())
        let batch = Array(0..<3)[...]
        let x = try trainer.makeBatch(data, batch)
        let (_, gradients) = try trainer.computeGradients(x, targets: data.targets(batch))

        // Cross-entropy in Double, because `Loss` reads logits as Float.
        let labels = try XCTUnwrap(data.labels)
        try assertTapeGradientsMatchFiniteDifferences(model, gradients: gradients) {
            let logits = try backend.scalars(of: try model.forward(x, training: true))
            var total = 0.0
            for (row, label) in labels.enumerated() {
                let values = logits[row * 3..<row * 3 + 3]
                let maximum = values.max()!
                total += maximum + log(values.map { exp($0 - maximum) }.reduce(0, +)) - values[row * 3 + label]
            }
            return total / Double(labels.count)
        }
    }

    func testResNet50Layout() throws {
        let model = try Architecture.resnet50.makeModel(
            classes: 10, inputShape: TensorShape(3, 224, 224), backend: ReferenceBackend<Float>(threads: 1), seed: 1)
        let blocks = model.network.layers.compactMap { $0 as? BottleneckBlock }
        XCTAssertEqual(blocks.count, 3 + 4 + 6 + 3)
        // The first block of each stage projects: 64 -> 256 channels, then a stride of 2.
        XCTAssertEqual(blocks.filter(\.hasProjection).count, 4)
        XCTAssertEqual(blocks.map(\.strides), [1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1])
        let adds = model.network.summaryRows(name: "").filter { $0.kind == "add+relu" }
        XCTAssertEqual(adds.first?.outputShape, TensorShape(1, 256, 56, 56))
        XCTAssertEqual(adds.last?.outputShape, TensorShape(1, 2048, 7, 7))
    }

    func testSmallInputsUseTheThreeByThreeStem() throws {
        let model = try Architecture.resnet50.makeModel(
            classes: 10, inputShape: TensorShape(3, 32, 32), backend: ReferenceBackend<Float>(threads: 1), seed: 1)
        XCTAssertFalse(model.network.layers.contains { $0 is MaxPool2D }, "no max pool below 64 px")
        let stem = try XCTUnwrap(model.network.layers.first as? Conv2D)
        XCTAssertEqual(stem.kernelSize.height, 3)
        XCTAssertEqual(stem.strides.height, 1)
        let adds = model.network.summaryRows(name: "").filter { $0.kind == "add+relu" }
        XCTAssertEqual(adds.last?.outputShape, TensorShape(1, 2048, 4, 4))
    }
}
