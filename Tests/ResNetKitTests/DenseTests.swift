import ResNetKit
import XCTest

final class DenseTests: XCTestCase {
    func testGradientsMatchFiniteDifferences() throws {
        let backend = ReferenceBackend<Double>(threads: 2)
        var generator = SeededGenerator(seed: 3)
        let cases: [(batch: Int, inputs: Int, outputs: Int, hasBias: Bool)] = [
            (1, 1, 3, true), (3, 3, 10, false), (1, 17, 1, false), (3, 10, 17, true), (3, 17, 10, true),
        ]
        for (batch, inputs, outputs, hasBias) in cases {
            let xShape = TensorShape(batch, inputs)
            let weightShape = TensorShape(outputs, inputs)
            let x = randomValues(batch * inputs, using: &generator)
            let weights = randomValues(outputs * inputs, using: &generator)
            let bias = randomValues(outputs, using: &generator)
            let dy = randomValues(batch * outputs, using: &generator)

            // The loss is Σ y * dy, so its gradient with respect to y is dy.
            func loss(x: [Double], weights: [Double], bias: [Double]) throws -> Double {
                let y = try backend.dense(
                    backend.makeTensor(scalars: x, shape: xShape),
                    weights: backend.makeTensor(scalars: weights, shape: weightShape),
                    bias: hasBias ? backend.makeTensor(scalars: bias, shape: TensorShape(outputs)) : nil)
                return dot(try backend.scalars(of: y), dy)
            }

            let gradients = try backend.denseBackward(
                backend.makeTensor(scalars: dy, shape: TensorShape(batch, outputs)),
                x: backend.makeTensor(scalars: x, shape: xShape),
                weights: backend.makeTensor(scalars: weights, shape: weightShape),
                hasBias: hasBias, computeInputGradient: true)
            let context = "dense N=\(batch) I=\(inputs) O=\(outputs) bias \(hasBias)"

            let dx = try XCTUnwrap(gradients.dx, context)
            try checkGradient("dx", analytic: backend.scalars(of: dx), at: x, context: context) {
                try loss(x: $0, weights: weights, bias: bias)
            }
            try checkGradient("dw", analytic: backend.scalars(of: gradients.dw), at: weights, context: context) {
                try loss(x: x, weights: $0, bias: bias)
            }
            if hasBias {
                let db = try XCTUnwrap(gradients.db, context)
                try checkGradient("db", analytic: backend.scalars(of: db), at: bias, context: context) {
                    try loss(x: x, weights: weights, bias: $0)
                }
            } else {
                XCTAssertNil(gradients.db, "\(context): db without a bias")
            }
        }
    }

    func testForwardByHand() throws {
        let backend = ReferenceBackend<Double>()
        // x = [[1, 2], [3, 4]], weights = [[1, 0], [1, -1], [2, 1]], bias = [0, 1, -1].
        let y = try backend.dense(
            backend.tensor([1, 2, 3, 4], 2, 2), weights: backend.tensor([1, 0, 1, -1, 2, 1], 3, 2),
            bias: backend.tensor([0, 1, -1], 3))
        XCTAssertEqual(y.shape, TensorShape(2, 3))
        XCTAssertEqual(try backend.scalars(of: y), [1, 0, 3, 3, 0, 9])
    }

    func testMismatchedShapesThrow() throws {
        let backend = ReferenceBackend<Double>()
        let x = try backend.tensor([1, 2, 3, 4, 5, 6], 2, 3)
        let weights = try backend.tensor([1, 2, 3, 4], 2, 2)
        XCTAssertThrowsError(try backend.dense(x, weights: weights, bias: nil)) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("dense"), message)
            XCTAssertTrue(message.contains("2x3"), message)
            XCTAssertTrue(message.contains("2x2"), message)
        }

        let matchingWeights = try backend.tensor([1, 2, 3, 4, 5, 6], 2, 3)
        let wrongDy = try backend.tensor([1, 2, 3], 1, 3)
        XCTAssertThrowsError(
            try backend.denseBackward(
                wrongDy, x: x, weights: matchingWeights, hasBias: true, computeInputGradient: true))
        let image = try backend.tensor([Double](repeating: 0, count: 12), 1, 3, 2, 2)
        XCTAssertThrowsError(try backend.dense(image, weights: matchingWeights, bias: nil))
    }
}
