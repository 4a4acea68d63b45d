import CxxBridge
import ResNetKit

/// The fast backend: oneDNN 2.6 primitives through the C++ bridge.
///
/// Tensors stay in the layout the primitives chose (blocked `nChw16c` for most activations on
/// AVX-512). Values are converted only when a consumer expects another layout, when they are
/// read back, and in `reshape`. Primitives are built once per operation, shape and layout and
/// cached; buffers of freed tensors are reused.
///
/// Not thread-safe: use one backend from one thread at a time.
public final class OneDNNBackend: Backend {
    public let name = "onednn"

    /// oneDNN's version, such as `2.6.3`.
    public let version: String

    /// The instruction set oneDNN dispatches to, such as `avx512_core_bf16`.
    public let isa: String

    /// Whether convolutions may use Winograd's algorithm: oneDNN's where it has one (AVX-512),
    /// and the bridge's own F(4x4, 3x3) for 3x3 convolutions at stride 1 on AVX2.
    public let winograd: Bool

    let pool = BufferPool()
    var plainLayouts: [TensorShape: Int32] = [:]
    var convolutionPlans: [ConvolutionKey: Plan] = [:]
    var densePlans: [DenseKey: Plan] = [:]
    var batchNormPlans: [BatchNormKey: Plan] = [:]
    var reluPlans: [Int32: Plan] = [:]
    var maxPoolPlans: [PoolKey: Plan] = [:]
    var globalPoolPlans: [TensorShape: Plan] = [:]
    var addPlans: [Int32: Plan] = [:]

    /// Creates the backend on the CPU engine.
    ///
    /// - Parameters:
    ///   - threads: OpenMP threads for oneDNN, for the whole process; nil keeps the current
    ///     setting (`OMP_NUM_THREADS`, or all cores).
    ///   - winograd: lets convolutions use Winograd's algorithm. It needs fewer
    ///     multiplications and rounds slightly differently, by about 1e-5 of the largest
    ///     output. False runs every convolution directly.
    public init(threads: Int? = nil, winograd: Bool = true) throws {
        let status = onednn_bridge.engineInitialize()
        guard status == .ok else {
            throw bridgeError("engine", status)
        }
        if let threads {
            guard threads >= 1, threads <= Int(Int32.max) else {
                throw BackendError("engine", "thread count must be at least 1, got \(threads)")
            }
            let status = onednn_bridge.setThreadCount(Int32(threads))
            guard status == .ok else {
                throw bridgeError("engine", status)
            }
        }
        version = Self.libraryVersion
        isa = String(cString: onednn_bridge.effectiveIsaName())
        self.winograd = winograd
    }

    /// The version of the oneDNN library loaded at run time, such as `2.6.3`.
    public static var libraryVersion: String {
        "\(onednn_bridge.versionMajor()).\(onednn_bridge.versionMinor()).\(onednn_bridge.versionPatch())"
    }

    /// OpenMP threads oneDNN runs on; 0 when no OpenMP runtime is loaded.
    public var threads: Int { Int(onednn_bridge.threadCount()) }

    public var summary: String {
        "oneDNN \(version), ISA \(isa), \(threads) \(threads == 1 ? "thread" : "threads")"
            + (winograd ? ", Winograd for 3x3 convolutions at stride 1" : ", direct convolutions only")
    }

    /// The number of tensor buffers allocated from the system so far; it stays constant across
    /// training steps in steady state because freed buffers are reused.
    public var bufferAllocationCount: Int { pool.allocationCount }

    // MARK: - Data

    public func makeTensor(_ values: [Float], shape: TensorShape) throws -> Tensor {
        try values.withUnsafeBufferPointer { try makeTensor(copying: $0, shape: shape) }
    }

    public func makeTensor(copying values: UnsafeBufferPointer<Float>, shape: TensorShape) throws -> Tensor {
        guard values.count == shape.elementCount else {
            throw BackendError(
                "makeTensor", "\(values.count) values do not fill shape \(shape) (\(shape.elementCount) elements)")
        }
        let storage = try allocate(layout: plainLayout(shape, "makeTensor"))
        if let base = values.baseAddress, values.count > 0 {
            storage.buffer.copyMemory(from: base, byteCount: values.count * MemoryLayout<Float>.stride)
        }
        return Tensor(shape: shape, storage: storage)
    }

    public func values(of tensor: Tensor) throws -> [Float] {
        let storage = try self.storage(of: tensor, "values")
        let plain = try conform(storage, to: plainLayout(tensor.shape, "values"), "values")
        return Array(plain.floats.prefix(tensor.shape.elementCount))
    }

    public func zeros(like tensor: Tensor) throws -> Tensor {
        let source = try self.storage(of: tensor, "zeros")
        let storage = try OneDNNStorage(layout: source.layout, byteCount: source.byteCount, pool: pool)
        storage.buffer.initializeMemory(as: UInt8.self, repeating: 0, count: storage.byteCount)
        return Tensor(shape: tensor.shape, storage: storage)
    }

    public func update(_ tensors: [Tensor], with update: ElementwiseUpdate) throws {
        guard let first = tensors.first else {
            return
        }
        let firstStorage = try storage(of: first, "update")
        var buffers: [UnsafeMutableBufferPointer<Float>] = []
        for tensor in tensors {
            let storage = try self.storage(of: tensor, "update")
            guard tensor.shape == first.shape else {
                throw BackendError("update", "shapes differ: \(first.shape) and \(tensor.shape)")
            }
            guard storage.layout == firstStorage.layout, storage.byteCount == firstStorage.byteCount else {
                throw BackendError(
                    "update",
                    "tensors of shape \(tensor.shape) have different layouts (ids \(firstStorage.layout) and "
                        + "\(storage.layout)); create optimizer state with zeros(like:)")
            }
            buffers.append(storage.floats)
        }
        update.apply(buffers)
    }

    public func reshape(_ x: Tensor, to shape: TensorShape) throws -> Tensor {
        guard shape.elementCount == x.shape.elementCount else {
            throw BackendError(
                "reshape",
                "cannot reshape \(x.shape) (\(x.shape.elementCount) elements) to \(shape) (\(shape.elementCount) elements)")
        }
        let source = try storage(of: x, "reshape")
        let target = try allocate(layout: plainLayout(shape, "reshape"))
        let canonical = try plainLayout(x.shape, "reshape")
        if source.layout == canonical {
            target.buffer.copyMemory(from: source.buffer, byteCount: target.byteCount)
        } else {
            try reorder(source, into: target.buffer, layout: canonical, "reshape")
        }
        return Tensor(shape: shape, storage: target)
    }

    // MARK: - Layouts and buffers

    func storage(of tensor: Tensor, _ operation: String) throws -> OneDNNStorage {
        guard let storage = tensor.storage as? OneDNNStorage else {
            throw BackendError(
                operation, "tensor of shape \(tensor.shape) was not created by the oneDNN backend; pass tensors it made")
        }
        guard storage.content == .values else {
            throw BackendError(operation, "tensor of shape \(tensor.shape) is a max pooling workspace, not values")
        }
        return storage
    }

    func plainLayout(_ shape: TensorShape, _ operation: String) throws -> Int32 {
        if let known = plainLayouts[shape] {
            return known
        }
        guard shape.rank >= 1, shape.dims.allSatisfy({ $0 > 0 }) else {
            throw BackendError(operation, "shape \(shape) must have at least one axis and positive sizes")
        }
        var status = onednn_bridge.Status.ok
        let dims = shape.dims.map { Int64($0) }
        let layout = dims.withUnsafeBufferPointer {
            onednn_bridge.layoutPlain($0.baseAddress, Int32(dims.count), &status)
        }
        guard status == .ok else {
            throw bridgeError(operation, status)
        }
        plainLayouts[shape] = layout
        return layout
    }

    func allocate(layout: Int32, content: OneDNNStorage.Content = .values) throws -> OneDNNStorage {
        let byteCount = Int(onednn_bridge.layoutByteCount(layout))
        return try OneDNNStorage(layout: layout, byteCount: byteCount, content: content, pool: pool)
    }

    func reorder(_ source: OneDNNStorage, into buffer: UnsafeMutableRawPointer, layout: Int32, _ operation: String)
        throws
    {
        let status = onednn_bridge.reorder(source.layout, source.buffer, layout, buffer)
        guard status == .ok else {
            throw bridgeError(operation, status)
        }
    }

    /// Returns `storage` itself when it is in `layout`, else a reordered copy from the pool.
    func conform(_ storage: OneDNNStorage, to layout: Int32, _ operation: String) throws -> OneDNNStorage {
        if storage.layout == layout {
            return storage
        }
        let copy = try allocate(layout: layout)
        try reorder(storage, into: copy.buffer, layout: layout, operation)
        return copy
    }

    // MARK: - Running plans

    struct Input {
        var role: onednn_bridge.Role
        var storage: OneDNNStorage
        /// Passes a plain buffer as is to a plain slot of the same byte count, for the
        /// N x C <-> N x C x 1 x 1 views of global average pooling.
        var reinterpretsPlain = false
    }

    struct Output {
        var role: onednn_bridge.Role
        /// A plain layout to record for the result in place of the slot's own plain layout.
        var plainLayout: Int32? = nil
        var content = OneDNNStorage.Content.values
    }

    /// Runs one pass of `plan`: reorders inputs the pass expects in another layout, allocates
    /// the outputs in the pass's layouts, and returns them in the order of `outputs`.
    func run(_ plan: Plan, _ pass: onednn_bridge.Pass, inputs: [Input], outputs: [Output]) throws
        -> [OneDNNStorage]
    {
        var conformedInputs: [OneDNNStorage] = []
        var arguments: [onednn_bridge.Argument] = []
        for input in inputs {
            let expected = try plan.layout(pass, input.role)
            var storage = input.storage
            let samePlainBytes =
                input.reinterpretsPlain && isPlainLayout(storage.layout)
                && isPlainLayout(expected)
                && Int(onednn_bridge.layoutByteCount(expected)) == storage.byteCount
            if !samePlainBytes {
                storage = try conform(storage, to: expected, plan.operation)
            }
            conformedInputs.append(storage)
            arguments.append(onednn_bridge.Argument(role: input.role, data: storage.buffer))
        }

        var results: [OneDNNStorage] = []
        for output in outputs {
            var layout = try plan.layout(pass, output.role)
            if let plain = output.plainLayout {
                precondition(
                    isPlainLayout(layout)
                        && onednn_bridge.layoutByteCount(plain) == onednn_bridge.layoutByteCount(layout),
                    "\(plan.operation): the output is not a plain view of the same size")
                layout = plain
            }
            let storage = try allocate(layout: layout, content: output.content)
            results.append(storage)
            arguments.append(onednn_bridge.Argument(role: output.role, data: storage.buffer))
        }

        let status = arguments.withUnsafeBufferPointer {
            onednn_bridge.planExecute(plan.handle, pass, $0.baseAddress, Int32($0.count))
        }
        withExtendedLifetime(conformedInputs) {}
        guard status == .ok else {
            throw bridgeError(plan.operation, status)
        }
        return results
    }

    /// Throws unless `tensor` has `expected` shape.
    func check(_ tensor: Tensor, _ label: String, is expected: TensorShape, _ operation: String) throws {
        guard tensor.shape == expected else {
            throw BackendError(operation, "\(label) has shape \(tensor.shape), expected \(expected)")
        }
    }
}
