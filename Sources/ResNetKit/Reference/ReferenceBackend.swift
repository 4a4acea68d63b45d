// The reference backend: storage, data movement and the helpers its kernels share.
// Readable reference, no vectorisation: speed belongs to the oneDNN backend.
//
// Every method with loops over tensor values carries `@_specialize` for Float and Double.
// The class is not `@inlinable`, so without it a caller in another module runs the generic
// code, which calls through protocol witnesses for each arithmetic operation and is one to two
// orders of magnitude slower in a release build.
// NOTE: `@_specialize` is an underscored attribute of the Swift compiler and may change.

import Foundation

/// A pure-Swift backend that computes every operation with plain loops in `Scalar`.
///
/// It is the yardstick for the fast backends: `ReferenceBackend<Double>` is the oracle for
/// finite-difference tests, and `ReferenceBackend<Float>` matches the precision of a fast path.
/// Tensors keep their values in canonical order (NCHW, OIHW, `[N, F]`).
public final class ReferenceBackend<Scalar: BinaryFloatingPoint & Sendable>: Backend {
    /// The number of work items that run at once in the parallel loops.
    public let threads: Int

    /// Creates a backend that runs its loops on `threads` threads, or on every active core
    /// when `threads` is nil.
    public init(threads: Int? = nil) {
        self.threads = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
    }

    public var name: String { "reference" }

    public var summary: String {
        let threadWord = threads == 1 ? "thread" : "threads"
        return "reference (Swift, \(Scalar.self)), \(threads) \(threadWord)"
    }

    // MARK: - Data

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func makeTensor(_ values: [Float], shape: TensorShape) throws -> Tensor {
        try makeTensor(scalars: values.map { Scalar($0) }, shape: shape)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func makeTensor(copying values: UnsafeBufferPointer<Float>, shape: TensorShape) throws -> Tensor {
        try makeTensor(scalars: values.map { Scalar($0) }, shape: shape)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func values(of tensor: Tensor) throws -> [Float] {
        try scalars(of: tensor).map { Float($0) }
    }

    /// Creates a tensor from values of the backend's own scalar type, in canonical order.
    public func makeTensor(scalars: [Scalar], shape: TensorShape) throws -> Tensor {
        guard shape.dims.allSatisfy({ $0 >= 0 }) else {
            throw BackendError("makeTensor", "shape \(shape) has a negative dimension")
        }
        guard scalars.count == shape.elementCount else {
            throw BackendError(
                "makeTensor", "got \(scalars.count) values for shape \(shape), which needs \(shape.elementCount)")
        }
        return Tensor(shape: shape, storage: ReferenceStorage(scalars))
    }

    /// Returns the tensor's values in canonical order, in the backend's own scalar type.
    public func scalars(of tensor: Tensor) throws -> [Scalar] {
        try storage(of: tensor, in: "scalars").values
    }

    public func zeros(like tensor: Tensor) throws -> Tensor {
        _ = try storage(of: tensor, in: "zeros")
        return makeZeros(tensor.shape)
    }

    public func update(_ tensors: [Tensor], with update: ElementwiseUpdate) throws {
        guard let first = tensors.first else { return }
        var storages: [ReferenceStorage<Scalar>] = []
        for tensor in tensors {
            guard tensor.shape == first.shape else {
                throw BackendError(
                    "update", "all tensors must share one shape, got \(tensors.map(\.shape.description))")
            }
            let storage = try storage(of: tensor, in: "update")
            guard !storages.contains(where: { $0 === storage }) else {
                throw BackendError("update", "the same tensor storage of shape \(tensor.shape) was passed twice")
            }
            storages.append(storage)
        }

        withMutableBuffers(storages[...], collected: []) { buffers in
            if let floats = buffers as? [UnsafeMutableBufferPointer<Float>] {
                update.apply(floats)
            } else if let doubles = buffers as? [UnsafeMutableBufferPointer<Double>] {
                update.apply(doubles)
            } else {
                preconditionFailure("ElementwiseUpdate has no overload for \(Scalar.self)")
            }
        }
    }

    /// Opens every storage's buffer for writing, one nested access per storage, and runs `body`
    /// once with all of them.
    private func withMutableBuffers(
        _ storages: ArraySlice<ReferenceStorage<Scalar>>, collected: [UnsafeMutableBufferPointer<Scalar>],
        _ body: ([UnsafeMutableBufferPointer<Scalar>]) -> Void
    ) {
        guard let first = storages.first else {
            body(collected)
            return
        }
        first.values.withUnsafeMutableBufferPointer { buffer in
            withMutableBuffers(storages.dropFirst(), collected: collected + [buffer], body)
        }
    }

    // MARK: - Helpers shared by the kernels

    func storage(of tensor: Tensor, in operation: String) throws -> ReferenceStorage<Scalar> {
        guard let storage = tensor.storage as? ReferenceStorage<Scalar> else {
            throw BackendError(
                operation,
                "tensor of shape \(tensor.shape) was not created by reference backend for \(Scalar.self), "
                    + "its storage is \(type(of: tensor.storage))")
        }
        return storage
    }

    func makeZeros(_ shape: TensorShape) -> Tensor {
        Tensor(shape: shape, storage: ReferenceStorage([Scalar](repeating: 0, count: shape.elementCount)))
    }

    func makeTensor(_ values: [Scalar], _ shape: TensorShape) -> Tensor {
        Tensor(shape: shape, storage: ReferenceStorage(values))
    }

    /// Runs `body(i)` for every `i` in `0..<count`, spread over at most `threads` threads.
    /// Each thread gets one contiguous range of `i`, so `body` may write any memory that
    /// belongs to its own `i` without locks.
    func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        let workers = min(threads, count)
        if workers <= 1 {
            for index in 0..<count { body(index) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // concurrentPerform wants a Sendable closure, and `body` captures buffer pointers.
            // Sharing it is safe because concurrentPerform returns only after every worker has
            // finished, and the workers write disjoint memory, as the contract above requires.
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let start = count * worker / workers
                let end = count * (worker + 1) / workers
                for index in start..<end { body(index) }
            }
        }
    }
}

/// The values of one reference tensor in canonical order.
final class ReferenceStorage<Scalar: BinaryFloatingPoint & Sendable> {
    var values: [Scalar]

    init(_ values: [Scalar]) {
        self.values = values
    }
}

/// The argmax positions that training-mode max pooling saves for its backward pass: for every
/// output element, the flat position `h * W + w` of the winning input in its channel plane.
final class ReferencePoolIndices {
    let positions: [Int]

    init(_ positions: [Int]) {
        self.positions = positions
    }
}

/// Checks that `tensor` has `expected` shape, and throws naming `operation` and `role` if not.
func requireShape(_ tensor: Tensor, _ expected: TensorShape, _ role: String, in operation: String) throws {
    guard tensor.shape == expected else {
        throw BackendError(operation, "\(role) has shape \(tensor.shape), expected \(expected)")
    }
}

/// Checks that `tensor` has `rank` dimensions, and throws naming `operation` and `role` if not.
func requireRank(_ tensor: Tensor, _ rank: Int, _ role: String, in operation: String) throws {
    guard tensor.shape.rank == rank else {
        throw BackendError(operation, "\(role) must have rank \(rank), got shape \(tensor.shape)")
    }
}
