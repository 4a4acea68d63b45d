import Foundation
import XCTest
import ResNetKit

final class LossTests: XCTestCase {
    func testCrossEntropyByHand() throws {
        // Row 0: logits (0, ln 3), label 1: p = (1/4, 3/4), loss -ln(3/4).
        // Row 1: logits (2, 2), label 0: p = (1/2, 1/2), loss ln 2.
        let logits: [Float] = [0, Float(log(3.0)), 2, 2]
        let output = try Loss.crossEntropy.evaluate(logits: logits, outputs: 2, targets: .classes([1, 0]))
        XCTAssertEqual(output.loss, (-log(0.75) + log(2.0)) / 2, accuracy: 1e-6)
        XCTAssertEqual(output.correct, 2, "row 1 ties, and the first maximum, at the label, is taken")
        let expected: [Float] = [0.25 / 2, -0.25 / 2, -0.5 / 2, 0.5 / 2]
        for (value, target) in zip(output.gradient, expected) {
            XCTAssertEqual(value, target, accuracy: 1e-6)
        }
    }

    func testCrossEntropyFiniteForHugeLogits() throws {
        let logits: [Float] = [1000, -1000, 0, -1000, 1000, 999]
        let output = try Loss.crossEntropy.evaluate(logits: logits, outputs: 3, targets: .classes([1, 2]))
        // Row 0: loss ~ 2000. Row 1: log(1 + e^-1) + 1.
        XCTAssertTrue(output.loss.isFinite)
        XCTAssertEqual(output.loss, (2000 + (1 + log(1 + exp(-1.0)))) / 2, accuracy: 1e-3)
        XCTAssertTrue(output.gradient.allSatisfy(\.isFinite))
        XCTAssertEqual(output.gradient[0], 0.5, accuracy: 1e-6)
        XCTAssertEqual(output.gradient[1], -0.5, accuracy: 1e-6)
    }

    func testCrossEntropyRejectsLabelOutOfRange() {
        XCTAssertThrowsError(try Loss.crossEntropy.evaluate(logits: [0, 0], outputs: 2, targets: .classes([2])))
    }

    func testMeanSquaredErrorByHand() throws {
        let output = try Loss.meanSquaredError.evaluate(
            logits: [1, 2, 3, 4], outputs: 1, targets: .values([1, 1, 1, 1]))
        XCTAssertEqual(output.loss, (0 + 1 + 4 + 9) / 4, accuracy: 1e-9)
        XCTAssertEqual(output.gradient, [0, 0.5, 1, 1.5])
    }
}

final class AdamTests: XCTestCase {
    func testFirstStepsFollowKerasRule() throws {
        let backend = ReferenceBackend<Double>(threads: 1)
        let parameter = Parameter(
            name: "w", role: .kernel, shape: TensorShape(2),
            value: try backend.makeTensor(scalars: [1, -1], shape: TensorShape(2)))
        let adam = Adam()
        let gradients: [[Double]] = [[0.5, -0.1], [0.25, 0.3]]

        var w = [1.0, -1.0]
        var m = [0.0, 0.0]
        var v = [0.0, 0.0]
        for (t, g) in gradients.enumerated() {
            try adam.step([parameter], gradients: [try backend.makeTensor(scalars: g, shape: TensorShape(2))], backend: backend)
            let step = Double(t + 1)
            for i in 0..<2 {
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
                let rate = 0.001 * (1 - pow(0.999, step)).squareRoot() / (1 - pow(0.9, step))
                w[i] -= rate * m[i] / (v[i].squareRoot() + 1e-7)
            }
            let actual = try backend.scalars(of: parameter.value)
            for i in 0..<2 {
                XCTAssertEqual(actual[i], w[i], accuracy: 1e-12, "step \(t + 1), element \(i)")
            }
        }
        // The first step moves each weight by almost exactly the learning rate.
        XCTAssertEqual(adam.stepCount, 2)
    }
}

final class DataTests: XCTestCase {
    func testUniformDataIsReproducibleAndInRange() throws {
        let shape = TensorShape(3, 5, 5)
        let first = try SyntheticData.uniform(samples: 20, sampleShape: shape, classes: 4, seed: 9)
        let second = try SyntheticData.uniform(samples: 20, sampleShape: shape, classes: 4, seed: 9)
        let other = try SyntheticData.uniform(samples: 20, sampleShape: shape, classes: 4, seed: 10)
        XCTAssertEqual(first.inputs, second.inputs)
        XCTAssertEqual(first.labels, second.labels)
        XCTAssertNotEqual(first.inputs, other.inputs)
        XCTAssertTrue(first.inputs.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertTrue(first.labels!.allSatisfy { (0..<4).contains($0) })
        let mean = first.inputs.reduce(0, +) / Float(first.inputs.count)
        XCTAssertEqual(mean, 0.5, accuracy: 0.05)
    }

    func testDatasetRejectsMismatchedLabels() {
        XCTAssertThrowsError(
            try InMemoryDataset(sampleShape: TensorShape(1, 2, 2), inputs: [Float](repeating: 0, count: 8), labels: [0], classCount: 2))
        XCTAssertThrowsError(
            try InMemoryDataset(sampleShape: TensorShape(1, 1, 1), inputs: [0, 0], labels: [0, 5], classCount: 2))
    }
}

final class TrainingTests: XCTestCase {
    func testSmallResidualNetworkOverfits() throws {
        let backend = ReferenceBackend<Float>(threads: 2)
        let shape = TensorShape(1, 8, 8)
        let data = try SyntheticData.gratings(samples: 64, sampleShape: shape, classes: 4, noise: 0.1, seed: 5)
        let network = Sequential {
            Conv2D(filters: 8, kernelSize: 3, padding: .same)
            BatchNorm()
            ReLU()
            ResidualBlock(filters: 8, kernelSize: 3)
            GlobalAveragePool2D()
            Dense(units: 4)
        }
        let model = try Model(name: "small", network: network, inputShape: shape, backend: backend, seed: 2)
        let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: Adam(learningRate: 0.01))
        let history = try trainer.fit(data, validation: nil, epochs: 40, batchSize: 16, seed: 1)
        let last = try XCTUnwrap(history.last)
        XCTAssertLessThan(last.loss, history[0].loss)
        // Training-mode accuracy, as Keras reports it: batch statistics, counted per sample.
        XCTAssertEqual(last.accuracy ?? 0, 1, "training accuracy after 40 epochs, final loss \(last.loss)")
    }
}
