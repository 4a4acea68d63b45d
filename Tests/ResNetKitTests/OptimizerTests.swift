import Foundation
import XCTest
import ResNetKit

/// Each optimizer's first steps on one-element parameters, against values worked out by hand in
/// the comments. Adam's expectations use the bias-corrected form
/// `lr * mhat / (sqrt(vhat) + epsilon / sqrt(1 - beta2^t))`, which equals Keras's rule.
final class OptimizerTests: XCTestCase {
    private let backend = ReferenceBackend<Double>(threads: 1)

    private func parameter(_ name: String, _ role: Parameter.Role, _ value: Double) throws -> Parameter {
        Parameter(
            name: name, role: role, shape: TensorShape(1),
            value: try backend.makeTensor(scalars: [value], shape: TensorShape(1)))
    }

    private func gradient(_ value: Double) throws -> Tensor {
        try backend.makeTensor(scalars: [value], shape: TensorShape(1))
    }

    private func value(_ parameter: Parameter) throws -> Double {
        try backend.scalars(of: parameter.value)[0]
    }

    func testSGDMomentumFirstTwoSteps() throws {
        let w = try parameter("w", .kernel, 1)
        let sgd = SGD(learningRate: 0.1, momentum: 0.9)

        // v = 0.5, w = 1 - 0.1 * 0.5.
        try sgd.step([w], gradients: [try gradient(0.5)], backend: backend)
        XCTAssertEqual(try value(w), 0.95, accuracy: 1e-12)

        // v = 0.9 * 0.5 - 0.2 = 0.25, w = 0.95 - 0.1 * 0.25.
        try sgd.step([w], gradients: [try gradient(-0.2)], backend: backend)
        XCTAssertEqual(try value(w), 0.925, accuracy: 1e-12)
        XCTAssertEqual(sgd.stepCount, 2)
    }

    func testSGDNesterovFirstTwoSteps() throws {
        let w = try parameter("w", .kernel, 1)
        let sgd = SGD(learningRate: 0.1, momentum: 0.9, nesterov: true)

        // v = 0.5, w = 1 - 0.1 * (0.5 + 0.9 * 0.5) = 1 - 0.095.
        try sgd.step([w], gradients: [try gradient(0.5)], backend: backend)
        XCTAssertEqual(try value(w), 0.905, accuracy: 1e-12)

        // v = 0.25, w = 0.905 - 0.1 * (-0.2 + 0.9 * 0.25) = 0.905 - 0.0025.
        try sgd.step([w], gradients: [try gradient(-0.2)], backend: backend)
        XCTAssertEqual(try value(w), 0.9025, accuracy: 1e-12)
    }

    func testSGDWithoutMomentumKeepsNoState() throws {
        let w = try parameter("w", .kernel, 1)
        let sgd = SGD(learningRate: 0.1)
        try sgd.step([w], gradients: [try gradient(0.5)], backend: backend)
        try sgd.step([w], gradients: [try gradient(0.5)], backend: backend)
        XCTAssertEqual(try value(w), 0.9, accuracy: 1e-12)
        XCTAssertTrue(sgd.stateTensors().isEmpty)
    }

    func testSGDL2DecaySkipsBiasUnlessDecayAll() throws {
        // Kernel: g = 0.5 + 0.1 * 2 = 0.7, w = 2 - 0.1 * 0.7. Bias: g = 0.5, w = 2 - 0.05.
        let kernel = try parameter("conv.kernel", .kernel, 2)
        let bias = try parameter("conv.bias", .bias, 2)
        let scale = try parameter("bn.scale", .scale, 2)
        let sgd = SGD(learningRate: 0.1, weightDecay: .l2(0.1))
        try sgd.step(
            [kernel, bias, scale], gradients: [try gradient(0.5), try gradient(0.5), try gradient(0.5)], backend: backend)
        XCTAssertEqual(try value(kernel), 1.93, accuracy: 1e-12)
        XCTAssertEqual(try value(bias), 1.95, accuracy: 1e-12)
        XCTAssertEqual(try value(scale), 1.95, accuracy: 1e-12)

        let all = SGD(learningRate: 0.1, weightDecay: .l2(0.1), decayAll: true)
        let otherBias = try parameter("conv.bias", .bias, 2)
        try all.step([otherBias], gradients: [try gradient(0.5)], backend: backend)
        XCTAssertEqual(try value(otherBias), 1.93, accuracy: 1e-12)
    }

    func testAdamWDecoupledDecayFirstTwoSteps() throws {
        let kernel = try parameter("dense.kernel", .kernel, 2)
        let bias = try parameter("dense.bias", .bias, 2)
        let adamW = Adam(learningRate: 0.1, weightDecay: .decoupled(0.5))
        let epsilon = 1e-7

        // Step 1, g = 0.5: mhat = 0.5, vhat = 0.25, so the Adam part is 0.1 * 0.5 / (0.5 + eps').
        // The kernel also loses lr * wd * w = 0.1 * 0.5 * 2 = 0.1; the bias does not.
        try adamW.step([kernel, bias], gradients: [try gradient(0.5), try gradient(0.5)], backend: backend)
        let adam1 = 0.1 * 0.5 / (0.5 + epsilon / 0.001.squareRoot())
        XCTAssertEqual(try value(kernel), 2 - 0.1 - adam1, accuracy: 1e-12)
        XCTAssertEqual(try value(bias), 2 - adam1, accuracy: 1e-12)

        // Step 2, g = -0.3: m = 0.045 - 0.03 = 0.015, v = 0.00024975 + 0.00009 = 0.00033975,
        // mhat = m / 0.19, vhat = v / 0.001999. The kernel loses 0.05 of its step-1 value.
        let kernel1 = try value(kernel)
        let bias1 = try value(bias)
        try adamW.step([kernel, bias], gradients: [try gradient(-0.3), try gradient(-0.3)], backend: backend)
        let adam2 = 0.1 * (0.015 / 0.19) / ((0.00033975 / 0.001999).squareRoot() + epsilon / 0.001999.squareRoot())
        XCTAssertEqual(try value(kernel), kernel1 - 0.05 * kernel1 - adam2, accuracy: 1e-12)
        XCTAssertEqual(try value(bias), bias1 - adam2, accuracy: 1e-12)
    }

    func testAdamL2PenaltyAndBiasCorrection() throws {
        let kernel = try parameter("conv.kernel", .kernel, 2)
        let adam = Adam(learningRate: 0.1, weightDecay: .l2(0.1))
        let epsilon = 1e-7

        // Step 1: g = 0.5 + 0.1 * 2 = 0.7, mhat = 0.7, vhat = 0.49.
        try adam.step([kernel], gradients: [try gradient(0.5)], backend: backend)
        let w1 = 2 - 0.1 * 0.7 / (0.7 + epsilon / 0.001.squareRoot())
        XCTAssertEqual(try value(kernel), w1, accuracy: 1e-12)

        // Step 2: g = -0.3 + 0.1 * w1, m = 0.9 * 0.07 + 0.1 * g, v = 0.999 * 0.00049 + 0.001 * g^2,
        // corrected by 1 - 0.9^2 = 0.19 and 1 - 0.999^2 = 0.001999.
        try adam.step([kernel], gradients: [try gradient(-0.3)], backend: backend)
        let g2 = -0.3 + 0.1 * w1
        let m2 = 0.9 * 0.07 + 0.1 * g2
        let v2 = 0.999 * 0.00049 + 0.001 * g2 * g2
        let w2 = w1 - 0.1 * (m2 / 0.19) / ((v2 / 0.001999).squareRoot() + epsilon / 0.001999.squareRoot())
        XCTAssertEqual(try value(kernel), w2, accuracy: 1e-12)
        XCTAssertEqual(adam.stepCount, 2)
    }

    func testAdamStateNamedBySlot() throws {
        let kernel = try parameter("conv.kernel", .kernel, 2)
        let bias = try parameter("conv.bias", .bias, 1)
        let adam = Adam(learningRate: 0.1)
        try adam.step([kernel, bias], gradients: [try gradient(0.5), try gradient(-0.2)], backend: backend)

        let state = adam.stateTensors()
        XCTAssertEqual(state.map(\.name), ["conv.kernel.m", "conv.kernel.v", "conv.bias.m", "conv.bias.v"])
        // m = 0.1 * g, v = 0.001 * g^2.
        let values = try state.map { try backend.scalars(of: $0.tensor)[0] }
        XCTAssertEqual(values[0], 0.05, accuracy: 1e-15)
        XCTAssertEqual(values[1], 0.00025, accuracy: 1e-15)
        XCTAssertEqual(values[2], -0.02, accuracy: 1e-15)
        XCTAssertEqual(values[3], 0.00004, accuracy: 1e-15)
    }

    func testSGDStateIsVelocity() throws {
        let w = try parameter("w", .kernel, 1)
        let sgd = SGD(learningRate: 0.1, momentum: 0.9)
        try sgd.step([w], gradients: [try gradient(0.5)], backend: backend)
        try sgd.step([w], gradients: [try gradient(-0.2)], backend: backend)
        let state = sgd.stateTensors()
        XCTAssertEqual(state.map(\.name), ["w.momentum"])
        XCTAssertEqual(try backend.scalars(of: state[0].tensor)[0], 0.25, accuracy: 1e-12)
    }

    func testRestoredAdamContinuesAsUninterrupted() throws {
        let first = try parameter("conv.kernel", .kernel, 2)
        let original = Adam(learningRate: 0.1, weightDecay: .decoupled(0.1))
        try original.step([first], gradients: [try gradient(0.5)], backend: backend)
        try original.step([first], gradients: [try gradient(-0.3)], backend: backend)

        // Copy the weight and the state through canonical values, as a checkpoint would.
        let second = try parameter("conv.kernel", .kernel, try value(first))
        let copies = try original.stateTensors().map { entry in
            (name: entry.name, tensor: try backend.makeTensor(backend.values(of: entry.tensor), shape: entry.tensor.shape))
        }
        let resumed = Adam(learningRate: 0.1, weightDecay: .decoupled(0.1))
        try resumed.restoreState(copies, stepCount: original.stepCount)
        XCTAssertEqual(resumed.stepCount, 2)

        try original.step([first], gradients: [try gradient(0.2)], backend: backend)
        try resumed.step([second], gradients: [try gradient(0.2)], backend: backend)
        // Float32 round trip of m and v, so agreement to about 1e-7 relative.
        XCTAssertEqual(try value(second), try value(first), accuracy: 1e-7)
        XCTAssertNotEqual(try value(second), 2, "the step moved the weight")
    }

    func testRestoreRejectsIncompleteOrForeignState() throws {
        let zero = try gradient(0)
        let adam = Adam()
        XCTAssertThrowsError(try adam.restoreState([(name: "w.m", tensor: zero)], stepCount: 1)) { error in
            XCTAssertTrue("\(error)".contains("w.v is missing"), "\(error)")
        }
        XCTAssertThrowsError(try adam.restoreState([(name: "w.momentum", tensor: zero)], stepCount: 1)) { error in
            XCTAssertTrue("\(error)".contains("w.momentum"), "\(error)")
        }
        XCTAssertThrowsError(try adam.restoreState([], stepCount: 3)) { error in
            XCTAssertTrue("\(error)".contains("empty"), "\(error)")
        }
        XCTAssertThrowsError(try adam.restoreState([], stepCount: -1))

        // Restored state for "w" does not cover parameter "u", so the next step throws.
        try adam.restoreState([(name: "w.m", tensor: zero), (name: "w.v", tensor: try gradient(0))], stepCount: 1)
        let u = try parameter("u", .kernel, 1)
        XCTAssertThrowsError(try adam.step([u], gradients: [try gradient(1)], backend: backend)) { error in
            XCTAssertTrue("\(error)".contains("u"), "\(error)")
        }
        XCTAssertEqual(try value(u), 1, "a rejected step leaves the weight alone")
    }

    func testRestoreRejectsShapeMismatchAtStep() throws {
        let adam = Adam()
        let wrong = try backend.makeTensor(scalars: [0, 0], shape: TensorShape(2))
        try adam.restoreState(
            [(name: "w.m", tensor: wrong), (name: "w.v", tensor: try backend.makeTensor(scalars: [0, 0], shape: TensorShape(2)))],
            stepCount: 1)
        let w = try parameter("w", .kernel, 1)
        XCTAssertThrowsError(try adam.step([w], gradients: [try gradient(1)], backend: backend)) { error in
            XCTAssertTrue("\(error)".contains("shape"), "\(error)")
        }
    }
}
