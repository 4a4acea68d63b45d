import Foundation
import XCTest
@testable import ResNetKit

/// Whole-model checks on the reference backend: the tape's gradients against central finite
/// differences of the loss, in Double so that the differences are not lost to rounding.
final class ModelGradientTests: XCTestCase {
    private func makeTinyModel(_ backend: Backend, seed: UInt64 = 7) throws -> Model {
        let network = Sequential {
            Conv2D(filters: 4, kernelSize: 3, padding: .same)
            BatchNorm()
            ReLU()
            MaxPool2D(poolSize: 2)
            ResidualBlock(filters: 4, kernelSize: 3)
            ResidualBlock(filters: 5, kernelSize: 3, strides: 2, batchNorm: true)
            GlobalAveragePool2D()
            Dense(units: 3)
        }
        return try Model(name: "tiny", network: network, inputShape: TensorShape(2, 8, 8), backend: backend, seed: seed)
    }

    func testTapeGradientsMatchFiniteDifferences() throws {
        let backend = ReferenceBackend<Double>(threads: 1)
        let model = try makeTinyModel(backend)
        XCTAssertTrue((model.network.layers[5] as! ResidualBlock).hasProjection)
        XCTAssertFalse((model.network.layers[4] as! ResidualBlock).hasProjection)

        let data = try SyntheticData.uniform(samples: 3, sampleShape: model.inputShape, classes: 3, seed: 11)
        let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: Adam())
        let batch = Array(0..<3)[...]
        let x = try trainer.makeBatch(data, batch)
        let targets = data.targets(batch)

        let (_, gradients) = try trainer.computeGradients(x, targets: targets)
        let parameters = model.trainableParameters
        XCTAssertEqual(gradients.count, parameters.count)

        // The loss in training mode depends on the batch statistics only, not on the running
        // statistics that each forward pass updates, so repeated passes see the same function.
        // It is computed here in Double, because `Loss` reads logits as Float, whose rounding
        // divided by the step below would swamp the differences.
        let labels = try XCTUnwrap(data.labels)
        func loss() throws -> Double {
            let logits = try backend.scalars(of: try model.forward(x, training: true))
            var total = 0.0
            for (row, label) in labels.enumerated() {
                let values = logits[row * 3..<row * 3 + 3]
                let maximum = values.max()!
                let logSumExp = maximum + log(values.map { exp($0 - maximum) }.reduce(0, +))
                total += logSumExp - values[row * 3 + label]
            }
            return total / Double(labels.count)
        }

        // Central differences with h = 1e-5 have truncation error O(h^2) and rounding error
        // about 1e-16 / h in Double; 1e-6 relative to the largest gradient leaves a wide margin
        // while catching any wrong term.
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
            // A bias before batch norm has an exact zero gradient; the floor keeps that case absolute.
            let scale = max(numeric.map(abs).max() ?? 0, 1e-4)
            let difference = zip(analytic, numeric).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(
                difference / scale, 1e-6,
                "\(parameter.name): max abs difference \(difference), largest gradient \(scale)")
        }
    }

    func testTapeSumsGradientOfReusedTensor() throws {
        let backend = ReferenceBackend<Double>(threads: 1)
        let tape = Tape(backend: backend)
        let x = try backend.makeTensor(scalars: [1, -2, 3], shape: TensorShape(1, 3))
        tape.watch(x)
        let context = ForwardContext(backend: backend, tape: tape, training: true)

        // y = x + relu(x); dy/dx = 1 + (x > 0).
        let y = try applyAdd(x, try applyReLU(x, context: context), context: context)
        let seed = try backend.makeTensor(scalars: [1, 1, 1], shape: TensorShape(1, 3))
        let gradients = try tape.gradients(of: y, seed: seed, for: [x])

        XCTAssertEqual(try backend.scalars(of: try XCTUnwrap(gradients[0])), [2, 1, 2])
        XCTAssertEqual(tape.count, 0, "records must be dropped after backward")
    }

    func testSameSeedGivesSameWeights() throws {
        let first = try makeTinyModel(ReferenceBackend<Float>(threads: 1), seed: 3)
        let second = try makeTinyModel(ReferenceBackend<Float>(threads: 1), seed: 3)
        let third = try makeTinyModel(ReferenceBackend<Float>(threads: 1), seed: 4)
        let values = { (model: Model) in try model.parameters.flatMap { try model.backend.values(of: $0.value) } }
        XCTAssertEqual(try values(first), try values(second))
        XCTAssertNotEqual(try values(first), try values(third))
    }

    func testGlorotLimitsMatchKeras() throws {
        let model = try makeTinyModel(ReferenceBackend<Float>(threads: 1))
        let kernel = try XCTUnwrap(model.parameters.first { $0.name == "conv2d.kernel" })
        // Keras: fan_in = 2 * 3 * 3, fan_out = 4 * 3 * 3, limit = sqrt(6 / (fan_in + fan_out)).
        let limit = Float((6.0 / Double(18 + 36)).squareRoot())
        let values = try model.backend.values(of: kernel.value)
        XCTAssertLessThanOrEqual(values.map(abs).max() ?? 0, limit)
        XCTAssertGreaterThan(values.map(abs).max() ?? 0, limit * 0.8)
        let bias = try XCTUnwrap(model.parameters.first { $0.name == "conv2d.bias" })
        XCTAssertEqual(try model.backend.values(of: bias.value), [0, 0, 0, 0])
    }

    func testTutorialModelShapesAndFlops() throws {
        let backend = ReferenceBackend<Float>(threads: 1)
        let model = try Architecture.tutorial.makeModel(
            classes: 10, inputShape: TensorShape(3, 224, 224), backend: backend, seed: 1)
        XCTAssertEqual(model.outputShape, TensorShape(10))
        // conv 7x7 3->64 with bias, BN (4 x 64), three blocks of two 3x3 64->64 convs with bias,
        // dense 64->10 with bias.
        let expected = (64 * 3 * 49 + 64) + 4 * 64 + 6 * (64 * 64 * 9 + 64) + (10 * 64 + 10)
        XCTAssertEqual(model.parameterCount, expected)
        XCTAssertEqual(model.trainableParameterCount, expected - 2 * 64)
        // Multiply-adds: the stem at 224x224 and six block convolutions at 74x74, then dense.
        let macs = 64 * 3 * 49 * 224 * 224 + 6 * 64 * 64 * 9 * 74 * 74 + 10 * 64
        XCTAssertEqual(model.forwardFlops, 2 * macs)
    }

    func testTooSmallInputIsRejected() throws {
        let backend = ReferenceBackend<Float>(threads: 1)
        XCTAssertThrowsError(
            try Architecture.tutorial.makeModel(classes: 10, inputShape: TensorShape(3, 2, 2), backend: backend, seed: 1)
        ) { error in
            XCTAssertTrue("\(error)".contains("max_pooling2d"), "\(error)")
        }
        XCTAssertThrowsError(
            try Architecture.tutorial.makeModel(classes: 1, inputShape: TensorShape(3, 32, 32), backend: backend, seed: 1))
    }

    func testBatchNormRejectsOneValuePerChannel() throws {
        let backend = ReferenceBackend<Float>(threads: 1)
        let network = Sequential {
            BatchNorm()
        }
        let model = try Model(name: "bn", network: network, inputShape: TensorShape(2, 1, 1), backend: backend, seed: 1)
        let x = try backend.makeTensor([1, 2], shape: TensorShape(1, 2, 1, 1))
        XCTAssertThrowsError(try model.forward(x, training: true)) { error in
            XCTAssertTrue("\(error)".contains("one value per channel"), "\(error)")
        }
        XCTAssertNoThrow(try model.forward(x, training: false))
    }
}

final class ArchitectureTests: XCTestCase {
    /// Trainable parameter counts published for torchvision's models at 1000 classes.
    func testImageNetParameterCountsMatchTorchvision() throws {
        let backend = ReferenceBackend<Float>(threads: 1)
        let expected: [(Architecture, Int)] = [
            (.resnet18, 11_689_512), (.resnet34, 21_797_672), (.resnet50, 25_557_032), (.resnet101, 44_549_160),
        ]
        for (architecture, count) in expected {
            let model = try architecture.makeModel(
                classes: 1000, inputShape: TensorShape(3, 224, 224), backend: backend, seed: 1)
            XCTAssertEqual(model.trainableParameterCount, count, architecture.rawValue)
            XCTAssertEqual(model.outputShape, TensorShape(1000))
        }
    }

    func testCifarModelsHaveProjectionsAndShrink() throws {
        let backend = ReferenceBackend<Float>(threads: 1)
        let model = try Architecture.resnet20.makeModel(
            classes: 10, inputShape: TensorShape(3, 32, 32), backend: backend, seed: 1)
        let blocks = model.network.layers.compactMap { $0 as? ResidualBlock }
        XCTAssertEqual(blocks.count, 9)
        XCTAssertEqual(blocks.filter(\.hasProjection).count, 2)
        // 3x3 convolutions: 16 in the stem, then 2 per block; plus 2 projections and the dense.
        let rows = model.network.summaryRows(name: "")
        XCTAssertEqual(rows.filter { $0.kind == "conv2d" }.count, 1 + 18 + 2)
        XCTAssertEqual(rows.last { $0.kind == "add+relu" }?.outputShape, TensorShape(1, 64, 8, 8))
    }
}
