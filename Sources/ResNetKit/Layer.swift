/// A learnable or tracked tensor of a layer.
public final class Parameter {
    public enum Role: String, Sendable {
        case kernel, bias, scale, shift, runningMean, runningVariance
    }

    /// A dotted path such as `residual_block_1.conv2d_1.kernel`.
    public let name: String
    public let role: Role
    public let shape: TensorShape
    public var value: Tensor

    public init(name: String, role: Role, shape: TensorShape, value: Tensor) {
        self.name = name
        self.role = role
        self.shape = shape
        self.value = value
    }

    /// Whether the optimizer updates it; batch-norm running statistics are updated by the
    /// forward pass instead.
    public var isTrainable: Bool { role != .runningMean && role != .runningVariance }

    /// Whether weight decay applies by default: kernels only, as is usual, not biases or
    /// batch-norm parameters.
    public var decaysByDefault: Bool { role == .kernel }
}

/// The backend, random generator and name scope that layers use to create their parameters.
public final class BuildContext {
    public let backend: Backend
    public var generator: SeededGenerator
    private var prefixes: [String] = []

    public init(backend: Backend, seed: UInt64) {
        self.backend = backend
        self.generator = SeededGenerator(seed: seed)
    }

    /// Runs `body` with `name` appended to the path of the parameters it creates.
    public func scoped<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        prefixes.append(name)
        defer { prefixes.removeLast() }
        return try body()
    }

    public func makeParameter(_ name: String, role: Role, shape: TensorShape, values: [Float]) throws
        -> Parameter
    {
        let path = (prefixes + [name]).joined(separator: ".")
        let tensor = try backend.makeTensor(values, shape: shape)
        return Parameter(name: path, role: role, shape: shape, value: tensor)
    }

    public typealias Role = Parameter.Role

    /// Glorot (Xavier) uniform values, Keras's default kernel initializer: uniform in
    /// [-limit, limit] with limit = sqrt(6 / (fanIn + fanOut)).
    public func glorotUniform(count: Int, fanIn: Int, fanOut: Int) -> [Float] {
        let limit = Float((6.0 / Double(fanIn + fanOut)).squareRoot())
        return (0..<count).map { _ in (generator.nextUnitFloat() * 2 - 1) * limit }
    }
}

/// The backend, tape and mode of one forward pass.
public struct ForwardContext {
    public var backend: Backend
    /// The tape to record on; nil in inference.
    public var tape: Tape?
    /// Batch norm uses batch statistics and updates its running statistics when true.
    public var training: Bool
    /// Called with each named layer's output, for `BackendComparison` and debugging.
    public var observer: ((String, Tensor) -> Void)?

    public init(backend: Backend, tape: Tape?, training: Bool, observer: ((String, Tensor) -> Void)? = nil) {
        self.backend = backend
        self.tape = tape
        self.training = training
        self.observer = observer
    }
}

/// A building block of a network, built for one input shape and then run on batches of it.
///
/// Shapes passed to `build` leave out the batch axis: `[C, H, W]` for images, `[F]` for flat
/// features.
public protocol Layer: AnyObject {
    /// The kind, used to name instances: `conv2d`, `batch_normalization`, ...
    var kind: String { get }

    /// Creates the parameters for `inputShape` and returns the output shape.
    func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape

    func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor

    /// The layer's parameters and those of the layers inside it.
    var parameters: [Parameter] { get }

    /// Lets the backend move kernels into the layout it runs fastest at this batch size.
    func prepare(batch: Int, backend: Backend) throws

    /// Returns one row per layer for `resnet summary`: name, output shape, parameter count, FLOPs.
    func summaryRows(name: String) -> [SummaryRow]

    /// The layers inside this one, for walking a network.
    var sublayers: [Layer] { get }
}

public struct SummaryRow: Sendable {
    public var name: String
    public var kind: String
    public var outputShape: TensorShape
    public var parameterCount: Int
    /// Multiply-adds count as two operations; per image, forward only.
    public var flops: Int
}

extension Layer {
    public var parameters: [Parameter] { [] }

    public var sublayers: [Layer] { [] }

    /// This layer and every layer inside it, depth first.
    public var allLayers: [Layer] { [self] + sublayers.flatMap(\.allLayers) }

    public func prepare(batch: Int, backend: Backend) throws {}
}
