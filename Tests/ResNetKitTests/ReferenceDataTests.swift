import ResNetKit
import XCTest

/// Adds the second buffer into the first, as an optimizer step adds a scaled gradient.
private struct AddSecondIntoFirst: ElementwiseUpdate {
    func apply(_ buffers: [UnsafeMutableBufferPointer<Float>]) {
        for index in buffers[0].indices { buffers[0][index] += buffers[1][index] }
    }

    func apply(_ buffers: [UnsafeMutableBufferPointer<Double>]) {
        for index in buffers[0].indices { buffers[0][index] += buffers[1][index] }
    }
}

final class ReferenceDataTests: XCTestCase {
    func testNameAndSummary() {
        let backend = ReferenceBackend<Float>(threads: 2)
        XCTAssertEqual(backend.name, "reference")
        XCTAssertEqual(backend.summary, "reference (Swift, Float), 2 threads")
        XCTAssertEqual(ReferenceBackend<Double>(threads: 1).summary, "reference (Swift, Double), 1 thread")
    }

    func testValuesRoundTrip() throws {
        let backend = ReferenceBackend<Float>()
        let values: [Float] = [1, -2.5, 3, 0.125, 5, 6]
        let tensor = try backend.makeTensor(values, shape: TensorShape(1, 2, 1, 3))
        XCTAssertEqual(try backend.values(of: tensor), values)

        let copied = try values.withUnsafeBufferPointer {
            try backend.makeTensor(copying: $0, shape: TensorShape(2, 3))
        }
        XCTAssertEqual(try backend.values(of: copied), values)
        XCTAssertEqual(try backend.scalars(of: copied), values)
    }

    func testWrongValueCountThrows() {
        let backend = ReferenceBackend<Double>()
        XCTAssertThrowsError(try backend.makeTensor([1, 2, 3], shape: TensorShape(2, 2))) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("makeTensor"), message)
            XCTAssertTrue(message.contains("2x2"), message)
        }
    }

    func testTensorOfOtherBackendThrows() throws {
        let single = ReferenceBackend<Float>()
        let double = ReferenceBackend<Double>()
        let tensor = try single.makeTensor([1, 2], shape: TensorShape(1, 2))
        XCTAssertThrowsError(try double.relu(tensor)) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("relu"), message)
            XCTAssertTrue(message.contains("Double"), message)
        }
    }

    func testUpdateWritesStorageInPlace() throws {
        for backend: Backend in [ReferenceBackend<Float>(), ReferenceBackend<Double>()] {
            let parameter = try backend.makeTensor([1, 2, 3], shape: TensorShape(3))
            let step = try backend.makeTensor([10, 20, 30], shape: TensorShape(3))
            try backend.update([parameter, step], with: AddSecondIntoFirst())
            XCTAssertEqual(try backend.values(of: parameter), [11, 22, 33], backend.summary)
            XCTAssertEqual(try backend.values(of: step), [10, 20, 30], backend.summary)

            let moment = try backend.zeros(like: parameter)
            XCTAssertEqual(moment.shape, parameter.shape)
            XCTAssertEqual(try backend.values(of: moment), [0, 0, 0])

            let other = try backend.makeTensor([1, 2], shape: TensorShape(2))
            XCTAssertThrowsError(try backend.update([parameter, other], with: AddSecondIntoFirst()))
            XCTAssertThrowsError(try backend.update([parameter, parameter], with: AddSecondIntoFirst()))
        }
    }

    func testAddByHand() throws {
        let backend = ReferenceBackend<Double>()
        let sum = try backend.add(backend.tensor([1, 2, 3, 4], 1, 1, 2, 2), backend.tensor([10, 20, 30, 40], 1, 1, 2, 2))
        XCTAssertEqual(try backend.scalars(of: sum), [11, 22, 33, 44])
        XCTAssertThrowsError(try backend.add(sum, backend.tensor([1, 2, 3, 4], 1, 4))) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("add"), message)
            XCTAssertTrue(message.contains("1x1x2x2"), message)
            XCTAssertTrue(message.contains("1x4"), message)
        }
    }

    func testReshapeKeepsOrderAndCopies() throws {
        let backend = ReferenceBackend<Double>()
        let x = try backend.tensor([1, 2, 3, 4, 5, 6], 1, 6, 1, 1)
        let flat = try backend.reshape(x, to: TensorShape(2, 3))
        XCTAssertEqual(flat.shape, TensorShape(2, 3))
        XCTAssertEqual(try backend.scalars(of: flat), [1, 2, 3, 4, 5, 6])

        try backend.update([flat, backend.tensor([1, 1, 1, 1, 1, 1], 2, 3)], with: AddSecondIntoFirst())
        XCTAssertEqual(try backend.scalars(of: x), [1, 2, 3, 4, 5, 6])

        XCTAssertThrowsError(try backend.reshape(x, to: TensorShape(4, 2))) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("reshape"), message)
            XCTAssertTrue(message.contains("4x2"), message)
        }
    }
}
