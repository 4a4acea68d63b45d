import ResNetKit
import XCTest

@testable import ResNetOneDNN

final class ErrorTests: XCTestCase {
    func assertBackendError<T>(
        _ expression: @autoclosure () throws -> T, mentions text: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            guard let backendError = error as? BackendError else {
                XCTFail("expected BackendError, got \(error)", file: file, line: line)
                return
            }
            XCTAssertTrue(
                backendError.description.contains(text), "\"\(backendError)\" should mention \(text)", file: file,
                line: line)
        }
    }

    func testMakeTensorWrongCount() throws {
        let backend = try OneDNNBackend()
        assertBackendError(try backend.makeTensor([1, 2, 3], shape: TensorShape(2, 2)), mentions: "2x2")
    }

    func testForeignTensor() throws {
        let backend = try OneDNNBackend()
        let foreign = Tensor(shape: TensorShape(2), storage: [Float(1), 2] as AnyObject)
        assertBackendError(try backend.values(of: foreign), mentions: "not created by the oneDNN backend")
    }

    func testConvolutionShapeMismatch() throws {
        let backend = try OneDNNBackend()
        let g = try ConvolutionGeometry(
            inputChannels: 3, inputHeight: 8, inputWidth: 8, outputChannels: 16, kernel: (3, 3), stride: (1, 1),
            padding: .same)
        let x = try backend.makeTensor(randomValues(4 * 8 * 8, seed: 1), shape: TensorShape(1, 4, 8, 8))
        let weights = try backend.makeTensor(randomValues(g.weightShape.elementCount, seed: 2), shape: g.weightShape)
        assertBackendError(try backend.convolution(x, weights: weights, bias: nil, geometry: g), mentions: "1x4x8x8")

        let goodX = try backend.makeTensor(randomValues(3 * 64, seed: 3), shape: g.inputShape(batch: 1))
        let badWeights = try backend.makeTensor(randomValues(15 * 3 * 9, seed: 4), shape: TensorShape(15, 3, 3, 3))
        assertBackendError(try backend.convolution(goodX, weights: badWeights, bias: nil, geometry: g), mentions: "15x3x3x3")

        let badBias = try backend.makeTensor([1, 2], shape: TensorShape(2))
        assertBackendError(try backend.convolution(goodX, weights: weights, bias: badBias, geometry: g), mentions: "bias")

        let badDy = try backend.makeTensor(randomValues(16 * 49, seed: 5), shape: TensorShape(1, 16, 7, 7))
        assertBackendError(
            try backend.convolutionBackward(
                badDy, x: goodX, weights: weights, hasBias: false, geometry: g, computeInputGradient: true),
            mentions: "1x16x7x7")
    }

    func testDenseShapeMismatch() throws {
        let backend = try OneDNNBackend()
        let x = try backend.makeTensor(randomValues(6, seed: 1), shape: TensorShape(2, 3))
        let weights = try backend.makeTensor(randomValues(8, seed: 2), shape: TensorShape(2, 4))
        assertBackendError(try backend.dense(x, weights: weights, bias: nil), mentions: "2x4")
        let image = try backend.makeTensor(randomValues(8, seed: 3), shape: TensorShape(2, 1, 2, 2))
        assertBackendError(try backend.dense(image, weights: weights, bias: nil), mentions: "reshape")
    }

    func testAddShapeMismatch() throws {
        let backend = try OneDNNBackend()
        let a = try backend.makeTensor(randomValues(6, seed: 1), shape: TensorShape(2, 3))
        let b = try backend.makeTensor(randomValues(6, seed: 2), shape: TensorShape(3, 2))
        assertBackendError(try backend.add(a, b), mentions: "3x2")
    }

    func testBatchNormShapeMismatch() throws {
        let backend = try OneDNNBackend()
        let x = try backend.makeTensor(randomValues(2 * 3 * 4, seed: 1), shape: TensorShape(2, 3, 2, 2))
        let scale = try backend.makeTensor([1, 1], shape: TensorShape(2))
        let shift = try backend.makeTensor([0, 0, 0], shape: TensorShape(3))
        assertBackendError(try backend.batchNormTraining(x, scale: scale, shift: shift, epsilon: 1e-3), mentions: "scale")
    }

    func testReshapeWrongCount() throws {
        let backend = try OneDNNBackend()
        let x = try backend.makeTensor(randomValues(6, seed: 1), shape: TensorShape(2, 3))
        assertBackendError(try backend.reshape(x, to: TensorShape(7)), mentions: "2x3")
    }

    func testPoolShapeMismatch() throws {
        let backend = try OneDNNBackend()
        let g = try PoolGeometry(channels: 3, inputHeight: 4, inputWidth: 4, window: (2, 2), stride: (2, 2), padding: .valid)
        let x = try backend.makeTensor(randomValues(2 * 16, seed: 1), shape: TensorShape(1, 2, 4, 4))
        assertBackendError(try backend.maxPool(x, geometry: g, training: true), mentions: "1x2x4x4")
        let dy = try backend.makeTensor(randomValues(5, seed: 2), shape: TensorShape(1, 5))
        assertBackendError(try backend.globalAveragePoolBackward(dy, inputShape: TensorShape(1, 3, 4, 4)), mentions: "1x5")
    }

    func testBridgeFailureNamesOperationShapesAndStatus() throws {
        let backend = try OneDNNBackend()
        let x = try backend.makeTensor(randomValues(6, seed: 1), shape: TensorShape(2, 3))
        let source = try XCTUnwrap(x.storage as? OneDNNStorage)
        let otherLayout = try backend.plainLayout(TensorShape(3, 2), "test")
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        defer { buffer.deallocate() }
        XCTAssertThrowsError(try backend.reorder(source, into: buffer, layout: otherLayout, "values")) { error in
            let message = (error as? BackendError)?.description ?? "\(error)"
            XCTAssertTrue(message.hasPrefix("values: reorder 2x3 to 3x2"), message)
            XCTAssertTrue(message.contains("oneDNN status"), message)
        }
    }

    func testInvalidThreadCount() {
        assertBackendError(try OneDNNBackend(threads: 0), mentions: "thread count")
    }
}
