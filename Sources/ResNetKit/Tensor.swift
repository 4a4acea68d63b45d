/// The shape of a tensor in canonical order: NCHW for activations, OIHW for convolution
/// kernels, `[outputs, inputs]` for dense kernels, `[N, features]` for flat activations.
public struct TensorShape: Hashable, Sendable, CustomStringConvertible {
    public var dims: [Int]

    public init(_ dims: [Int]) {
        self.dims = dims
    }

    public init(_ dims: Int...) {
        self.dims = dims
    }

    public var rank: Int { dims.count }

    public var elementCount: Int { dims.reduce(1, *) }

    public subscript(axis: Int) -> Int { dims[axis] }

    /// Returns the shape with the batch axis replaced.
    public func withBatch(_ batch: Int) -> TensorShape {
        var copy = dims
        copy[0] = batch
        return TensorShape(copy)
    }

    public var description: String { dims.map(String.init).joined(separator: "x") }
}

/// A tensor whose storage and memory layout belong to the backend that created it.
///
/// The shape is always the canonical one. The backend may keep the elements in another order
/// (oneDNN's blocked layouts, for example) and converts only when values are read or written.
public final class Tensor {
    public let shape: TensorShape

    /// Backend-specific storage; only the creating backend interprets it.
    public let storage: AnyObject

    public init(shape: TensorShape, storage: AnyObject) {
        self.shape = shape
        self.storage = storage
    }
}

/// An error raised by a backend or a layer, carrying the operation and the shapes involved.
public struct BackendError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var message: String

    public init(_ operation: String, _ message: String) {
        self.operation = operation
        self.message = message
    }

    public var description: String { "\(operation): \(message)" }
}
