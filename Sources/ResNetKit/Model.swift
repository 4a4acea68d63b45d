import Foundation

/// A network built for one input shape on one backend, with its parameters.
///
/// The network ends in logits: the softmax of the Keras original is fused into the loss for
/// numerical stability, and `predict` applies it.
public final class Model {
    public let name: String
    public let network: Sequential
    /// Per-sample input shape, CxHxW.
    public let inputShape: TensorShape
    /// Per-sample output shape, `[classes]` for a classifier.
    public let outputShape: TensorShape
    public let backend: Backend
    public let seed: UInt64

    /// Builds `network` for `inputShape` (CxHxW) on `backend`, initializing parameters from
    /// `seed`; the same seed gives the same initial weights on every backend.
    public init(name: String, network: Sequential, inputShape: TensorShape, backend: Backend, seed: UInt64) throws {
        self.name = name
        self.network = network
        self.inputShape = inputShape
        self.backend = backend
        self.seed = seed
        let context = BuildContext(backend: backend, seed: seed)
        outputShape = try network.build(inputShape: inputShape, context: context)
    }

    public var parameters: [Parameter] { network.parameters }

    public var trainableParameters: [Parameter] { parameters.filter(\.isTrainable) }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.shape.elementCount } }

    public var trainableParameterCount: Int { trainableParameters.reduce(0) { $0 + $1.shape.elementCount } }

    /// Forward FLOPs per image, counting a multiply-add of a convolution or dense layer as two.
    public var forwardFlops: Int { network.summaryRows(name: "").reduce(0) { $0 + $1.flops } }

    /// Training FLOPs per image: forward, backward-data and backward-weights of each convolution
    /// and dense layer, less the backward-data of the first one, whose input needs no gradient.
    public var trainingFlops: Int {
        let rows = network.summaryRows(name: "")
        let first = rows.first { $0.flops > 0 }?.flops ?? 0
        return 3 * forwardFlops - first
    }

    /// Runs the network on a batch `x` (NCHW). With a tape, operations are recorded for
    /// backward; `training` selects batch statistics in batch norm.
    public func forward(_ x: Tensor, tape: Tape? = nil, training: Bool = false,
                        observer: ((String, Tensor) -> Void)? = nil) throws -> Tensor {
        let expected = [x.shape.dims.first ?? 0] + inputShape.dims
        guard x.shape.dims == expected, expected[0] > 0 else {
            throw BackendError(
                "model \(name)", "expected a batch of shape Nx\(inputShape), got \(x.shape)")
        }
        let context = ForwardContext(backend: backend, tape: tape, training: training, observer: observer)
        return try network.forward(x, context: context)
    }

    /// Lets the backend store kernels in the layout its primitives use at this batch size.
    public func prepare(batch: Int) throws {
        try network.prepare(batch: batch, backend: backend)
    }

    /// Copies every parameter value from `other`, which must have the same architecture.
    public func loadParameters(from other: Model) throws {
        let source = other.parameters
        let target = parameters
        guard source.count == target.count else {
            throw BackendError("load parameters", "models have \(source.count) and \(target.count) parameters")
        }
        for (from, to) in zip(source, target) {
            guard from.name == to.name, from.shape == to.shape else {
                throw BackendError(
                    "load parameters", "parameter \(from.name) \(from.shape) does not match \(to.name) \(to.shape)")
            }
            to.value = try backend.makeTensor(try other.backend.values(of: from.value), shape: to.shape)
        }
    }

    /// Class probabilities for a batch, by softmax of the logits, row by row.
    public func predict(_ x: Tensor) throws -> [[Float]] {
        let logits = try forward(x)
        let values = try backend.values(of: logits)
        let classes = logits.shape.dims.last ?? 1
        return stride(from: 0, to: values.count, by: classes).map { start in
            softmax(values[start..<start + classes])
        }
    }
}

func softmax(_ row: ArraySlice<Float>) -> [Float] {
    let maximum = row.max() ?? 0
    let exponentials = row.map { Double($0 - maximum).exponential }
    let sum = exponentials.reduce(0, +)
    return exponentials.map { Float($0 / sum) }
}

extension Double {
    var exponential: Double { Foundation.exp(self) }
}
