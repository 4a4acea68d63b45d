import ResNetKit
import XCTest

final class ConvolutionTests: XCTestCase {
    struct Case: CustomStringConvertible {
        var batch: Int
        var inputChannels: Int
        var outputChannels: Int
        var height: Int
        var width: Int
        var kernel: Int
        var stride: Int
        var padding: Padding
        var hasBias: Bool

        var description: String {
            "N=\(batch) C=\(inputChannels) K=\(outputChannels) \(height)x\(width) kernel \(kernel) "
                + "stride \(stride) \(padding) bias \(hasBias)"
        }
    }

    static let gradientCases: [Case] = [
        Case(batch: 1, inputChannels: 1, outputChannels: 3, height: 5, width: 5, kernel: 3, stride: 1,
             padding: .same, hasBias: true),
        Case(batch: 3, inputChannels: 3, outputChannels: 10, height: 6, width: 6, kernel: 3, stride: 2,
             padding: .same, hasBias: false),
        Case(batch: 1, inputChannels: 17, outputChannels: 3, height: 4, width: 5, kernel: 1, stride: 1,
             padding: .valid, hasBias: true),
        Case(batch: 3, inputChannels: 10, outputChannels: 1, height: 7, width: 7, kernel: 1, stride: 2,
             padding: .valid, hasBias: false),
        Case(batch: 1, inputChannels: 3, outputChannels: 4, height: 9, width: 8, kernel: 7, stride: 2,
             padding: .same, hasBias: true),
        Case(batch: 3, inputChannels: 1, outputChannels: 3, height: 8, width: 8, kernel: 7, stride: 2,
             padding: .explicit(top: 3, bottom: 3, left: 3, right: 3), hasBias: true),
        Case(batch: 1, inputChannels: 3, outputChannels: 10, height: 7, width: 9, kernel: 7, stride: 1,
             padding: .valid, hasBias: false),
        Case(batch: 3, inputChannels: 3, outputChannels: 3, height: 5, width: 6, kernel: 3, stride: 2,
             padding: .explicit(top: 1, bottom: 0, left: 2, right: 1), hasBias: true),
        Case(batch: 3, inputChannels: 17, outputChannels: 10, height: 3, width: 3, kernel: 3, stride: 1,
             padding: .same, hasBias: true),
    ]

    func testGradientsMatchFiniteDifferences() throws {
        let backend = ReferenceBackend<Double>(threads: 2)
        var generator = SeededGenerator(seed: 1)
        for testCase in Self.gradientCases {
            let geometry = try ConvolutionGeometry(
                inputChannels: testCase.inputChannels, inputHeight: testCase.height, inputWidth: testCase.width,
                outputChannels: testCase.outputChannels, kernel: (testCase.kernel, testCase.kernel),
                stride: (testCase.stride, testCase.stride), padding: testCase.padding)
            let xShape = geometry.inputShape(batch: testCase.batch)
            let outputShape = geometry.outputShape(batch: testCase.batch)
            let x = randomValues(xShape.elementCount, using: &generator)
            let weights = randomValues(geometry.weightShape.elementCount, using: &generator)
            let bias = randomValues(testCase.outputChannels, using: &generator)
            let dy = randomValues(outputShape.elementCount, using: &generator)

            // The loss is Σ y * dy, so its gradient with respect to y is dy.
            func loss(x: [Double], weights: [Double], bias: [Double]) throws -> Double {
                let y = try backend.convolution(
                    backend.makeTensor(scalars: x, shape: xShape),
                    weights: backend.makeTensor(scalars: weights, shape: geometry.weightShape),
                    bias: testCase.hasBias ? backend.makeTensor(scalars: bias, shape: TensorShape(bias.count)) : nil,
                    geometry: geometry)
                return dot(try backend.scalars(of: y), dy)
            }

            let gradients = try backend.convolutionBackward(
                backend.makeTensor(scalars: dy, shape: outputShape),
                x: backend.makeTensor(scalars: x, shape: xShape),
                weights: backend.makeTensor(scalars: weights, shape: geometry.weightShape),
                hasBias: testCase.hasBias, geometry: geometry, computeInputGradient: true)
            let context = "convolution \(testCase)"

            let dx = try XCTUnwrap(gradients.dx, context)
            try checkGradient("dx", analytic: backend.scalars(of: dx), at: x, context: context) {
                try loss(x: $0, weights: weights, bias: bias)
            }
            try checkGradient("dw", analytic: backend.scalars(of: gradients.dw), at: weights, context: context) {
                try loss(x: x, weights: $0, bias: bias)
            }
            if testCase.hasBias {
                let db = try XCTUnwrap(gradients.db, context)
                try checkGradient("db", analytic: backend.scalars(of: db), at: bias, context: context) {
                    try loss(x: x, weights: weights, bias: $0)
                }
            } else {
                XCTAssertNil(gradients.db, "\(context): db without a bias")
            }
        }
    }

    func testInputGradientOnlyOnRequest() throws {
        let backend = ReferenceBackend<Double>()
        let geometry = try ConvolutionGeometry(
            inputChannels: 2, inputHeight: 3, inputWidth: 3, outputChannels: 2, kernel: (3, 3), stride: (1, 1),
            padding: .same)
        let gradients = try backend.convolutionBackward(
            backend.tensor([Double](repeating: 1, count: 18), 1, 2, 3, 3),
            x: backend.tensor([Double](repeating: 1, count: 18), 1, 2, 3, 3),
            weights: backend.tensor([Double](repeating: 1, count: 36), 2, 2, 3, 3),
            hasBias: true, geometry: geometry, computeInputGradient: false)
        XCTAssertNil(gradients.dx)
        XCTAssertEqual(gradients.dw.shape, TensorShape(2, 2, 3, 3))
        XCTAssertEqual(try backend.scalars(of: XCTUnwrap(gradients.db)), [9, 9])
    }

    /// TensorFlow pads 'same' with stride 2 on an even input by one row and column at the
    /// bottom and right only, so the first window starts at the top-left input.
    func testSamePaddingStrideTwoPadsBottomRight() throws {
        let geometry = try ConvolutionGeometry(
            inputChannels: 1, inputHeight: 4, inputWidth: 4, outputChannels: 1, kernel: (3, 3), stride: (2, 2),
            padding: .same)
        XCTAssertEqual(geometry.padTop, 0)
        XCTAssertEqual(geometry.padBottom, 1)
        XCTAssertEqual(geometry.padLeft, 0)
        XCTAssertEqual(geometry.padRight, 1)
        XCTAssertEqual(geometry.outputShape(batch: 1), TensorShape(1, 1, 2, 2))

        // x[h][w] = 4h + w + 1, so x is 1...16 in row-major order.
        let backend = ReferenceBackend<Double>()
        let x = try backend.tensor((1...16).map(Double.init), 1, 1, 4, 4)

        // A kernel of ones sums each window. Window (0, 1) covers rows 0-2 and columns 2-3 plus
        // the padded column: (3 + 4) + (7 + 8) + (11 + 12) = 45.
        let ones = try backend.tensor([Double](repeating: 1, count: 9), 1, 1, 3, 3)
        let sums = try backend.convolution(x, weights: ones, bias: nil, geometry: geometry)
        XCTAssertEqual(try backend.scalars(of: sums), [54, 45, 72, 54])

        // A kernel with only its top-left tap set reads x[2 * oh][2 * ow]: 1, 3, 9 and 11.
        let corner = try backend.tensor([1, 0, 0, 0, 0, 0, 0, 0, 0], 1, 1, 3, 3)
        let picked = try backend.convolution(x, weights: corner, bias: nil, geometry: geometry)
        XCTAssertEqual(try backend.scalars(of: picked), [1, 3, 9, 11])
    }

    func testBiasIsAddedPerOutputChannel() throws {
        let backend = ReferenceBackend<Double>()
        let geometry = try ConvolutionGeometry(
            inputChannels: 1, inputHeight: 2, inputWidth: 2, outputChannels: 2, kernel: (1, 1), stride: (1, 1),
            padding: .valid)
        let y = try backend.convolution(
            backend.tensor([1, 2, 3, 4], 1, 1, 2, 2), weights: backend.tensor([2, -1], 2, 1, 1, 1),
            bias: backend.tensor([10, 100], 2), geometry: geometry)
        XCTAssertEqual(try backend.scalars(of: y), [12, 14, 16, 18, 99, 98, 97, 96])
    }

    func testFloatAndDoubleAgree() throws {
        let single = ReferenceBackend<Float>(threads: 2)
        let double = ReferenceBackend<Double>(threads: 1)
        let geometry = try ConvolutionGeometry(
            inputChannels: 10, inputHeight: 9, inputWidth: 9, outputChannels: 8, kernel: (3, 3), stride: (1, 1),
            padding: .same)
        var generator = SeededGenerator(seed: 2)
        let x = randomValues(geometry.inputShape(batch: 2).elementCount, using: &generator).map(Float.init)
        let weights = randomValues(geometry.weightShape.elementCount, using: &generator).map(Float.init)
        let bias = randomValues(8, using: &generator).map(Float.init)
        let dy = randomValues(geometry.outputShape(batch: 2).elementCount, using: &generator).map(Float.init)

        func run(_ backend: Backend) throws -> [String: [Double]] {
            let xTensor = try backend.makeTensor(x, shape: geometry.inputShape(batch: 2))
            let weightTensor = try backend.makeTensor(weights, shape: geometry.weightShape)
            let y = try backend.convolution(
                xTensor, weights: weightTensor, bias: backend.makeTensor(bias, shape: TensorShape(8)),
                geometry: geometry)
            let gradients = try backend.convolutionBackward(
                backend.makeTensor(dy, shape: geometry.outputShape(batch: 2)), x: xTensor, weights: weightTensor,
                hasBias: true, geometry: geometry, computeInputGradient: true)
            return [
                "y": try backend.values(of: y).map(Double.init),
                "dx": try backend.values(of: XCTUnwrap(gradients.dx)).map(Double.init),
                "dw": try backend.values(of: gradients.dw).map(Double.init),
                "db": try backend.values(of: XCTUnwrap(gradients.db)).map(Double.init),
            ]
        }

        let singleResults = try run(single)
        let doubleResults = try run(double)
        for name in ["y", "dx", "dw", "db"] {
            let expected = try XCTUnwrap(doubleResults[name])
            let actual = try XCTUnwrap(singleResults[name])
            let difference = maxAbsDifference(actual, expected)
            let magnitude = expected.map(abs).max() ?? 0
            XCTAssertLessThanOrEqual(
                difference, 1e-5 * magnitude,
                "\(name): Float and Double max abs difference \(difference), max magnitude \(magnitude)")
        }
    }

    /// Each thread owns whole images or whole output channels, so the thread count must not
    /// change the order of any sum.
    func testThreadCountKeepsResultsExact() throws {
        let geometry = try ConvolutionGeometry(
            inputChannels: 3, inputHeight: 7, inputWidth: 6, outputChannels: 5, kernel: (3, 3), stride: (2, 2),
            padding: .same)
        var generator = SeededGenerator(seed: 9)
        let x = randomValues(geometry.inputShape(batch: 5).elementCount, using: &generator)
        let weights = randomValues(geometry.weightShape.elementCount, using: &generator)
        let dy = randomValues(geometry.outputShape(batch: 5).elementCount, using: &generator)

        func run(threads: Int) throws -> [[Double]] {
            let backend = ReferenceBackend<Double>(threads: threads)
            let xTensor = try backend.makeTensor(scalars: x, shape: geometry.inputShape(batch: 5))
            let weightTensor = try backend.makeTensor(scalars: weights, shape: geometry.weightShape)
            let y = try backend.convolution(xTensor, weights: weightTensor, bias: nil, geometry: geometry)
            let gradients = try backend.convolutionBackward(
                backend.makeTensor(scalars: dy, shape: geometry.outputShape(batch: 5)), x: xTensor,
                weights: weightTensor, hasBias: false, geometry: geometry, computeInputGradient: true)
            return [
                try backend.scalars(of: y), try backend.scalars(of: XCTUnwrap(gradients.dx)),
                try backend.scalars(of: gradients.dw),
            ]
        }

        let serial = try run(threads: 1)
        let parallel = try run(threads: 3)
        for (name, index) in [("y", 0), ("dx", 1), ("dw", 2)] {
            let difference = maxAbsDifference(parallel[index], serial[index])
            XCTAssertEqual(difference, 0, "\(name): 1 and 3 threads max abs difference \(difference)")
        }
    }

    func testMismatchedShapesThrow() throws {
        let backend = ReferenceBackend<Double>()
        let geometry = try ConvolutionGeometry(
            inputChannels: 3, inputHeight: 4, inputWidth: 4, outputChannels: 2, kernel: (3, 3), stride: (1, 1),
            padding: .same)
        let x = try backend.tensor([Double](repeating: 0, count: 48), 1, 3, 4, 4)
        let wrongWeights = try backend.tensor([Double](repeating: 0, count: 36), 2, 2, 3, 3)
        XCTAssertThrowsError(try backend.convolution(x, weights: wrongWeights, bias: nil, geometry: geometry)) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("convolution"), message)
            XCTAssertTrue(message.contains("2x2x3x3"), message)
            XCTAssertTrue(message.contains("2x3x3x3"), message)
        }

        let weights = try backend.tensor([Double](repeating: 0, count: 54), 2, 3, 3, 3)
        let wrongBias = try backend.tensor([0, 0, 0], 3)
        XCTAssertThrowsError(try backend.convolution(x, weights: weights, bias: wrongBias, geometry: geometry))

        let wrongX = try backend.tensor([Double](repeating: 0, count: 45), 1, 3, 3, 5)
        XCTAssertThrowsError(try backend.convolution(wrongX, weights: weights, bias: nil, geometry: geometry))

        let wrongDy = try backend.tensor([Double](repeating: 0, count: 18), 1, 2, 3, 3)
        XCTAssertThrowsError(
            try backend.convolutionBackward(
                wrongDy, x: x, weights: weights, hasBias: false, geometry: geometry, computeInputGradient: true)
        ) {
            let message = String(describing: $0)
            XCTAssertTrue(message.contains("convolutionBackward"), message)
            XCTAssertTrue(message.contains("1x2x3x3"), message)
        }
    }
}
