import Foundation
import XCTest
@testable import ResNetKit

final class RegressionTests: XCTestCase {
    func testRegressionDataFollowsTheSum() throws {
        let data = try SyntheticData.regression(samples: 2000, seed: 4)
        let again = try SyntheticData.regression(samples: 2000, seed: 4)
        XCTAssertEqual(data.inputs, again.inputs)
        XCTAssertEqual(data.values, again.values)
        XCTAssertEqual(data.sampleShape, TensorShape(2))
        XCTAssertNil(data.classCount)
        XCTAssertGreaterThanOrEqual(data.inputs.min() ?? -2, -1)
        XCTAssertLessThan(data.inputs.max() ?? 2, 1)

        // The noise e = y - x1 - x2 has mean 0 and standard deviation 0.1. Over 2000 samples the
        // sample standard deviation lies within 0.1 * (1 +- 3 / sqrt(2 * 2000)) about 99.7% of
        // the time, and the mean within 3 * 0.1 / sqrt(2000).
        let values = try XCTUnwrap(data.values)
        let noise = (0..<data.count).map { Double(values[$0]) - Double(data.inputs[2 * $0]) - Double(data.inputs[2 * $0 + 1]) }
        let mean = noise.reduce(0, +) / Double(noise.count)
        let deviation = (noise.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(noise.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.0068)
        XCTAssertEqual(deviation, 0.1, accuracy: 0.0048)

        let first = try SyntheticData.regression(samples: 10, seed: 4)
        XCTAssertEqual(first.inputs, Array(data.inputs.prefix(20)), "one stream per sample")
    }

    func testR2ByHand() {
        // Targets 1, 2, 3, 4 have mean 2.5 and SST = 2.25 + 0.25 + 0.25 + 2.25 = 5; predictions
        // 1, 2, 3, 5 miss by 1 once, so SSE = 1 and R² = 1 - 1/5 = 0.8.
        var whole = RegressionTotals()
        whole.add(predictions: [1, 2, 3, 5], targets: [1, 2, 3, 4], outputs: 1)
        XCTAssertEqual(whole.totalSumOfSquares, 5, accuracy: 1e-12)
        XCTAssertEqual(whole.r2 ?? .nan, 0.8, accuracy: 1e-12)

        var split = RegressionTotals()
        split.add(predictions: [1, 2], targets: [1, 2], outputs: 1)
        split.add(targets: [3, 4], outputs: 1, sumOfSquaredErrors: 1)
        XCTAssertEqual(split.r2 ?? .nan, 0.8, accuracy: 1e-12)

        // Two outputs: columns (0, 2) and (10, 14) have SST 2 + 8 = 10; SSE = 0.25 + 0.25 + 4.
        var pooled = RegressionTotals()
        pooled.add(predictions: [0.5, 10, 2, 12], targets: [0, 10, 2, 14], outputs: 2)
        XCTAssertEqual(pooled.r2 ?? .nan, 1 - 4.25 / 10, accuracy: 1e-12)

        XCTAssertNil(RegressionTotals().r2)
        var constant = RegressionTotals()
        constant.add(predictions: [1, 1], targets: [3, 3], outputs: 1)
        XCTAssertTrue(constant.r2?.isNaN ?? false, "R² is undefined when SST is 0")
    }

    func testDenseResidualBlockGradients() throws {
        let backend = ReferenceBackend<Double>(threads: 1)
        let network = Sequential {
            Dense(units: 4)
            ReLU()
            DenseResidualBlock(units: 4)
            Dense(units: 1)
        }
        let model = try Model(name: "mlp", network: network, inputShape: TensorShape(2), backend: backend, seed: 9)
        let data = try SyntheticData.regression(samples: 5, seed: 2)
        let trainer = Trainer(model: model, loss: .meanSquaredError, optimizer: Adam())
        let batch = Array(0..<5)[...]
        let x = try trainer.makeBatch(data, batch)
        let (_, gradients) = try trainer.computeGradients(x, targets: data.targets(batch))

        let targets = try XCTUnwrap(data.values).map(Double.init)
        try assertTapeGradientsMatchFiniteDifferences(model, gradients: gradients) {
            let predictions = try backend.scalars(of: try model.forward(x, training: true))
            return zip(predictions, targets).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(targets.count)
        }
    }

    func testDenseResidualBlockRejectsOtherWidth() {
        let network = Sequential { DenseResidualBlock(units: 4) }
        XCTAssertThrowsError(
            try Model(name: "mlp", network: network, inputShape: TensorShape(2), backend: ReferenceBackend<Float>(threads: 1), seed: 1)
        ) { error in
            XCTAssertTrue("\(error)".contains("expected 4 input features"), "\(error)")
        }
    }

    func testResidualMLPReachesTheNoiseFloor() throws {
        let train = try SyntheticData.regression(samples: 1000, seed: 1)
        let validation = try SyntheticData.regression(samples: 250, seed: 2)
        let model = try ResidualMLP().makeModel(
            features: 2, outputs: 1, backend: ReferenceBackend<Float>(threads: 1), seed: 1)
        let trainer = Trainer(model: model, loss: .meanSquaredError, optimizer: Adam(learningRate: 0.003))
        let history = try trainer.fit(train, validation: validation, epochs: 10, batchSize: 32, seed: 1)
        let last = try XCTUnwrap(history.last)
        let validationLoss = try XCTUnwrap(last.validationLoss)

        // Within 20% of the noise floor, the noise variance 0.1² = 0.01. The message adds the
        // floor of these 250 samples: the MSE of predicting x1 + x2 exactly.
        let targets = try XCTUnwrap(validation.values).map(Double.init)
        let inputs = validation.inputs.map(Double.init)
        let sampleFloor = (0..<validation.count).map { index in
            let error = targets[index] - inputs[2 * index] - inputs[2 * index + 1]
            return error * error
        }.reduce(0, +) / Double(validation.count)
        XCTAssertLessThan(validationLoss, 0.012, "validation MSE after 10 epochs; this sample's noise floor is \(sampleFloor)")

        // R² computed here from the targets' own variance: 1 - MSE / Var(y).
        let mean = targets.reduce(0, +) / Double(targets.count)
        let variance = targets.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(targets.count)
        XCTAssertEqual(try XCTUnwrap(last.validationR2), 1 - validationLoss / variance, accuracy: 1e-9)
        XCTAssertNil(last.validationAccuracy)
        XCTAssertNil(last.accuracy)
        XCTAssertGreaterThan(try XCTUnwrap(last.r2), 0.95)
    }
}
