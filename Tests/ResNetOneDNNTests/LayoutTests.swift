import ResNetKit
import XCTest

@testable import ResNetOneDNN

/// Sums the squares of every element of the first buffer, padding included.
final class SquareSum: ElementwiseUpdate {
    var total: Double = 0

    func apply(_ buffers: [UnsafeMutableBufferPointer<Float>]) {
        total = buffers[0].reduce(0.0) { $0 + Double($1) * Double($1) }
    }

    func apply(_ buffers: [UnsafeMutableBufferPointer<Double>]) {
        XCTFail("the oneDNN backend stores Float")
    }
}

/// Fills `count` pooled buffers of `byteCount` bytes with NaN, so that the next tensors of that
/// size start from garbage and a test finds out whether oneDNN writes their padding.
func poisonPool(_ backend: OneDNNBackend, byteCount: Int, count: Int = 4) throws {
    let buffers = try (0..<count).map { _ in try backend.pool.acquire(byteCount: byteCount) }
    for (buffer, capacity) in buffers {
        buffer.initializeMemory(as: Float.self, repeating: .nan, count: capacity / MemoryLayout<Float>.stride)
        backend.pool.release(buffer, capacity: capacity)
    }
}

/// Returns the sum of squares of every element of a tensor's buffer, padding included.
func bufferSquareSum(_ tensor: Tensor, backend: OneDNNBackend) throws -> Double {
    let squares = SquareSum()
    try backend.update([tensor], with: squares)
    return squares.total
}

final class LayoutTests: XCTestCase {
    func testPoolReusesLargerFreeBuffer() throws {
        let pool = BufferPool()
        let large = try pool.acquire(byteCount: 4096)
        pool.release(large.buffer, capacity: large.capacity)

        // A quarter of the size reuses the free buffer; an eighth would waste too much of it.
        let quarter = try pool.acquire(byteCount: 1024)
        XCTAssertEqual(quarter.buffer, large.buffer)
        XCTAssertEqual(quarter.capacity, 4096)
        XCTAssertEqual(pool.allocationCount, 1)
        pool.release(quarter.buffer, capacity: quarter.capacity)
        let eighth = try pool.acquire(byteCount: 512)
        XCTAssertNotEqual(eighth.buffer, large.buffer)
        XCTAssertEqual(pool.allocationCount, 2)

        // An exact size comes before a larger one.
        pool.release(eighth.buffer, capacity: eighth.capacity)
        let exact = try pool.acquire(byteCount: 512)
        XCTAssertEqual(exact.buffer, eighth.buffer)
        pool.release(exact.buffer, capacity: exact.capacity)
    }

    func testMakeTensorRoundTrip() throws {
        let backend = try OneDNNBackend()
        for shape in [TensorShape(5), TensorShape(2, 3), TensorShape(3, 17, 4, 5)] {
            let values = randomValues(shape.elementCount, seed: 1)
            let tensor = try backend.makeTensor(values, shape: shape)
            XCTAssertEqual(try backend.values(of: tensor), values, "shape \(shape)")
        }
    }

    func testBlockedRoundTripAndReshape() throws {
        let backend = try OneDNNBackend()
        for channels in [16, 17, 32] {
            let shape = TensorShape(3, channels, 4, 5)
            let values = randomValues(shape.elementCount, seed: UInt64(channels))
            let blocked = try blockedCopy(backend.makeTensor(values, shape: shape), backend: backend)
            let storage = try XCTUnwrap(blocked.storage as? OneDNNStorage)
            XCTAssertFalse(ResNetOneDNN.isPlainLayout(storage.layout), "C=\(channels) should be blocked")
            XCTAssertEqual(try backend.values(of: blocked), values, "C=\(channels) values")

            let flat = try backend.reshape(blocked, to: TensorShape(3, channels * 20))
            XCTAssertEqual(try backend.values(of: flat), values, "C=\(channels) reshaped")
            let back = try backend.reshape(flat, to: shape)
            XCTAssertEqual(try backend.values(of: back), values, "C=\(channels) reshaped back")
        }
    }

    func testBlockedPaddingHoldsZeros() throws {
        let backend = try OneDNNBackend()
        let shape = TensorShape(3, 17, 4, 5)
        let values = randomValues(shape.elementCount, seed: 3)
        let x = try backend.makeTensor(values, shape: shape)
        let probe = try blockedCopy(x, backend: backend)
        let byteCount = try XCTUnwrap(probe.storage as? OneDNNStorage).byteCount
        XCTAssertGreaterThan(byteCount, shape.elementCount * 4, "17 channels pad to a whole block")

        try poisonPool(backend, byteCount: byteCount)
        let blocked = try blockedCopy(x, backend: backend)
        let expected = values.reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(try bufferSquareSum(blocked, backend: backend), expected, accuracy: 1e-9 * expected, "convolution output padding")

        let dy = try blockedCopy(backend.makeTensor(randomValues(shape.elementCount, seed: 4), shape: shape), backend: backend)
        let y = try backend.relu(blocked)
        try poisonPool(backend, byteCount: byteCount)
        let gradient = try backend.reluBackward(dy, y: y)
        let gradientValues = try backend.values(of: gradient)
        let expectedGradient = gradientValues.reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(
            try bufferSquareSum(gradient, backend: backend), expectedGradient, accuracy: 1e-9 * max(expectedGradient, 1),
            "relu gradient padding")
    }

    func testZerosLikeKeepsLayoutAndByteCount() throws {
        let backend = try OneDNNBackend()
        let shape = TensorShape(2, 17, 3, 3)
        let blocked = try blockedCopy(backend.makeTensor(randomValues(shape.elementCount, seed: 5), shape: shape), backend: backend)
        let zeros = try backend.zeros(like: blocked)
        let source = try XCTUnwrap(blocked.storage as? OneDNNStorage)
        let copy = try XCTUnwrap(zeros.storage as? OneDNNStorage)
        XCTAssertEqual(zeros.shape, shape)
        XCTAssertEqual(copy.layout, source.layout)
        XCTAssertEqual(copy.byteCount, source.byteCount)
        XCTAssertEqual(try backend.values(of: zeros), [Float](repeating: 0, count: shape.elementCount))

        let counter = CountingUpdate()
        try backend.update([zeros, blocked], with: counter)
        XCTAssertEqual(counter.counts, [source.floatCount, source.floatCount], "update hands over whole padded buffers")
        XCTAssertEqual(try backend.values(of: zeros), try backend.values(of: blocked), "update wrote in place")
    }

    func testUpdateRejectsDifferentLayouts() throws {
        let backend = try OneDNNBackend()
        let shape = TensorShape(2, 17, 3, 3)
        let plain = try backend.makeTensor(randomValues(shape.elementCount, seed: 6), shape: shape)
        let blocked = try blockedCopy(plain, backend: backend)
        XCTAssertThrowsError(try backend.update([plain, blocked], with: CountingUpdate())) { error in
            XCTAssertTrue(error is BackendError, "\(error)")
        }
    }

    func testAddMixedLayouts() throws {
        let backend = try OneDNNBackend()
        for shape in [TensorShape(3, 17, 4, 4), TensorShape(2, 5)] {
            let aValues = randomValues(shape.elementCount, seed: 7)
            let bValues = randomValues(shape.elementCount, seed: 8)
            var a = try backend.makeTensor(aValues, shape: shape)
            if shape.rank == 4 {
                a = try blockedCopy(a, backend: backend)
            }
            let b = try backend.makeTensor(bValues, shape: shape)
            let expected = zip(aValues, bValues).map { $0 + $1 }
            XCTAssertEqual(try backend.values(of: backend.add(a, b)), expected, "shape \(shape) a + b")
            XCTAssertEqual(try backend.values(of: backend.add(b, a)), expected, "shape \(shape) b + a")
        }
    }

    func testSteadyStateAllocatesNoBuffers() throws {
        let backend = try OneDNNBackend()
        let g = try ConvolutionGeometry(
            inputChannels: 16, inputHeight: 8, inputWidth: 8, outputChannels: 16, kernel: (3, 3), stride: (1, 1),
            padding: .same)
        let x = try backend.makeTensor(randomValues(g.inputShape(batch: 2).elementCount, seed: 9), shape: g.inputShape(batch: 2))
        let weights = try backend.makeTensor(randomValues(g.weightShape.elementCount, seed: 10), shape: g.weightShape)
        let scale = try backend.makeTensor([Float](repeating: 1, count: 16), shape: TensorShape(16))
        let shift = try backend.makeTensor([Float](repeating: 0, count: 16), shape: TensorShape(16))

        func step() throws {
            let y = try backend.convolution(x, weights: weights, bias: nil, geometry: g)
            let normalized = try backend.batchNormTraining(y, scale: scale, shift: shift, epsilon: 1e-3)
            let activated = try backend.relu(normalized.y)
            let sum = try backend.add(activated, y)
            let dNormalized = try backend.reluBackward(sum, y: activated)
            let dy = try backend.batchNormBackward(
                dNormalized, x: y, scale: scale, mean: normalized.mean, variance: normalized.variance, epsilon: 1e-3)
            _ = try backend.convolutionBackward(
                dy.dx, x: x, weights: weights, hasBias: false, geometry: g, computeInputGradient: true)
        }

        try step()
        try step()
        let count = backend.bufferAllocationCount
        try step()
        XCTAssertEqual(backend.bufferAllocationCount, count, "a repeated step reuses pooled buffers")
    }

    func testSummaryNamesVersionIsaAndThreads() throws {
        let backend = try OneDNNBackend(threads: 2)
        XCTAssertEqual(backend.name, "onednn")
        XCTAssertTrue(backend.version.hasPrefix("2."), backend.version)
        XCTAssertEqual(backend.threads, 2)
        XCTAssertTrue(backend.summary.contains("ISA \(backend.isa)"), backend.summary)
        XCTAssertTrue(backend.summary.contains("2 threads"), backend.summary)
    }
}
