/// Max pooling as Keras's `MaxPooling2D`: the stride defaults to the pool size and the padding
/// to 'valid'.
public final class MaxPool2D: Layer {
    public let kind = "max_pooling2d"
    public let poolSize: (height: Int, width: Int)
    public let strides: (height: Int, width: Int)
    public let padding: Padding
    public private(set) var geometry: PoolGeometry?

    public init(poolSize: Int, strides: Int? = nil, padding: Padding = .valid) {
        self.poolSize = (poolSize, poolSize)
        let stride = strides ?? poolSize
        self.strides = (stride, stride)
        self.padding = padding
    }

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        guard inputShape.rank == 3 else {
            throw BackendError("max_pooling2d", "expected an input of shape CxHxW, got \(inputShape)")
        }
        let geometry = try PoolGeometry(
            channels: inputShape[0], inputHeight: inputShape[1], inputWidth: inputShape[2],
            window: poolSize, stride: strides, padding: padding)
        self.geometry = geometry
        return TensorShape(inputShape[0], geometry.outputHeight, geometry.outputWidth)
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        guard let geometry else { throw BackendError("max_pooling2d", "layer used before build") }
        let backend = context.backend
        let output = try backend.maxPool(x, geometry: geometry, training: context.tape != nil)
        context.tape?.record(output.y, inputs: [x]) { dy, _ in
            [try backend.maxPoolBackward(dy, x: x, forward: output, geometry: geometry)]
        }
        return output.y
    }

    public func summaryRows(name: String) -> [SummaryRow] {
        guard let geometry else { return [] }
        return [SummaryRow(name: name, kind: kind, outputShape: geometry.outputShape(batch: 1), parameterCount: 0, flops: 0)]
    }
}

/// The mean over height and width: NCHW to `[N, C]`, as Keras's `GlobalAveragePooling2D`.
public final class GlobalAveragePool2D: Layer {
    public let kind = "global_average_pooling2d"
    private var channels = 0

    public init() {}

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        guard inputShape.rank == 3 else {
            throw BackendError("global_average_pooling2d", "expected an input of shape CxHxW, got \(inputShape)")
        }
        channels = inputShape[0]
        return TensorShape(channels)
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        let backend = context.backend
        let y = try backend.globalAveragePool(x)
        let inputShape = x.shape
        context.tape?.record(y, inputs: [x]) { dy, _ in
            [try backend.globalAveragePoolBackward(dy, inputShape: inputShape)]
        }
        return y
    }

    public func summaryRows(name: String) -> [SummaryRow] {
        [SummaryRow(name: name, kind: kind, outputShape: TensorShape(1, channels), parameterCount: 0, flops: 0)]
    }
}

/// Reshapes NCHW to `[N, C*H*W]` in canonical (channel-major) order, as PyTorch's `flatten`.
/// Keras flattens NHWC, so its dense kernels after `Flatten` index features differently.
public final class Flatten: Layer {
    public let kind = "flatten"
    private var features = 0

    public init() {}

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        features = inputShape.elementCount
        return TensorShape(features)
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        let backend = context.backend
        let inputShape = x.shape
        let y = try backend.reshape(x, to: TensorShape(x.shape[0], features))
        context.tape?.record(y, inputs: [x]) { dy, _ in
            [try backend.reshape(dy, to: inputShape)]
        }
        return y
    }

    public func summaryRows(name: String) -> [SummaryRow] {
        [SummaryRow(name: name, kind: kind, outputShape: TensorShape(1, features), parameterCount: 0, flops: 0)]
    }
}
