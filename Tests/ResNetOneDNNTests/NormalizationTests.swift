import ResNetKit
import XCTest

@testable import ResNetOneDNN

/// Normalization divides by sqrt(variance + epsilon), and its backward subtracts sums of
/// similar size, so float32 rounding shows more than in a plain sum. 1e-4 of the largest
/// value also leaves room for the order of oneDNN's sums.
let normalizationTolerance = 1e-4

final class NormalizationTests: XCTestCase {
    let shapes = [
        TensorShape(3, 16, 5, 5), TensorShape(1, 17, 4, 4), TensorShape(3, 3, 1, 1), TensorShape(2, 32, 3, 3),
        TensorShape(4, 5),
    ]

    func spatial(_ shape: TensorShape) -> Int {
        shape.rank == 4 ? shape[2] * shape[3] : 1
    }

    func testBatchNormTrainingMatchesReference() throws {
        let backend = try OneDNNBackend()
        let epsilon: Float = 1e-3
        for (index, shape) in shapes.enumerated() {
            for blocked in shape.rank == 4 ? [false, true] : [false] {
                let label = "shape \(shape), blocked input \(blocked)"
                let (batch, channels) = (shape[0], shape[1])
                let seed = UInt64(200 + index * 10)
                let xValues = randomValues(shape.elementCount, in: -2...3, seed: seed)
                let scaleValues = randomValues(channels, in: 0.5...1.5, seed: seed + 1)
                let shiftValues = randomValues(channels, seed: seed + 2)
                let dyValues = randomValues(shape.elementCount, seed: seed + 3)
                var x = try backend.makeTensor(xValues, shape: shape)
                var dy = try backend.makeTensor(dyValues, shape: shape)
                if blocked {
                    x = try blockedCopy(x, backend: backend)
                    dy = try blockedCopy(dy, backend: backend)
                }
                let scale = try backend.makeTensor(scaleValues, shape: TensorShape(channels))
                let shift = try backend.makeTensor(shiftValues, shape: TensorShape(channels))

                let output = try backend.batchNormTraining(x, scale: scale, shift: shift, epsilon: epsilon)
                let statistics = referenceStatistics(xValues, batch: batch, channels: channels, spatial: spatial(shape))
                assertClose(try backend.values(of: output.mean), statistics.mean, tolerance: normalizationTolerance, "\(label) mean")
                assertClose(
                    try backend.values(of: output.variance), statistics.variance, tolerance: normalizationTolerance,
                    "\(label) variance")
                let expectedY = referenceBatchNorm(
                    xValues, scale: scaleValues, shift: shiftValues, mean: statistics.mean, variance: statistics.variance,
                    epsilon: Double(epsilon), batch: batch, channels: channels, spatial: spatial(shape))
                assertClose(try backend.values(of: output.y), expectedY, tolerance: normalizationTolerance, "\(label) y")

                let gradients = try backend.batchNormBackward(
                    dy, x: x, scale: scale, mean: output.mean, variance: output.variance, epsilon: epsilon)
                let expected = referenceBatchNormBackward(
                    dyValues, xValues, scale: scaleValues, epsilon: Double(epsilon), batch: batch, channels: channels,
                    spatial: spatial(shape))
                assertClose(try backend.values(of: gradients.dx), expected.dx, tolerance: normalizationTolerance, "\(label) dx")
                assertClose(
                    try backend.values(of: gradients.dscale), expected.dscale, tolerance: normalizationTolerance,
                    "\(label) dscale")
                assertClose(
                    try backend.values(of: gradients.dshift), expected.dshift, tolerance: normalizationTolerance,
                    "\(label) dshift")
            }
        }
    }

    func testBatchNormInferenceMatchesReference() throws {
        let backend = try OneDNNBackend()
        let epsilon: Float = 1e-3
        for (index, shape) in shapes.enumerated() {
            let (batch, channels) = (shape[0], shape[1])
            let seed = UInt64(300 + index * 10)
            let xValues = randomValues(shape.elementCount, seed: seed)
            let scaleValues = randomValues(channels, in: 0.5...1.5, seed: seed + 1)
            let shiftValues = randomValues(channels, seed: seed + 2)
            let meanValues = randomValues(channels, seed: seed + 3)
            let varianceValues = randomValues(channels, in: 0.1...2, seed: seed + 4)
            let y = try backend.batchNormInference(
                try backend.makeTensor(xValues, shape: shape),
                scale: try backend.makeTensor(scaleValues, shape: TensorShape(channels)),
                shift: try backend.makeTensor(shiftValues, shape: TensorShape(channels)),
                mean: try backend.makeTensor(meanValues, shape: TensorShape(channels)),
                variance: try backend.makeTensor(varianceValues, shape: TensorShape(channels)),
                epsilon: epsilon)
            let expected = referenceBatchNorm(
                xValues, scale: scaleValues, shift: shiftValues, mean: meanValues.map(Double.init),
                variance: varianceValues.map(Double.init), epsilon: Double(epsilon), batch: batch, channels: channels,
                spatial: spatial(shape))
            assertClose(try backend.values(of: y), expected, tolerance: normalizationTolerance, "shape \(shape) y")
        }
    }

    func testBatchNormRejectsOneValuePerChannel() throws {
        let backend = try OneDNNBackend()
        let x = try backend.makeTensor(randomValues(4, seed: 1), shape: TensorShape(1, 4, 1, 1))
        let scale = try backend.makeTensor([1, 1, 1, 1], shape: TensorShape(4))
        let shift = try backend.makeTensor([0, 0, 0, 0], shape: TensorShape(4))
        XCTAssertThrowsError(try backend.batchNormTraining(x, scale: scale, shift: shift, epsilon: 1e-3)) { error in
            let backendError = error as? BackendError
            XCTAssertNotNil(backendError, "\(error)")
            XCTAssertTrue(backendError?.message.contains("1x4x1x1") ?? false, "\(error)")
        }
    }

    func testReluForwardAndBackward() throws {
        let backend = try OneDNNBackend()
        for (index, shape) in [TensorShape(3, 17, 4, 5), TensorShape(1, 3, 2, 2), TensorShape(2, 7)].enumerated() {
            for blocked in shape.rank == 4 ? [false, true] : [false] {
                let label = "shape \(shape), blocked input \(blocked)"
                let xValues = randomValues(shape.elementCount, seed: UInt64(400 + index))
                let dyValues = randomValues(shape.elementCount, seed: UInt64(500 + index))
                var x = try backend.makeTensor(xValues, shape: shape)
                var dy = try backend.makeTensor(dyValues, shape: shape)
                if blocked {
                    x = try blockedCopy(x, backend: backend)
                    dy = try blockedCopy(dy, backend: backend)
                }
                let y = try backend.relu(x)
                XCTAssertEqual(try backend.values(of: y), xValues.map { max($0, 0) }, label)
                let dx = try backend.reluBackward(dy, y: y)
                let expected = zip(dyValues, xValues).map { $1 > 0 ? $0 : 0 }
                XCTAssertEqual(try backend.values(of: dx), expected, label)
            }
        }
    }
}
