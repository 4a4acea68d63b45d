import ResNetKit
import XCTest

final class PoolingTests: XCTestCase {
    func testMaxPoolGradientMatchesFiniteDifferences() throws {
        let backend = ReferenceBackend<Double>(threads: 2)
        var generator = SeededGenerator(seed: 7)
        // Windows that overlap (stride below window), that meet the border through padding, and
        // that tile the input exactly.
        let cases: [(batch: Int, channels: Int, height: Int, width: Int, window: Int, stride: Int, padding: Padding)] = [
            (1, 1, 5, 5, 3, 2, .same),
            (3, 3, 4, 6, 2, 2, .valid),
            (1, 10, 5, 4, 3, 1, .explicit(top: 1, bottom: 1, left: 1, right: 1)),
            (3, 17, 3, 3, 2, 1, .same),
            (3, 3, 8, 7, 3, 2, .same),
        ]
        for testCase in cases {
            let geometry = try PoolGeometry(
                channels: testCase.channels, inputHeight: testCase.height, inputWidth: testCase.width,
                window: (testCase.window, testCase.window), stride: (testCase.stride, testCase.stride),
                padding: testCase.padding)
            let xShape = geometry.inputShape(batch: testCase.batch)
            let outputShape = geometry.outputShape(batch: testCase.batch)
            let x = distinctValues(xShape.elementCount, using: &generator)
            let dy = randomValues(outputShape.elementCount, using: &generator)

            func loss(x: [Double]) throws -> Double {
                let output = try backend.maxPool(
                    backend.makeTensor(scalars: x, shape: xShape), geometry: geometry, training: false)
                return dot(try backend.scalars(of: output.y), dy)
            }

            let xTensor = try backend.makeTensor(scalars: x, shape: xShape)
            let dyTensor = try backend.makeTensor(scalars: dy, shape: outputShape)
            let context = "maxPool N=\(testCase.batch) \(geometry)"
            for training in [true, false] {
                let forward = try backend.maxPool(xTensor, geometry: geometry, training: training)
                XCTAssertEqual(forward.indices == nil, !training, "\(context): indices in training \(training)")
                let dx = try backend.maxPoolBackward(dyTensor, x: xTensor, forward: forward, geometry: geometry)
                try checkGradient(
                    "dx", analytic: backend.scalars(of: dx), at: x, context: "\(context) training \(training)",
                    sampleCount: 32, loss: loss)
            }
        }
    }

    /// With 'same' padding, window 3 and stride 2, a 4x4 input gets one padded row and column at
    /// the bottom and right. All inputs are negative, so a padded cell counted as zero would win.
    func testMaxPoolPaddingNeverWins() throws {
        let backend = ReferenceBackend<Double>()
        let geometry = try PoolGeometry(
            channels: 1, inputHeight: 4, inputWidth: 4, window: (3, 3), stride: (2, 2), padding: .same)
        XCTAssertEqual([geometry.padTop, geometry.padBottom, geometry.padLeft, geometry.padRight], [0, 1, 0, 1])

        // x[h][w] = -(4h + w + 1); the max of a window is its top-left cell.
        let x = try backend.tensor((1...16).map { -Double($0) }, 1, 1, 4, 4)
        let output = try backend.maxPool(x, geometry: geometry, training: true)
        XCTAssertEqual(try backend.scalars(of: output.y), [-1, -3, -9, -11])
    }

    /// Two 2x2 windows with stride 1 over a 2x3 input share the middle column, and 8 wins both,
    /// so its gradient is the sum of both output gradients.
    func testMaxPoolBackwardSumsOverlappingWindows() throws {
        let backend = ReferenceBackend<Double>()
        let geometry = try PoolGeometry(
            channels: 1, inputHeight: 2, inputWidth: 3, window: (2, 2), stride: (1, 1), padding: .valid)
        let x = try backend.tensor([1, 8, 2, 3, 4, 5], 1, 1, 2, 3)
        let dy = try backend.tensor([0.5, 0.25], 1, 1, 1, 2)
        for training in [true, false] {
            let forward = try backend.maxPool(x, geometry: geometry, training: training)
            XCTAssertEqual(try backend.scalars(of: forward.y), [8, 8])
            let dx = try backend.maxPoolBackward(dy, x: x, forward: forward, geometry: geometry)
            XCTAssertEqual(try backend.scalars(of: dx), [0, 0.75, 0, 0, 0, 0], "training \(training)")
        }
    }

    func testMaxPoolMismatchedShapesThrow() throws {
        let backend = ReferenceBackend<Double>()
        let geometry = try PoolGeometry(
            channels: 2, inputHeight: 4, inputWidth: 4, window: (2, 2), stride: (2, 2), padding: .valid)
        let wrongX = try backend.tensor([Double](repeating: 0, count: 16), 1, 1, 4, 4)
        XCTAssertThrowsError(try backend.maxPool(wrongX, geometry: geometry, training: true)) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("maxPool"), message)
            XCTAssertTrue(message.contains("1x1x4x4"), message)
        }

        let x = try backend.tensor([Double](repeating: 0, count: 32), 1, 2, 4, 4)
        let forward = try backend.maxPool(x, geometry: geometry, training: true)
        let wrongDy = try backend.tensor([Double](repeating: 0, count: 4), 1, 1, 2, 2)
        XCTAssertThrowsError(try backend.maxPoolBackward(wrongDy, x: x, forward: forward, geometry: geometry))

        let dy = try backend.tensor([Double](repeating: 0, count: 8), 1, 2, 2, 2)
        let foreignIndices = MaxPoolOutput(y: forward.y, indices: dy)
        XCTAssertThrowsError(try backend.maxPoolBackward(dy, x: x, forward: foreignIndices, geometry: geometry))
    }

    func testGlobalAveragePoolGradientMatchesFiniteDifferences() throws {
        let backend = ReferenceBackend<Double>()
        var generator = SeededGenerator(seed: 8)
        for shape in [TensorShape(1, 3, 5, 5), TensorShape(3, 17, 2, 3), TensorShape(3, 1, 1, 1)] {
            let outputShape = TensorShape(shape[0], shape[1])
            let x = randomValues(shape.elementCount, using: &generator)
            let dy = randomValues(outputShape.elementCount, using: &generator)

            func loss(x: [Double]) throws -> Double {
                let y = try backend.globalAveragePool(backend.makeTensor(scalars: x, shape: shape))
                return dot(try backend.scalars(of: y), dy)
            }

            let dx = try backend.globalAveragePoolBackward(
                backend.makeTensor(scalars: dy, shape: outputShape), inputShape: shape)
            XCTAssertEqual(dx.shape, shape)
            try checkGradient(
                "dx", analytic: backend.scalars(of: dx), at: x, context: "globalAveragePool \(shape)", loss: loss)
        }
    }

    func testGlobalAveragePoolByHand() throws {
        let backend = ReferenceBackend<Double>()
        let y = try backend.globalAveragePool(backend.tensor([1, 2, 3, 6, 10, 20, 30, 40], 1, 2, 2, 2))
        XCTAssertEqual(y.shape, TensorShape(1, 2))
        XCTAssertEqual(try backend.scalars(of: y), [3, 25])

        XCTAssertThrowsError(try backend.globalAveragePoolBackward(y, inputShape: TensorShape(1, 3, 2, 2))) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("globalAveragePoolBackward"), message)
            XCTAssertTrue(message.contains("1x2"), message)
        }
    }
}
