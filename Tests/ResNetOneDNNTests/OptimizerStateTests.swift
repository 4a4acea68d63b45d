import ResNetKit
import XCTest

import ResNetOneDNN

/// Optimizer state restored in the canonical layout onto a kernel that oneDNN keeps blocked.
final class OptimizerStateTests: XCTestCase {
    func testRestoreOntoBlockedKernelMatchesReference() throws {
        // Direct convolutions, because the Winograd kernels read the kernel in the plain layout.
        let onednn = try OneDNNBackend(threads: 1, winograd: false)
        let reference = ReferenceBackend<Float>(threads: 1)
        let shape = TensorShape(16, 16, 3, 3)
        let geometry = try ConvolutionGeometry(
            inputChannels: 16, inputHeight: 8, inputWidth: 8, outputChannels: 16, kernel: (3, 3), stride: (1, 1),
            padding: .same)
        let weights = randomValues(shape.elementCount, seed: 1)
        let gradient = randomValues(shape.elementCount, seed: 2)
        let m = randomValues(shape.elementCount, in: -0.1...0.1, seed: 3)
        let v = randomValues(shape.elementCount, in: 0...0.01, seed: 4)

        let plain = try onednn.makeTensor(weights, shape: shape)
        let blocked = try onednn.prepareConvolutionWeights(plain, geometry: geometry, batch: 4)
        // update rejects tensors of different layouts, so this confirms the kernel is blocked.
        XCTAssertThrowsError(
            try onednn.update([blocked, try onednn.makeTensor(gradient, shape: shape)], with: NoUpdate()),
            "oneDNN kept the kernel in the plain layout, so this test checks nothing")

        var results: [[Float]] = []
        for (backend, value) in [(onednn as Backend, blocked), (reference, try reference.makeTensor(weights, shape: shape))] {
            let kernel = Parameter(name: "conv2d.kernel", role: .kernel, shape: shape, value: value)
            let adam = Adam(learningRate: 0.01, weightDecay: .decoupled(0.1))
            try adam.restoreState(
                [
                    (name: "conv2d.kernel.m", tensor: try backend.makeTensor(m, shape: shape)),
                    (name: "conv2d.kernel.v", tensor: try backend.makeTensor(v, shape: shape)),
                ],
                stepCount: 5)
            // The gradient must share the kernel's layout, as a backward pass would give it.
            let dw = try backend.add(try backend.zeros(like: value), try backend.makeTensor(gradient, shape: shape))
            try adam.step([kernel], gradients: [dw], backend: backend)
            results.append(try backend.values(of: kernel.value))
        }

        let maxDifference = zip(results[0], results[1]).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(maxDifference, 1e-6, "max difference between oneDNN and reference weights")
        let maxChange = zip(results[1], weights).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(maxChange, 1e-3, "the step moved the weights")
    }
}

/// An update that changes nothing, to probe whether `update` accepts a set of tensors.
private struct NoUpdate: ElementwiseUpdate {
    func apply(_ buffers: [UnsafeMutableBufferPointer<Float>]) {}
    func apply(_ buffers: [UnsafeMutableBufferPointer<Double>]) {}
}
