import Foundation

/// Updates parameters in place from their gradients.
public protocol Optimizer: AnyObject {
    var learningRate: Double { get set }

    /// Applies one step. `gradients[i]` belongs to `parameters[i]` and has its layout.
    func step(_ parameters: [Parameter], gradients: [Tensor], backend: Backend) throws
}

/// Adam (Kingma and Ba, 2015) with Keras's defaults and update rule.
///
/// Keras folds the bias correction into the step size and adds epsilon to the uncorrected
/// sqrt(v): w -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon). PyTorch adds
/// epsilon to the corrected sqrt(v) instead; the two differ only while v is tiny.
public final class Adam: Optimizer {
    public var learningRate: Double
    public let beta1: Double
    public let beta2: Double
    public let epsilon: Double
    public private(set) var stepCount = 0
    private var moments: [ObjectIdentifier: (first: Tensor, second: Tensor)] = [:]

    public init(learningRate: Double = 0.001, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-7) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    public func step(_ parameters: [Parameter], gradients: [Tensor], backend: Backend) throws {
        guard parameters.count == gradients.count else {
            throw BackendError("adam", "\(parameters.count) parameters but \(gradients.count) gradients")
        }
        stepCount += 1
        let t = Double(stepCount)
        let correction = (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))
        let update = AdamUpdate(
            stepSize: learningRate * correction, beta1: beta1, beta2: beta2, epsilon: epsilon)

        for (parameter, gradient) in zip(parameters, gradients) {
            let key = ObjectIdentifier(parameter)
            let state: (first: Tensor, second: Tensor)
            if let existing = moments[key] {
                state = existing
            } else {
                state = (try backend.zeros(like: parameter.value), try backend.zeros(like: parameter.value))
                moments[key] = state
            }
            try backend.update([parameter.value, gradient, state.first, state.second], with: update)
        }
    }
}

/// One Adam step on buffers `[w, dw, m, v]`.
struct AdamUpdate: ElementwiseUpdate {
    var stepSize: Double
    var beta1: Double
    var beta2: Double
    var epsilon: Double

    func apply(_ buffers: [UnsafeMutableBufferPointer<Float>]) {
        run(buffers)
    }

    func apply(_ buffers: [UnsafeMutableBufferPointer<Double>]) {
        run(buffers)
    }

    @inline(__always)
    private func run<Scalar: BinaryFloatingPoint>(_ buffers: [UnsafeMutableBufferPointer<Scalar>]) {
        let (w, dw, m, v) = (buffers[0], buffers[1], buffers[2], buffers[3])
        let stepSize = Scalar(stepSize)
        let beta1 = Scalar(beta1)
        let beta2 = Scalar(beta2)
        let epsilon = Scalar(epsilon)
        for index in 0..<w.count {
            let gradient = dw[index]
            let first = beta1 * m[index] + (1 - beta1) * gradient
            let second = beta2 * v[index] + (1 - beta2) * gradient * gradient
            m[index] = first
            v[index] = second
            w[index] -= stepSize * first / (second.squareRoot() + epsilon)
        }
    }
}
