import ResNetKit
import XCTest

import ResNetOneDNN

final class DenseTests: XCTestCase {
    func testForwardAndBackwardMatchReference() throws {
        let backend = try OneDNNBackend()
        let cases = [(batch: 3, inputs: 5, outputs: 4), (batch: 1, inputs: 17, outputs: 32), (batch: 3, inputs: 32, outputs: 1)]
        for (index, size) in cases.enumerated() {
            for hasBias in [false, true] {
                let label = "dense \(size), bias \(hasBias)"
                let seed = UInt64(100 + index * 10 + (hasBias ? 1 : 0))
                let xValues = randomValues(size.batch * size.inputs, seed: seed)
                let weightValues = randomValues(size.outputs * size.inputs, seed: seed + 1000)
                let biasValues = hasBias ? randomValues(size.outputs, seed: seed + 2000) : nil
                let dyValues = randomValues(size.batch * size.outputs, seed: seed + 3000)
                let x = try backend.makeTensor(xValues, shape: TensorShape(size.batch, size.inputs))
                let weights = try backend.makeTensor(weightValues, shape: TensorShape(size.outputs, size.inputs))
                let bias = try biasValues.map { try backend.makeTensor($0, shape: TensorShape(size.outputs)) }
                let dy = try backend.makeTensor(dyValues, shape: TensorShape(size.batch, size.outputs))

                let y = try backend.dense(x, weights: weights, bias: bias)
                XCTAssertEqual(y.shape, TensorShape(size.batch, size.outputs), label)
                let expectedY = referenceDense(
                    xValues, weightValues, biasValues, batch: size.batch, inputs: size.inputs, outputs: size.outputs)
                assertClose(try backend.values(of: y), expectedY, tolerance: linearTolerance, "\(label) y")

                let gradients = try backend.denseBackward(
                    dy, x: x, weights: weights, hasBias: hasBias, computeInputGradient: true)
                let expected = referenceDenseBackward(
                    dyValues, xValues, weightValues, batch: size.batch, inputs: size.inputs, outputs: size.outputs)
                assertClose(try backend.values(of: XCTUnwrap(gradients.dx)), expected.dx, tolerance: linearTolerance, "\(label) dx")
                assertClose(try backend.values(of: gradients.dw), expected.dw, tolerance: linearTolerance, "\(label) dw")
                if hasBias {
                    assertClose(try backend.values(of: XCTUnwrap(gradients.db)), expected.db, tolerance: linearTolerance, "\(label) db")
                } else {
                    XCTAssertNil(gradients.db, label)
                }
            }
        }
    }

    func testBackwardWithoutInputGradient() throws {
        let backend = try OneDNNBackend()
        let x = try backend.makeTensor(randomValues(6, seed: 1), shape: TensorShape(2, 3))
        let weights = try backend.makeTensor(randomValues(12, seed: 2), shape: TensorShape(4, 3))
        let dy = try backend.makeTensor(randomValues(8, seed: 3), shape: TensorShape(2, 4))
        let gradients = try backend.denseBackward(dy, x: x, weights: weights, hasBias: true, computeInputGradient: false)
        XCTAssertNil(gradients.dx)
        XCTAssertEqual(gradients.dw.shape, TensorShape(4, 3))
        XCTAssertEqual(gradients.db?.shape, TensorShape(4))
    }
}
