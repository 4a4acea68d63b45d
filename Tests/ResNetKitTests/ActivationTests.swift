import ResNetKit
import XCTest

final class ActivationTests: XCTestCase {
    func testReluGradientMatchesFiniteDifferences() throws {
        let backend = ReferenceBackend<Double>()
        var generator = SeededGenerator(seed: 6)
        for shape in [TensorShape(1, 3, 5, 5), TensorShape(3, 17, 2, 3), TensorShape(3, 10)] {
            // Inputs keep at least 0.01 away from the kink at 0, which a step of 1e-6 cannot cross.
            let x = randomValues(shape.elementCount, using: &generator).map { $0 < 0 ? $0 - 0.01 : $0 + 0.01 }
            let dy = randomValues(shape.elementCount, using: &generator)

            func loss(x: [Double]) throws -> Double {
                let y = try backend.relu(backend.makeTensor(scalars: x, shape: shape))
                return dot(try backend.scalars(of: y), dy)
            }

            let y = try backend.relu(backend.makeTensor(scalars: x, shape: shape))
            let dx = try backend.reluBackward(backend.makeTensor(scalars: dy, shape: shape), y: y)
            try checkGradient("dx", analytic: backend.scalars(of: dx), at: x, context: "relu \(shape)", loss: loss)
        }
    }

    func testReluByHand() throws {
        let backend = ReferenceBackend<Double>()
        let y = try backend.relu(backend.tensor([-2, 0, 3, -0.5], 1, 4))
        XCTAssertEqual(try backend.scalars(of: y), [0, 0, 3, 0])

        let dx = try backend.reluBackward(backend.tensor([10, 20, 30, 40], 1, 4), y: y)
        XCTAssertEqual(try backend.scalars(of: dx), [0, 0, 30, 0])

        XCTAssertThrowsError(try backend.reluBackward(backend.tensor([1, 2], 1, 2), y: y)) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("reluBackward"), message)
            XCTAssertTrue(message.contains("1x2"), message)
        }
    }
}
