import Foundation

/// Updates parameters in place from their gradients.
///
/// An optimizer keeps its state per parameter, keyed by the parameter's name, and exposes it
/// for checkpoints through `stateTensors()` and `restoreState(_:stepCount:)`.
public protocol Optimizer: AnyObject {
    /// The step size of the next step, which a schedule may set before each step.
    var learningRate: Double { get set }

    /// Steps taken so far, counting restored ones.
    var stepCount: Int { get }

    /// Applies one step. `gradients[i]` belongs to `parameters[i]` and has its layout.
    func step(_ parameters: [Parameter], gradients: [Tensor], backend: Backend) throws

    /// Returns the state tensors, each named `<parameter name>.<slot>`, such as
    /// `conv2d.kernel.m`, in the order the parameters were first stepped. The tensors are the
    /// optimizer's own and in the backend's layout, so read them with `backend.values(of:)`.
    func stateTensors() -> [(name: String, tensor: Tensor)]

    /// Replaces the state with tensors named as `stateTensors()` names them, and the step count.
    ///
    /// The tensors may be in the canonical layout, because the next step copies each into its
    /// parameter's layout. That step throws when the state does not cover exactly the
    /// parameters it updates.
    func restoreState(_ tensors: [(name: String, tensor: Tensor)], stepCount: Int) throws
}

/// How an optimizer applies weight decay with coefficient `wd`.
public enum WeightDecay: Sendable, Equatable, CustomStringConvertible {
    case none
    /// An L2 penalty: `g += wd * w` before the update, as `weight_decay` in PyTorch's `SGD` and
    /// `Adam`. With Adam, the penalty is scaled by the moments like the rest of the gradient.
    case l2(Double)
    /// Decoupled weight decay: `w -= lr * wd * w` beside the gradient's update, as in
    /// Loshchilov and Hutter, "Decoupled Weight Decay Regularization" (arXiv 1711.05101), and
    /// PyTorch's `AdamW`.
    case decoupled(Double)

    /// The coefficient `wd`, zero for `.none`.
    public var coefficient: Double {
        switch self {
        case .none: 0
        case .l2(let value), .decoupled(let value): value
        }
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .l2(let value): "L2 \(value)"
        case .decoupled(let value): "decoupled \(value)"
        }
    }

    /// Returns the L2 coefficient and the decoupled factor `lr * wd` for one parameter, or zeros
    /// when the parameter does not decay.
    func factors(learningRate: Double, decays: Bool) -> (l2: Double, decoupled: Double) {
        guard decays else { return (0, 0) }
        switch self {
        case .none: return (0, 0)
        case .l2(let value): return (value, 0)
        case .decoupled(let value): return (0, learningRate * value)
        }
    }
}

/// A failure to step or to restore optimizer state, naming the parameter or state tensor.
public struct OptimizerError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

// MARK: - SGD

/// Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.
///
/// Follows PyTorch's `SGD` with zero dampening, not Keras's, which scales the velocity by the
/// learning rate. With gradient `g` (plus `wd * w` under L2 decay) and velocity `v`, starting
/// at zero:
///
///     v = momentum * v + g
///     w -= lr * v                    (classical momentum)
///     w -= lr * (g + momentum * v)   (Nesterov, with the new v)
///
/// With zero momentum the step is `w -= lr * g` and no state is kept.
public final class SGD: Optimizer {
    public var learningRate: Double
    public let momentum: Double
    public let nesterov: Bool
    public let weightDecay: WeightDecay
    /// Whether weight decay applies to every parameter rather than only to those whose
    /// `decaysByDefault` is true (kernels).
    public let decayAll: Bool
    public private(set) var stepCount = 0
    private var slots: OptimizerSlots

    /// Creates the optimizer; `nesterov` requires a positive `momentum`.
    public init(
        learningRate: Double = 0.01, momentum: Double = 0, nesterov: Bool = false, weightDecay: WeightDecay = .none,
        decayAll: Bool = false
    ) {
        precondition(!nesterov || momentum > 0, "Nesterov momentum needs a positive momentum")
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.decayAll = decayAll
        self.slots = OptimizerSlots(slotNames: momentum > 0 ? ["momentum"] : [])
    }

    public func step(_ parameters: [Parameter], gradients: [Tensor], backend: Backend) throws {
        try checkCounts(parameters, gradients, "sgd")
        try slots.prepare(for: parameters, backend: backend)
        stepCount += 1

        for (parameter, gradient) in zip(parameters, gradients) {
            let decay = weightDecay.factors(learningRate: learningRate, decays: decayAll || parameter.decaysByDefault)
            let update = SGDUpdate(
                learningRate: learningRate, momentum: momentum, nesterov: nesterov, l2: decay.l2,
                decoupled: decay.decoupled)
            let state = try slots.state(for: parameter, backend: backend)
            try backend.update([parameter.value, gradient] + state, with: update)
        }
    }

    public func stateTensors() -> [(name: String, tensor: Tensor)] {
        slots.namedTensors()
    }

    public func restoreState(_ tensors: [(name: String, tensor: Tensor)], stepCount: Int) throws {
        try slots.restore(tensors, stepCount: stepCount)
        self.stepCount = stepCount
    }
}

/// One SGD step on buffers `[w, dw]`, or `[w, dw, v]` with momentum.
struct SGDUpdate: ElementwiseUpdate {
    var learningRate: Double
    var momentum: Double
    var nesterov: Bool
    var l2: Double
    var decoupled: Double

    func apply(_ buffers: [UnsafeMutableBufferPointer<Float>]) {
        run(buffers)
    }

    func apply(_ buffers: [UnsafeMutableBufferPointer<Double>]) {
        run(buffers)
    }

    @inline(__always)
    private func run<Scalar: BinaryFloatingPoint>(_ buffers: [UnsafeMutableBufferPointer<Scalar>]) {
        let (w, dw) = (buffers[0], buffers[1])
        let learningRate = Scalar(learningRate)
        let momentum = Scalar(momentum)
        let l2 = Scalar(l2)
        let decoupled = Scalar(decoupled)

        guard buffers.count == 3 else {
            for index in 0..<w.count {
                let weight = w[index]
                let gradient = dw[index] + l2 * weight
                w[index] = weight - decoupled * weight - learningRate * gradient
            }
            return
        }

        let v = buffers[2]
        for index in 0..<w.count {
            let weight = w[index]
            let gradient = dw[index] + l2 * weight
            let velocity = momentum * v[index] + gradient
            v[index] = velocity
            let direction = nesterov ? gradient + momentum * velocity : velocity
            w[index] = weight - decoupled * weight - learningRate * direction
        }
    }
}

// MARK: - Adam and AdamW

/// Adam (Kingma and Ba, 2015) with Keras's defaults and update rule, and optional weight decay:
/// `.l2` gives Adam with an L2 penalty, `.decoupled` gives AdamW.
///
/// Keras folds the bias correction into the step size and adds epsilon to the uncorrected
/// sqrt(v): w -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon). PyTorch adds
/// epsilon to the corrected sqrt(v) instead; the two differ only while v is tiny. Decoupled decay
/// subtracts `lr * wd * w`, with the scheduled `lr` and the weight before the step, as PyTorch's
/// `AdamW` does.
public final class Adam: Optimizer {
    public var learningRate: Double
    public let beta1: Double
    public let beta2: Double
    public let epsilon: Double
    public let weightDecay: WeightDecay
    /// Whether weight decay applies to every parameter rather than only to those whose
    /// `decaysByDefault` is true (kernels).
    public let decayAll: Bool
    public private(set) var stepCount = 0
    private var slots = OptimizerSlots(slotNames: ["m", "v"])

    public init(
        learningRate: Double = 0.001, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-7,
        weightDecay: WeightDecay = .none, decayAll: Bool = false
    ) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decayAll = decayAll
    }

    public func step(_ parameters: [Parameter], gradients: [Tensor], backend: Backend) throws {
        try checkCounts(parameters, gradients, "adam")
        try slots.prepare(for: parameters, backend: backend)
        stepCount += 1
        let t = Double(stepCount)
        let correction = (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))

        for (parameter, gradient) in zip(parameters, gradients) {
            let decay = weightDecay.factors(learningRate: learningRate, decays: decayAll || parameter.decaysByDefault)
            let update = AdamUpdate(
                stepSize: learningRate * correction, beta1: beta1, beta2: beta2, epsilon: epsilon, l2: decay.l2,
                decoupled: decay.decoupled)
            let state = try slots.state(for: parameter, backend: backend)
            try backend.update([parameter.value, gradient] + state, with: update)
        }
    }

    public func stateTensors() -> [(name: String, tensor: Tensor)] {
        slots.namedTensors()
    }

    public func restoreState(_ tensors: [(name: String, tensor: Tensor)], stepCount: Int) throws {
        try slots.restore(tensors, stepCount: stepCount)
        self.stepCount = stepCount
    }
}

/// One Adam step on buffers `[w, dw, m, v]`.
struct AdamUpdate: ElementwiseUpdate {
    var stepSize: Double
    var beta1: Double
    var beta2: Double
    var epsilon: Double
    /// The L2 coefficient added to the gradient as `l2 * w`.
    var l2: Double = 0
    /// The decoupled decay factor `lr * wd`.
    var decoupled: Double = 0

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
        let l2 = Scalar(l2)
        let decoupled = Scalar(decoupled)
        for index in 0..<w.count {
            let weight = w[index]
            let gradient = dw[index] + l2 * weight
            let first = beta1 * m[index] + (1 - beta1) * gradient
            let second = beta2 * v[index] + (1 - beta2) * gradient * gradient
            m[index] = first
            v[index] = second
            w[index] = weight - decoupled * weight - stepSize * first / (second.squareRoot() + epsilon)
        }
    }
}

// MARK: - State

private func checkCounts(_ parameters: [Parameter], _ gradients: [Tensor], _ optimizer: String) throws {
    guard parameters.count == gradients.count else {
        throw OptimizerError("\(optimizer): \(parameters.count) parameters but \(gradients.count) gradients")
    }
}

/// The per-parameter state of an optimizer: tensors in named slots, such as Adam's `m` and `v`,
/// created as zeros in each parameter's layout on its first step.
struct OptimizerSlots {
    let slotNames: [String]
    /// Parameter names in the order their state was created or restored.
    private var order: [String] = []
    private var tensors: [String: [Tensor]] = [:]
    /// Set by `restore` until the next step has checked the restored state against the
    /// parameters and moved it into their layouts.
    private var isRestored = false

    init(slotNames: [String]) {
        self.slotNames = slotNames
    }

    /// Checks, before the first step and after a restore, that parameter names are unique and
    /// that restored state covers exactly these parameters, and moves restored tensors into the
    /// parameters' layouts.
    mutating func prepare(for parameters: [Parameter], backend: Backend) throws {
        guard order.isEmpty || isRestored else { return }
        var seen = Set<String>()
        for parameter in parameters where !seen.insert(parameter.name).inserted {
            throw OptimizerError("two parameters are named \(parameter.name); optimizer state is kept by name")
        }
        guard isRestored, !slotNames.isEmpty else {
            isRestored = false
            return
        }

        for parameter in parameters {
            guard let restored = tensors[parameter.name] else {
                throw OptimizerError("restored optimizer state has no \(slotNames.joined(separator: ", ")) for parameter \(parameter.name)")
            }
            var converted: [Tensor] = []
            for (slot, tensor) in zip(slotNames, restored) {
                guard tensor.shape == parameter.value.shape else {
                    throw OptimizerError(
                        "restored optimizer state \(parameter.name).\(slot) has shape \(tensor.shape), but the parameter has \(parameter.value.shape)")
                }
                // Adding to zeros in the parameter's layout copies the values into that layout.
                converted.append(try backend.add(try backend.zeros(like: parameter.value), tensor))
            }
            tensors[parameter.name] = converted
        }
        if let extra = order.first(where: { !seen.contains($0) }) {
            throw OptimizerError("restored optimizer state names \(extra), which is not a trainable parameter of this model")
        }
        order = parameters.map(\.name)
        isRestored = false
    }

    /// Returns the state tensors of `parameter`, one per slot, creating zeros on its first step.
    mutating func state(for parameter: Parameter, backend: Backend) throws -> [Tensor] {
        if let existing = tensors[parameter.name] {
            return existing
        }
        var created: [Tensor] = []
        for _ in slotNames {
            created.append(try backend.zeros(like: parameter.value))
        }
        tensors[parameter.name] = created
        order.append(parameter.name)
        return created
    }

    func namedTensors() -> [(name: String, tensor: Tensor)] {
        var result: [(name: String, tensor: Tensor)] = []
        for name in order {
            for (slot, tensor) in zip(slotNames, tensors[name] ?? []) {
                result.append((name: "\(name).\(slot)", tensor: tensor))
            }
        }
        return result
    }

    /// Replaces the state with `named`, checking that each name ends in a known slot, that no
    /// name repeats, and that every parameter has all its slots in one shape.
    mutating func restore(_ named: [(name: String, tensor: Tensor)], stepCount: Int) throws {
        guard stepCount >= 0 else {
            throw OptimizerError("restored step count \(stepCount) is negative")
        }
        if !slotNames.isEmpty, stepCount > 0, named.isEmpty {
            throw OptimizerError(
                "restored optimizer state is empty after \(stepCount) steps; expected \(slotNames.joined(separator: " and ")) for each parameter")
        }

        guard !named.isEmpty else {
            tensors = [:]
            order = []
            isRestored = false
            return
        }

        var bySlot: [String: [String: Tensor]] = [:]
        var parameterOrder: [String] = []
        for (name, tensor) in named {
            guard let slot = slotNames.first(where: { name.hasSuffix(".\($0)") }) else {
                let expected = slotNames.isEmpty ? "no state" : slotNames.map { "<parameter>.\($0)" }.joined(separator: " or ")
                throw OptimizerError("unexpected optimizer state tensor \(name); expected \(expected)")
            }
            let parameter = String(name.dropLast(slot.count + 1))
            if bySlot[parameter] == nil {
                bySlot[parameter] = [:]
                parameterOrder.append(parameter)
            }
            guard bySlot[parameter]?[slot] == nil else {
                throw OptimizerError("optimizer state tensor \(name) is given twice")
            }
            bySlot[parameter]?[slot] = tensor
        }

        var restored: [String: [Tensor]] = [:]
        for parameter in parameterOrder {
            let slots = bySlot[parameter] ?? [:]
            var list: [Tensor] = []
            for slot in slotNames {
                guard let tensor = slots[slot] else {
                    throw OptimizerError("optimizer state \(parameter).\(slot) is missing")
                }
                guard tensor.shape == list.first?.shape ?? tensor.shape else {
                    throw OptimizerError(
                        "optimizer state tensors of \(parameter) differ in shape: \(list[0].shape) and \(tensor.shape)")
                }
                list.append(tensor)
            }
            restored[parameter] = list
        }

        tensors = restored
        order = parameterOrder
        isRestored = true
    }
}
