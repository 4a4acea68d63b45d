import ResNetKit
import XCTest

@testable import ResNetOneDNN

/// oneDNN adds up to C * R * S = 17 * 49 float32 products in another order than the Double
/// reference. Rounding errors grow about like the square root of the term count times 6e-8
/// (near 2e-6 of the largest result); the worst-case bound is 5e-5.
let linearTolerance = 2e-5

final class ConvolutionTests: XCTestCase {
    struct Case {
        var batch: Int
        var inputChannels: Int
        var outputChannels: Int
        var height: Int
        var width: Int
        var kernel: Int
        var stride: Int
        var padding: Padding
    }

    let cases = [
        Case(batch: 1, inputChannels: 3, outputChannels: 16, height: 8, width: 8, kernel: 3, stride: 1, padding: .same),
        // 'same' with stride 2 on an even input pads one more row and column at the bottom and right.
        Case(batch: 3, inputChannels: 16, outputChannels: 32, height: 8, width: 8, kernel: 3, stride: 2, padding: .same),
        Case(batch: 3, inputChannels: 17, outputChannels: 16, height: 7, width: 7, kernel: 1, stride: 2, padding: .valid),
        Case(batch: 1, inputChannels: 1, outputChannels: 17, height: 9, width: 9, kernel: 7, stride: 2, padding: .same),
        Case(batch: 1, inputChannels: 3, outputChannels: 1, height: 10, width: 10, kernel: 7, stride: 2, padding: .same),
        Case(batch: 3, inputChannels: 32, outputChannels: 32, height: 6, width: 6, kernel: 3, stride: 1, padding: .valid),
        Case(
            batch: 3, inputChannels: 16, outputChannels: 17, height: 5, width: 6, kernel: 3, stride: 1,
            padding: .explicit(top: 1, bottom: 0, left: 0, right: 2)),
    ]

    func geometry(_ testCase: Case) throws -> ConvolutionGeometry {
        try ConvolutionGeometry(
            inputChannels: testCase.inputChannels, inputHeight: testCase.height, inputWidth: testCase.width,
            outputChannels: testCase.outputChannels, kernel: (testCase.kernel, testCase.kernel),
            stride: (testCase.stride, testCase.stride), padding: testCase.padding)
    }

    func testSameStrideTwoPadsBottomRight() throws {
        let g = try geometry(cases[1])
        XCTAssertEqual(g.padTop, 0)
        XCTAssertEqual(g.padBottom, 1)
        XCTAssertEqual(g.outputHeight, 4)
    }

    func testForwardAndBackwardMatchReference() throws {
        let backend = try OneDNNBackend()
        for (index, testCase) in cases.enumerated() {
            for hasBias in [false, true] {
                let g = try geometry(testCase)
                let label = "case \(index) \(g), batch \(testCase.batch), bias \(hasBias)"
                let seed = UInt64(index * 10 + (hasBias ? 1 : 0))
                let xShape = g.inputShape(batch: testCase.batch)
                let yShape = g.outputShape(batch: testCase.batch)
                let xValues = randomValues(xShape.elementCount, seed: seed)
                let weightValues = randomValues(g.weightShape.elementCount, seed: seed + 1000)
                let biasValues = hasBias ? randomValues(g.outputChannels, seed: seed + 2000) : nil
                let dyValues = randomValues(yShape.elementCount, seed: seed + 3000)

                let x = try backend.makeTensor(xValues, shape: xShape)
                let weights = try backend.makeTensor(weightValues, shape: g.weightShape)
                let bias = try biasValues.map { try backend.makeTensor($0, shape: TensorShape(g.outputChannels)) }
                let dy = try backend.makeTensor(dyValues, shape: yShape)

                let y = try backend.convolution(x, weights: weights, bias: bias, geometry: g)
                XCTAssertEqual(y.shape, yShape, label)
                let expectedY = referenceConvolution(xValues, weightValues, biasValues, g, batch: testCase.batch)
                assertClose(try backend.values(of: y), expectedY, tolerance: linearTolerance, "\(label) y")

                let gradients = try backend.convolutionBackward(
                    dy, x: x, weights: weights, hasBias: hasBias, geometry: g, computeInputGradient: true)
                let expected = referenceConvolutionBackward(dyValues, xValues, weightValues, g, batch: testCase.batch)
                let dx = try XCTUnwrap(gradients.dx, label)
                XCTAssertEqual(dx.shape, xShape, label)
                assertClose(try backend.values(of: dx), expected.dx, tolerance: linearTolerance, "\(label) dx")
                XCTAssertEqual(gradients.dw.shape, g.weightShape, label)
                assertClose(try backend.values(of: gradients.dw), expected.dw, tolerance: linearTolerance, "\(label) dw")
                if hasBias {
                    let db = try XCTUnwrap(gradients.db, label)
                    assertClose(try backend.values(of: db), expected.db, tolerance: linearTolerance, "\(label) db")
                } else {
                    XCTAssertNil(gradients.db, label)
                }
            }
        }
    }

    func testBackwardWithoutInputGradient() throws {
        let backend = try OneDNNBackend()
        let g = try geometry(cases[0])
        let x = try backend.makeTensor(randomValues(g.inputShape(batch: 1).elementCount, seed: 7), shape: g.inputShape(batch: 1))
        let weights = try backend.makeTensor(randomValues(g.weightShape.elementCount, seed: 8), shape: g.weightShape)
        let dy = try backend.makeTensor(
            randomValues(g.outputShape(batch: 1).elementCount, seed: 9), shape: g.outputShape(batch: 1))
        let gradients = try backend.convolutionBackward(
            dy, x: x, weights: weights, hasBias: false, geometry: g, computeInputGradient: false)
        XCTAssertNil(gradients.dx)
        XCTAssertEqual(gradients.dw.shape, g.weightShape)
    }

    func testPreferredLayoutKernelGivesSameResults() throws {
        let backend = try OneDNNBackend()
        let g = try geometry(cases[1])
        let batch = cases[1].batch
        let xValues = randomValues(g.inputShape(batch: batch).elementCount, seed: 11)
        let weightValues = randomValues(g.weightShape.elementCount, seed: 12)
        let dyValues = randomValues(g.outputShape(batch: batch).elementCount, seed: 13)
        let x = try backend.makeTensor(xValues, shape: g.inputShape(batch: batch))
        let plainWeights = try backend.makeTensor(weightValues, shape: g.weightShape)
        let weights = try backend.preferredLayoutCopy(of: plainWeights, geometry: g, batch: batch)
        let dy = try backend.makeTensor(dyValues, shape: g.outputShape(batch: batch))

        let weightStorage = try XCTUnwrap(weights.storage as? OneDNNStorage)
        let plainStorage = try XCTUnwrap(plainWeights.storage as? OneDNNStorage)
        XCTAssertNotEqual(weightStorage.layout, plainStorage.layout, "16 -> 32 channels should use a blocked kernel")
        XCTAssertEqual(try backend.values(of: weights), weightValues, "reorder round trip of the kernel")

        let y = try backend.convolution(x, weights: weights, bias: nil, geometry: g)
        let expectedY = referenceConvolution(xValues, weightValues, nil, g, batch: batch)
        assertClose(try backend.values(of: y), expectedY, tolerance: linearTolerance, "y")

        let gradients = try backend.convolutionBackward(
            dy, x: x, weights: weights, hasBias: false, geometry: g, computeInputGradient: true)
        let expected = referenceConvolutionBackward(dyValues, xValues, weightValues, g, batch: batch)
        assertClose(try backend.values(of: gradients.dw), expected.dw, tolerance: linearTolerance, "dw")
        assertClose(try backend.values(of: XCTUnwrap(gradients.dx)), expected.dx, tolerance: linearTolerance, "dx")
    }

    func testGradientLayoutMatchesKernelLayout() throws {
        let backend = try OneDNNBackend()
        for (index, testCase) in cases.enumerated() {
            let g = try geometry(testCase)
            let batch = testCase.batch
            let x = try backend.makeTensor(
                randomValues(g.inputShape(batch: batch).elementCount, seed: 20), shape: g.inputShape(batch: batch))
            let dy = try backend.makeTensor(
                randomValues(g.outputShape(batch: batch).elementCount, seed: 21), shape: g.outputShape(batch: batch))
            let plain = try backend.makeTensor(randomValues(g.weightShape.elementCount, seed: 22), shape: g.weightShape)
            let preferred = try backend.preferredLayoutCopy(of: plain, geometry: g, batch: batch)
            for weights in [plain, preferred] {
                let byteCount = try XCTUnwrap(weights.storage as? OneDNNStorage).byteCount
                try poisonPool(backend, byteCount: byteCount)
                let gradients = try backend.convolutionBackward(
                    dy, x: x, weights: weights, hasBias: false, geometry: g, computeInputGradient: false)
                let weightStorage = try XCTUnwrap(weights.storage as? OneDNNStorage)
                let gradientStorage = try XCTUnwrap(gradients.dw.storage as? OneDNNStorage)
                XCTAssertEqual(gradientStorage.layout, weightStorage.layout, "case \(index) layout")
                XCTAssertEqual(gradientStorage.byteCount, weightStorage.byteCount, "case \(index) byte count")
                let dwValues = try backend.values(of: gradients.dw)
                let dwSquares = dwValues.reduce(0.0) { $0 + Double($1) * Double($1) }
                XCTAssertEqual(
                    try bufferSquareSum(gradients.dw, backend: backend), dwSquares, accuracy: 1e-9 * max(dwSquares, 1),
                    "case \(index) dw padding must be zero")

                let counter = CountingUpdate()
                XCTAssertNoThrow(try backend.update([weights, gradients.dw], with: counter), "case \(index)")
                XCTAssertEqual(counter.counts, [weightStorage.floatCount, weightStorage.floatCount], "case \(index)")
            }
        }
    }

    func testWinogradMatchesReference() throws {
        let backend = try OneDNNBackend(winograd: true)

        // The cases: sizes that are not multiples of the 4x4 output tile, a single tile, and
        // channel counts for the 8- and 16-wide GEMM kernels and their remainders, some with a
        // bias. Then a layer wider than 128 x 128 channels, which transforms all its tiles at
        // once, and one past 256 x 256, whose kernel gradient oneDNN computes.
        let cases: [(inputs: Int, outputs: Int, height: Int, width: Int, batch: Int, bias: Bool)] = [
            (32, 32, 12, 12, 3, false), (8, 16, 7, 9, 2, true), (24, 8, 5, 6, 2, true), (16, 16, 4, 4, 1, false),
            (8, 8, 1, 3, 2, false), (16, 24, 11, 3, 1, true), (136, 128, 5, 6, 2, true),
            (256, 264, 3, 4, 1, true),
        ]
        for (index, c) in cases.enumerated() {
            let g = try ConvolutionGeometry(
                inputChannels: c.inputs, inputHeight: c.height, inputWidth: c.width, outputChannels: c.outputs,
                kernel: (3, 3), stride: (1, 1), padding: .same)
            if backend.isa.hasPrefix("avx2") {
                XCTAssertTrue(backend.usesBridgeWinograd(g), "case \(index) should run the bridge's Winograd kernels")
            }
            let xValues = randomValues(g.inputShape(batch: c.batch).elementCount, seed: 31 + UInt64(index))
            let weightValues = randomValues(g.weightShape.elementCount, seed: 131 + UInt64(index))
            let biasValues = c.bias ? randomValues(c.outputs, seed: 231 + UInt64(index)) : nil
            let dyValues = randomValues(g.outputShape(batch: c.batch).elementCount, seed: 331 + UInt64(index))
            let x = try backend.makeTensor(xValues, shape: g.inputShape(batch: c.batch))
            let weights = try backend.makeTensor(weightValues, shape: g.weightShape)
            let bias = try biasValues.map { try backend.makeTensor($0, shape: TensorShape(c.outputs)) }
            let dy = try backend.makeTensor(dyValues, shape: g.outputShape(batch: c.batch))

            // Winograd's transforms round more than a direct sum: allow 1e-4 of the largest value.
            let tolerance = 1e-4
            let y = try backend.convolution(x, weights: weights, bias: bias, geometry: g)
            assertClose(
                try backend.values(of: y), referenceConvolution(xValues, weightValues, biasValues, g, batch: c.batch),
                tolerance: tolerance, "case \(index) y")
            let gradients = try backend.convolutionBackward(
                dy, x: x, weights: weights, hasBias: c.bias, geometry: g, computeInputGradient: true)
            let expected = referenceConvolutionBackward(dyValues, xValues, weightValues, g, batch: c.batch)
            assertClose(try backend.values(of: XCTUnwrap(gradients.dx)), expected.dx, tolerance: tolerance, "case \(index) dx")
            assertClose(try backend.values(of: gradients.dw), expected.dw, tolerance: tolerance, "case \(index) dw")
            if c.bias {
                assertClose(try backend.values(of: XCTUnwrap(gradients.db)), expected.db, tolerance: 1e-5, "case \(index) db")
            }
        }
    }

    func testWinogradAppliesOnlyWhereItIsExact() throws {
        let winograd = try OneDNNBackend(winograd: true)
        let direct = try OneDNNBackend(winograd: false)
        let stride1 = try ConvolutionGeometry(
            inputChannels: 16, inputHeight: 8, inputWidth: 8, outputChannels: 16, kernel: (3, 3), stride: (1, 1),
            padding: .same)
        let stride2 = try ConvolutionGeometry(
            inputChannels: 16, inputHeight: 8, inputWidth: 8, outputChannels: 32, kernel: (3, 3), stride: (2, 2),
            padding: .same)
        let oddChannels = try ConvolutionGeometry(
            inputChannels: 3, inputHeight: 8, inputWidth: 8, outputChannels: 16, kernel: (3, 3), stride: (1, 1),
            padding: .same)
        XCTAssertEqual(winograd.usesBridgeWinograd(stride1), winograd.isa.hasPrefix("avx2"))
        XCTAssertFalse(direct.usesBridgeWinograd(stride1), "winograd: false must run directly")
        XCTAssertFalse(winograd.usesBridgeWinograd(stride2))
        XCTAssertFalse(winograd.usesBridgeWinograd(oddChannels))
    }
}

/// Records the element count of each buffer it is handed and adds the second buffer to the first.
final class CountingUpdate: ElementwiseUpdate {
    var counts: [Int] = []

    func apply(_ buffers: [UnsafeMutableBufferPointer<Float>]) {
        counts = buffers.map(\.count)
        guard buffers.count >= 2 else { return }
        for i in 0..<buffers[0].count {
            buffers[0][i] += buffers[1][i]
        }
    }

    func apply(_ buffers: [UnsafeMutableBufferPointer<Double>]) {
        XCTFail("the oneDNN backend stores Float")
    }
}
