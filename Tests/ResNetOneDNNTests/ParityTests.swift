import XCTest
import ResNetKit
import ResNetOneDNN

/// Each operation on the oneDNN backend against the reference backend, forward and backward,
/// over a table of shapes. Both compute in float32 and sum in different orders, so results
/// agree to a relative 1e-4 of each tensor's largest magnitude, not bit for bit.
final class ParityTests: XCTestCase {
    private let tolerance = 1e-4
    private var fast: OneDNNBackend!
    private let reference = ReferenceBackend<Float>(threads: 2)
    private var generator = ResNetKit.SeededGenerator(seed: 42)

    override func setUpWithError() throws {
        fast = try OneDNNBackend(threads: 2)
    }

    private func random(_ shape: TensorShape) -> [Float] {
        (0..<shape.elementCount).map { _ in generator.nextUnitFloat() * 2 - 1 }
    }

    /// Creates the same values on both backends.
    private func pair(_ values: [Float], _ shape: TensorShape) throws -> (Tensor, Tensor) {
        (try fast.makeTensor(values, shape: shape), try reference.makeTensor(values, shape: shape))
    }

    private func assertClose(_ name: String, _ a: Tensor?, _ b: Tensor?, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let a, let b else {
            XCTAssertTrue(a == nil && b == nil, "\(name): one backend returned no tensor", file: file, line: line)
            return
        }
        XCTAssertEqual(a.shape, b.shape, "\(name): shapes", file: file, line: line)
        let difference = TensorDifference(
            name: name, values: try fast.values(of: a), reference: try reference.values(of: b), tolerance: tolerance)
        XCTAssertTrue(
            difference.passed,
            "\(name): max abs difference \(difference.maxAbsolute), relative \(difference.maxRelative)",
            file: file, line: line)
    }

    func testConvolutionMatches() throws {
        // (N, C, H, W, K, kernel, stride, padding, bias)
        let cases: [(Int, Int, Int, Int, Int, Int, Int, Padding, Bool)] = [
            (1, 1, 7, 7, 3, 3, 1, .same, true),
            (3, 3, 8, 8, 17, 3, 2, .same, true),
            (2, 10, 9, 11, 16, 1, 1, .valid, false),
            (1, 17, 6, 6, 10, 3, 1, .valid, true),
            (5, 3, 15, 15, 64, 7, 1, .same, true),
            (2, 16, 10, 10, 32, 1, 2, .same, false),
            (3, 32, 12, 12, 32, 3, 1, .explicit(top: 1, bottom: 1, left: 1, right: 1), false),
            (2, 64, 14, 14, 64, 3, 2, .explicit(top: 1, bottom: 1, left: 1, right: 1), false),
            (1, 3, 16, 16, 64, 7, 2, .explicit(top: 3, bottom: 3, left: 3, right: 3), false),
        ]
        for (n, c, h, w, k, kernel, stride, padding, bias) in cases {
            let name = "conv N\(n) C\(c) \(h)x\(w) K\(k) \(kernel)x\(kernel)/\(stride) \(padding)"
            let geometry = try ConvolutionGeometry(
                inputChannels: c, inputHeight: h, inputWidth: w, outputChannels: k,
                kernel: (kernel, kernel), stride: (stride, stride), padding: padding)
            let x = try pair(random(geometry.inputShape(batch: n)), geometry.inputShape(batch: n))
            let weights = try pair(random(geometry.weightShape), geometry.weightShape)
            let biases = bias ? try pair(random(TensorShape(k)), TensorShape(k)) : nil
            let prepared = try fast.prepareConvolutionWeights(weights.0, geometry: geometry, batch: n)

            let y = (
                try fast.convolution(x.0, weights: prepared, bias: biases?.0, geometry: geometry),
                try reference.convolution(x.1, weights: weights.1, bias: biases?.1, geometry: geometry)
            )
            try assertClose("\(name) y", y.0, y.1)

            let dyValues = random(geometry.outputShape(batch: n))
            let dy = try pair(dyValues, geometry.outputShape(batch: n))
            let gradients = (
                try fast.convolutionBackward(
                    dy.0, x: x.0, weights: prepared, hasBias: bias, geometry: geometry, computeInputGradient: true),
                try reference.convolutionBackward(
                    dy.1, x: x.1, weights: weights.1, hasBias: bias, geometry: geometry, computeInputGradient: true)
            )
            try assertClose("\(name) dx", gradients.0.dx, gradients.1.dx)
            try assertClose("\(name) dw", gradients.0.dw, gradients.1.dw)
            try assertClose("\(name) db", gradients.0.db, gradients.1.db)
        }
    }

    func testBatchNormMatchesInBothModes() throws {
        for (n, c, h, w) in [(2, 3, 5, 5), (1, 17, 4, 6), (4, 64, 7, 7), (3, 10, 1, 2)] {
            let name = "batch norm \(n)x\(c)x\(h)x\(w)"
            let shape = TensorShape(n, c, h, w)
            let x = try pair(random(shape).map { $0 * 3 + 1 }, shape)
            let scale = try pair(random(TensorShape(c)).map { $0 + 1.5 }, TensorShape(c))
            let shift = try pair(random(TensorShape(c)), TensorShape(c))

            let training = (
                try fast.batchNormTraining(x.0, scale: scale.0, shift: shift.0, epsilon: 1e-3),
                try reference.batchNormTraining(x.1, scale: scale.1, shift: shift.1, epsilon: 1e-3)
            )
            try assertClose("\(name) training y", training.0.y, training.1.y)
            try assertClose("\(name) mean", training.0.mean, training.1.mean)
            try assertClose("\(name) variance", training.0.variance, training.1.variance)

            let dy = try pair(random(shape), shape)
            let gradients = (
                try fast.batchNormBackward(
                    dy.0, x: x.0, scale: scale.0, mean: training.0.mean, variance: training.0.variance, epsilon: 1e-3),
                try reference.batchNormBackward(
                    dy.1, x: x.1, scale: scale.1, mean: training.1.mean, variance: training.1.variance, epsilon: 1e-3)
            )
            try assertClose("\(name) dx", gradients.0.dx, gradients.1.dx)
            try assertClose("\(name) dscale", gradients.0.dscale, gradients.1.dscale)
            try assertClose("\(name) dshift", gradients.0.dshift, gradients.1.dshift)

            let mean = try pair(random(TensorShape(c)), TensorShape(c))
            let variance = try pair(random(TensorShape(c)).map { $0 + 1.2 }, TensorShape(c))
            try assertClose(
                "\(name) inference y",
                try fast.batchNormInference(x.0, scale: scale.0, shift: shift.0, mean: mean.0, variance: variance.0, epsilon: 1e-3),
                try reference.batchNormInference(x.1, scale: scale.1, shift: shift.1, mean: mean.1, variance: variance.1, epsilon: 1e-3))
        }
    }

    func testPoolingReLUAddAndDenseMatch() throws {
        // Max pooling: windows that meet the border, overlapping windows, padding.
        let poolCases: [(TensorShape, Int, Int, Padding)] = [
            (TensorShape(2, 3, 7, 7), 3, 3, .valid),
            (TensorShape(1, 17, 8, 8), 3, 2, .same),
            (TensorShape(3, 16, 9, 9), 3, 2, .explicit(top: 1, bottom: 1, left: 1, right: 1)),
            (TensorShape(2, 64, 10, 10), 2, 2, .valid),
        ]
        for (shape, window, stride, padding) in poolCases {
            let name = "max pool \(shape) \(window)/\(stride) \(padding)"
            let geometry = try PoolGeometry(
                channels: shape[1], inputHeight: shape[2], inputWidth: shape[3],
                window: (window, window), stride: (stride, stride), padding: padding)
            let x = try pair(random(shape), shape)
            let y = (
                try fast.maxPool(x.0, geometry: geometry, training: true),
                try reference.maxPool(x.1, geometry: geometry, training: true)
            )
            try assertClose("\(name) y", y.0.y, y.1.y)
            let outputShape = geometry.outputShape(batch: shape[0])
            let dy = try pair(random(outputShape), outputShape)
            try assertClose(
                "\(name) dx",
                try fast.maxPoolBackward(dy.0, x: x.0, forward: y.0, geometry: geometry),
                try reference.maxPoolBackward(dy.1, x: x.1, forward: y.1, geometry: geometry))
        }

        for shape in [TensorShape(2, 3, 5, 5), TensorShape(3, 64, 6, 6), TensorShape(1, 17, 3, 4)] {
            let x = try pair(random(shape), shape)
            let relu = (try fast.relu(x.0), try reference.relu(x.1))
            try assertClose("relu \(shape)", relu.0, relu.1)
            let dy = try pair(random(shape), shape)
            try assertClose(
                "relu backward \(shape)", try fast.reluBackward(dy.0, y: relu.0), try reference.reluBackward(dy.1, y: relu.1))

            let other = try pair(random(shape), shape)
            try assertClose("add \(shape)", try fast.add(x.0, other.0), try reference.add(x.1, other.1))

            let pooled = (try fast.globalAveragePool(x.0), try reference.globalAveragePool(x.1))
            try assertClose("global average pool \(shape)", pooled.0, pooled.1)
            let dPooled = try pair(random(TensorShape(shape[0], shape[1])), TensorShape(shape[0], shape[1]))
            try assertClose(
                "global average pool backward \(shape)",
                try fast.globalAveragePoolBackward(dPooled.0, inputShape: shape),
                try reference.globalAveragePoolBackward(dPooled.1, inputShape: shape))

            let flat = TensorShape(shape[0], shape.elementCount / shape[0])
            try assertClose("reshape \(shape)", try fast.reshape(relu.0, to: flat), try reference.reshape(relu.1, to: flat))
        }

        for (n, inputs, outputs) in [(1, 3, 2), (5, 64, 10), (4, 17, 33)] {
            let x = try pair(random(TensorShape(n, inputs)), TensorShape(n, inputs))
            let weights = try pair(random(TensorShape(outputs, inputs)), TensorShape(outputs, inputs))
            let bias = try pair(random(TensorShape(outputs)), TensorShape(outputs))
            let y = (
                try fast.dense(x.0, weights: weights.0, bias: bias.0),
                try reference.dense(x.1, weights: weights.1, bias: bias.1)
            )
            try assertClose("dense \(n)x\(inputs)->\(outputs) y", y.0, y.1)
            let dy = try pair(random(TensorShape(n, outputs)), TensorShape(n, outputs))
            let gradients = (
                try fast.denseBackward(dy.0, x: x.0, weights: weights.0, hasBias: true, computeInputGradient: true),
                try reference.denseBackward(dy.1, x: x.1, weights: weights.1, hasBias: true, computeInputGradient: true)
            )
            try assertClose("dense dx", gradients.0.dx, gradients.1.dx)
            try assertClose("dense dw", gradients.0.dw, gradients.1.dw)
            try assertClose("dense db", gradients.0.db, gradients.1.db)
        }
    }
}
