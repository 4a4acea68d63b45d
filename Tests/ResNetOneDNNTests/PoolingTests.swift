import ResNetKit
import XCTest

@testable import ResNetOneDNN

final class PoolingTests: XCTestCase {
    struct Case {
        var batch: Int
        var channels: Int
        var size: Int
        var window: Int
        var stride: Int
        var padding: Padding
        var valueRange: ClosedRange<Float> = -1...1
    }

    let cases = [
        // Windows meet the bottom and right border: 'same' pads one row and column there.
        Case(batch: 3, channels: 16, size: 8, window: 3, stride: 2, padding: .same),
        // 'valid' with a window that does not tile 7: the last row and column are dropped.
        Case(batch: 1, channels: 3, size: 7, window: 2, stride: 2, padding: .valid),
        // Overlapping windows: one input can be the maximum of up to nine outputs.
        Case(batch: 1, channels: 17, size: 6, window: 3, stride: 1, padding: .valid),
        // All values negative, so a padded zero would win if padding took part.
        Case(
            batch: 3, channels: 32, size: 7, window: 3, stride: 2,
            padding: .explicit(top: 1, bottom: 1, left: 1, right: 1), valueRange: -3 ... -1),
    ]

    func testMaxPoolMatchesReference() throws {
        let backend = try OneDNNBackend()
        for (index, testCase) in cases.enumerated() {
            for blocked in [false, true] {
                let g = try PoolGeometry(
                    channels: testCase.channels, inputHeight: testCase.size, inputWidth: testCase.size,
                    window: (testCase.window, testCase.window), stride: (testCase.stride, testCase.stride),
                    padding: testCase.padding)
                let label = "case \(index) \(g), blocked input \(blocked)"
                let xShape = g.inputShape(batch: testCase.batch)
                let yShape = g.outputShape(batch: testCase.batch)
                let xValues = randomValues(xShape.elementCount, in: testCase.valueRange, seed: UInt64(600 + index))
                let dyValues = randomValues(yShape.elementCount, seed: UInt64(700 + index))
                var x = try backend.makeTensor(xValues, shape: xShape)
                if blocked {
                    x = try blockedCopy(x, backend: backend)
                }
                let dy = try backend.makeTensor(dyValues, shape: yShape)

                let output = try backend.maxPool(x, geometry: g, training: true)
                let expected = referenceMaxPool(xValues, g, batch: testCase.batch)
                XCTAssertEqual(output.y.shape, yShape, label)
                // A maximum is one of the inputs, so it matches exactly.
                assertClose(try backend.values(of: output.y), expected.y, tolerance: 0, "\(label) y")

                let inference = try backend.maxPool(x, geometry: g, training: false)
                XCTAssertNil(inference.indices, label)
                assertClose(try backend.values(of: inference.y), expected.y, tolerance: 0, "\(label) inference y")

                let dx = try backend.maxPoolBackward(dy, x: x, forward: output, geometry: g)
                let expectedDx = referenceMaxPoolBackward(dyValues, argmax: expected.argmax, inputCount: xValues.count)
                // Overlapping windows add up to nine float gradients, in another order than the reference.
                assertClose(try backend.values(of: dx), expectedDx, tolerance: 1e-6, "\(label) dx")
            }
        }
    }

    func testOverlappingWindowsSumGradients() throws {
        let backend = try OneDNNBackend()
        let g = try PoolGeometry(
            channels: 1, inputHeight: 5, inputWidth: 5, window: (3, 3), stride: (1, 1), padding: .valid)
        var xValues = [Float](repeating: 0, count: 25)
        xValues[12] = 10
        let x = try backend.makeTensor(xValues, shape: g.inputShape(batch: 1))
        let dyValues: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        let dy = try backend.makeTensor(dyValues, shape: g.outputShape(batch: 1))
        let output = try backend.maxPool(x, geometry: g, training: true)
        XCTAssertEqual(try backend.values(of: output.y), [Float](repeating: 10, count: 9))
        let dx = try backend.values(of: backend.maxPoolBackward(dy, x: x, forward: output, geometry: g))
        XCTAssertEqual(dx[12], 45, "the centre is the maximum of all nine windows")
        XCTAssertEqual(dx.reduce(0, +), 45, "no gradient goes anywhere else")
    }

    func testMaxPoolBackwardNeedsTrainingForward() throws {
        let backend = try OneDNNBackend()
        let g = try PoolGeometry(channels: 2, inputHeight: 4, inputWidth: 4, window: (2, 2), stride: (2, 2), padding: .valid)
        let x = try backend.makeTensor(randomValues(32, seed: 1), shape: g.inputShape(batch: 1))
        let dy = try backend.makeTensor(randomValues(8, seed: 2), shape: g.outputShape(batch: 1))
        let output = try backend.maxPool(x, geometry: g, training: false)
        XCTAssertThrowsError(try backend.maxPoolBackward(dy, x: x, forward: output, geometry: g)) { error in
            XCTAssertTrue(error is BackendError, "\(error)")
        }
    }

    func testGlobalAveragePoolMatchesReference() throws {
        let backend = try OneDNNBackend()
        for (index, shape) in [TensorShape(3, 17, 5, 4), TensorShape(1, 3, 7, 7), TensorShape(3, 32, 1, 1)].enumerated() {
            for blocked in [false, true] {
                let label = "shape \(shape), blocked input \(blocked)"
                let (batch, channels, spatial) = (shape[0], shape[1], shape[2] * shape[3])
                let xValues = randomValues(shape.elementCount, seed: UInt64(800 + index))
                let dyValues = randomValues(batch * channels, seed: UInt64(900 + index))
                var x = try backend.makeTensor(xValues, shape: shape)
                if blocked {
                    x = try blockedCopy(x, backend: backend)
                }
                let y = try backend.globalAveragePool(x)
                XCTAssertEqual(y.shape, TensorShape(batch, channels), label)
                let expectedY = referenceGlobalAveragePool(xValues, batch: batch, channels: channels, spatial: spatial)
                // A float mean of up to 49 values.
                assertClose(try backend.values(of: y), expectedY, tolerance: 1e-6, "\(label) y")

                let dy = try backend.makeTensor(dyValues, shape: TensorShape(batch, channels))
                let dx = try backend.globalAveragePoolBackward(dy, inputShape: shape)
                XCTAssertEqual(dx.shape, shape, label)
                let expectedDx = (0..<shape.elementCount).map { Double(dyValues[$0 / spatial]) / Double(spatial) }
                assertClose(try backend.values(of: dx), expectedDx, tolerance: 1e-6, "\(label) dx")

                // The flat output feeds a dense layer and reshapes like any [N, C] tensor.
                let flat = try backend.reshape(y, to: TensorShape(batch * channels))
                assertClose(try backend.values(of: flat), expectedY, tolerance: 1e-6, "\(label) reshaped y")
            }
        }
    }
}
