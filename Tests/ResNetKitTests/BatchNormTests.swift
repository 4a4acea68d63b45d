import ResNetKit
import XCTest

final class BatchNormTests: XCTestCase {
    func testTrainingGradientsMatchFiniteDifferences() throws {
        let backend = ReferenceBackend<Double>(threads: 2)
        var generator = SeededGenerator(seed: 4)
        let shapes = [
            TensorShape(3, 3, 4, 5), TensorShape(1, 10, 3, 3), TensorShape(3, 17, 2, 2), TensorShape(1, 1, 7, 7),
            TensorShape(2, 1, 1, 1), TensorShape(5, 3),
        ]
        let epsilon: Float = 1e-3
        for shape in shapes {
            let channels = shape[1]
            let channelShape = TensorShape(channels)
            let x = randomValues(shape.elementCount, in: -2...2, using: &generator)
            let scale = randomValues(channels, in: 0.5...1.5, using: &generator)
            let shift = randomValues(channels, using: &generator)
            let dy = randomValues(shape.elementCount, using: &generator)

            // The loss is Σ y * dy, so its gradient with respect to y is dy. The batch statistics
            // move with x, so the check covers the paths through the mean and the variance.
            func loss(x: [Double], scale: [Double], shift: [Double]) throws -> Double {
                let output = try backend.batchNormTraining(
                    backend.makeTensor(scalars: x, shape: shape),
                    scale: backend.makeTensor(scalars: scale, shape: channelShape),
                    shift: backend.makeTensor(scalars: shift, shape: channelShape), epsilon: epsilon)
                return dot(try backend.scalars(of: output.y), dy)
            }

            let xTensor = try backend.makeTensor(scalars: x, shape: shape)
            let scaleTensor = try backend.makeTensor(scalars: scale, shape: channelShape)
            let forward = try backend.batchNormTraining(
                xTensor, scale: scaleTensor, shift: backend.makeTensor(scalars: shift, shape: channelShape),
                epsilon: epsilon)
            let gradients = try backend.batchNormBackward(
                backend.makeTensor(scalars: dy, shape: shape), x: xTensor, scale: scaleTensor, mean: forward.mean,
                variance: forward.variance, epsilon: epsilon)
            let context = "batchNormTraining \(shape)"

            try checkGradient("dx", analytic: backend.scalars(of: gradients.dx), at: x, context: context) {
                try loss(x: $0, scale: scale, shift: shift)
            }
            try checkGradient("dscale", analytic: backend.scalars(of: gradients.dscale), at: scale, context: context) {
                try loss(x: x, scale: $0, shift: shift)
            }
            try checkGradient("dshift", analytic: backend.scalars(of: gradients.dshift), at: shift, context: context) {
                try loss(x: x, scale: scale, shift: $0)
            }
        }
    }

    /// Channel 0 contains 1 and 3, with mean 2 and biased variance 1. Channel 1 contains 2 and 6,
    /// with mean 4 and biased variance 4. The unbiased variances would be 2 and 8.
    func testTrainingForwardByHand() throws {
        let backend = ReferenceBackend<Double>()
        let x = try backend.tensor([1, 3, 2, 6], 1, 2, 1, 2)
        let output = try backend.batchNormTraining(
            x, scale: backend.tensor([2, 0.5], 2), shift: backend.tensor([1, -1], 2), epsilon: 1e-3)

        let epsilon = Double(Float(1e-3))
        let deviation0 = (1 + epsilon).squareRoot()
        let deviation1 = (4 + epsilon).squareRoot()
        let expected = [
            2 * (-1 / deviation0) + 1, 2 * (1 / deviation0) + 1,
            0.5 * (-2 / deviation1) - 1, 0.5 * (2 / deviation1) - 1,
        ]
        let y = try backend.scalars(of: output.y)
        XCTAssertLessThanOrEqual(maxAbsDifference(y, expected), 1e-12, "y \(y), expected \(expected)")
        XCTAssertEqual(try backend.scalars(of: output.mean), [2, 4])
        XCTAssertEqual(try backend.scalars(of: output.variance), [1, 4])
    }

    func testInferenceForwardByHand() throws {
        let backend = ReferenceBackend<Double>()
        // Channel 0: (x - 1) / sqrt(4) * 2 + 1. Channel 1: (x - 2) / sqrt(9) * 0.5 - 1.
        let y = try backend.batchNormInference(
            backend.tensor([1, 3, 2, 6], 1, 2, 1, 2), scale: backend.tensor([2, 0.5], 2),
            shift: backend.tensor([1, -1], 2), mean: backend.tensor([1, 2], 2), variance: backend.tensor([4, 9], 2),
            epsilon: 0)
        let expected = [1, 3, -1, 0.5 * 4 / 3 - 1]
        let values = try backend.scalars(of: y)
        XCTAssertLessThanOrEqual(maxAbsDifference(values, expected), 1e-15, "y \(values), expected \(expected)")
    }

    func testInferenceWithBatchStatisticsMatchesTraining() throws {
        let backend = ReferenceBackend<Double>()
        var generator = SeededGenerator(seed: 5)
        let shape = TensorShape(3, 10, 5, 4)
        let x = try backend.makeTensor(scalars: randomValues(shape.elementCount, using: &generator), shape: shape)
        let scale = try backend.makeTensor(scalars: randomValues(10, using: &generator), shape: TensorShape(10))
        let shift = try backend.makeTensor(scalars: randomValues(10, using: &generator), shape: TensorShape(10))

        let training = try backend.batchNormTraining(x, scale: scale, shift: shift, epsilon: 1e-3)
        let inference = try backend.batchNormInference(
            x, scale: scale, shift: shift, mean: training.mean, variance: training.variance, epsilon: 1e-3)
        let difference = maxAbsDifference(try backend.scalars(of: inference), try backend.scalars(of: training.y))
        XCTAssertLessThanOrEqual(difference, 1e-12, "y max abs difference \(difference)")
    }

    func testOneValuePerChannelThrows() throws {
        let backend = ReferenceBackend<Double>()
        let x = try backend.tensor([1, 2, 3], 1, 3, 1, 1)
        let scale = try backend.tensor([1, 1, 1], 3)
        let shift = try backend.tensor([0, 0, 0], 3)
        XCTAssertThrowsError(try backend.batchNormTraining(x, scale: scale, shift: shift, epsilon: 1e-3)) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("batchNormTraining"), message)
            XCTAssertTrue(message.contains("1x3x1x1"), message)
            XCTAssertTrue(message.contains("larger batch"), message)
            XCTAssertTrue(message.contains("inference"), message)
        }
        XCTAssertNoThrow(
            try backend.batchNormInference(
                x, scale: scale, shift: shift, mean: shift, variance: scale, epsilon: 1e-3))
    }

    func testMismatchedShapesThrow() throws {
        let backend = ReferenceBackend<Double>()
        let x = try backend.tensor([Double](repeating: 1, count: 12), 2, 3, 1, 2)
        let scale = try backend.tensor([1, 1], 2)
        let shift = try backend.tensor([0, 0, 0], 3)
        XCTAssertThrowsError(try backend.batchNormTraining(x, scale: scale, shift: shift, epsilon: 1e-3)) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("scale"), message)
            XCTAssertTrue(message.contains("expected 3"), message)
        }
        XCTAssertThrowsError(try backend.batchNormTraining(x, scale: shift, shift: shift, epsilon: -1))

        let wrongDy = try backend.tensor([Double](repeating: 1, count: 6), 1, 3, 1, 2)
        XCTAssertThrowsError(
            try backend.batchNormBackward(
                wrongDy, x: x, scale: shift, mean: shift, variance: shift, epsilon: 1e-3))
    }
}
