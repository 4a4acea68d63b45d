/// A residual block with two convolutions (He et al., "Deep Residual Learning for Image
/// Recognition", 2015, the "basic" block).
///
/// Without batch norm it is the block of the Keras tutorial this project grew from: conv, ReLU,
/// conv, add the block's input, ReLU. With batch norm it is torchvision's basic block: conv, BN,
/// ReLU, conv, BN, add, ReLU. When the stride is not 1 or the channel count changes, the
/// identity add is undefined. The shortcut then becomes a 1x1 convolution with that stride,
/// followed by batch norm when the block uses it: the paper's projection shortcut (option B).
public final class ResidualBlock: Layer {
    public let kind = "residual_block"
    public let filters: Int
    public let kernelSize: Int
    public let strides: Int
    public let batchNorm: Bool
    /// Padding of the 3x3 convolutions. 'same' by default, as Keras; torchvision pads 1 on
    /// every side, which differs from 'same' only at stride 2 on an even input.
    public let padding: Padding

    private var main: Sequential
    private var shortcut: Sequential?
    private var outputShape = TensorShape()

    public init(filters: Int, kernelSize: Int = 3, strides: Int = 1, batchNorm: Bool = false, padding: Padding = .same) {
        self.filters = filters
        self.kernelSize = kernelSize
        self.strides = strides
        self.batchNorm = batchNorm
        self.padding = padding
        main = Sequential(layers: [])
    }

    /// Whether this block, built for its input, uses a 1x1 projection shortcut.
    public var hasProjection: Bool { shortcut != nil }

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        guard inputShape.rank == 3 else {
            throw BackendError("residual_block", "expected an input of shape CxHxW, got \(inputShape)")
        }
        let useBias = !batchNorm
        main = Sequential {
            Conv2D(filters: filters, kernelSize: kernelSize, strides: strides, padding: padding, useBias: useBias)
            if batchNorm { BatchNorm() }
            ReLU()
            Conv2D(filters: filters, kernelSize: kernelSize, padding: padding, useBias: useBias)
            if batchNorm { BatchNorm() }
        }
        let mainShape = try main.build(inputShape: inputShape, context: context)

        if strides != 1 || inputShape[0] != filters {
            let projection = Sequential {
                Conv2D(filters: filters, kernelSize: 1, strides: strides, padding: .same, useBias: useBias)
                if batchNorm { BatchNorm() }
            }
            let projected = try context.scoped("shortcut") {
                try projection.build(inputShape: inputShape, context: context)
            }
            guard projected == mainShape else {
                throw BackendError(
                    "residual_block", "shortcut output \(projected) does not match the main path's \(mainShape)")
            }
            shortcut = projection
        } else {
            shortcut = nil
        }
        outputShape = mainShape
        return mainShape
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        var inner = context
        inner.observer = nil
        let residual = try main.forward(x, context: inner)
        let identity = try shortcut?.forward(x, context: inner) ?? x
        let sum = try applyAdd(residual, identity, context: context)
        return try applyReLU(sum, context: context)
    }

    public var parameters: [Parameter] { main.parameters + (shortcut?.parameters ?? []) }

    public var sublayers: [Layer] { [main] + (shortcut.map { [$0] } ?? []) }

    public func prepare(batch: Int, backend: Backend) throws {
        try main.prepare(batch: batch, backend: backend)
        try shortcut?.prepare(batch: batch, backend: backend)
    }

    public func summaryRows(name: String) -> [SummaryRow] {
        var rows = main.summaryRows(name: name)
        if let shortcut {
            rows += shortcut.summaryRows(name: "\(name).shortcut")
        }
        rows.append(
            SummaryRow(name: "\(name).add", kind: "add+relu", outputShape: TensorShape([1] + outputShape.dims), parameterCount: 0, flops: 0))
        return rows
    }
}

/// The bottleneck residual block of ResNet-50 and deeper (He et al., 2015), in torchvision's
/// v1.5 variant, which puts the stride on the 3x3 convolution instead of the first 1x1.
///
/// Main path: conv 1x1 to `filters` channels, BN, ReLU; conv 3x3 with the block's stride and
/// padding 1, BN, ReLU; conv 1x1 to `expansion * filters` channels, BN. Convolutions have no
/// bias. Where the stride is not 1 or the input has other than `expansion * filters` channels,
/// the shortcut is a 1x1 convolution with the stride, followed by BN (projection, option B).
/// The block adds the two paths and applies ReLU to the sum.
public final class BottleneckBlock: Layer {
    public let kind = "bottleneck_block"
    /// Channels of the two inner convolutions; the block outputs `expansion` times as many.
    public let filters: Int
    public let strides: Int
    public static let expansion = 4

    private var main: Sequential
    private var shortcut: Sequential?
    private var outputShape = TensorShape()

    public init(filters: Int, strides: Int = 1) {
        self.filters = filters
        self.strides = strides
        main = Sequential(layers: [])
    }

    public var outputChannels: Int { Self.expansion * filters }

    /// Whether this block, built for its input, uses a 1x1 projection shortcut.
    public var hasProjection: Bool { shortcut != nil }

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        guard inputShape.rank == 3 else {
            throw BackendError("bottleneck_block", "expected an input of shape CxHxW, got \(inputShape)")
        }
        let pad1 = Padding.explicit(top: 1, bottom: 1, left: 1, right: 1)
        main = Sequential {
            Conv2D(filters: filters, kernelSize: 1, useBias: false)
            BatchNorm()
            ReLU()
            Conv2D(filters: filters, kernelSize: 3, strides: strides, padding: pad1, useBias: false)
            BatchNorm()
            ReLU()
            Conv2D(filters: outputChannels, kernelSize: 1, useBias: false)
            BatchNorm()
        }
        let mainShape = try main.build(inputShape: inputShape, context: context)

        if strides != 1 || inputShape[0] != outputChannels {
            let projection = Sequential {
                Conv2D(filters: outputChannels, kernelSize: 1, strides: strides, useBias: false)
                BatchNorm()
            }
            let projected = try context.scoped("shortcut") {
                try projection.build(inputShape: inputShape, context: context)
            }
            guard projected == mainShape else {
                throw BackendError(
                    "bottleneck_block", "shortcut output \(projected) does not match the main path's \(mainShape)")
            }
            shortcut = projection
        } else {
            shortcut = nil
        }
        outputShape = mainShape
        return mainShape
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        var inner = context
        inner.observer = nil
        let residual = try main.forward(x, context: inner)
        let identity = try shortcut?.forward(x, context: inner) ?? x
        let sum = try applyAdd(residual, identity, context: context)
        return try applyReLU(sum, context: context)
    }

    public var parameters: [Parameter] { main.parameters + (shortcut?.parameters ?? []) }

    public var sublayers: [Layer] { [main] + (shortcut.map { [$0] } ?? []) }

    public func prepare(batch: Int, backend: Backend) throws {
        try main.prepare(batch: batch, backend: backend)
        try shortcut?.prepare(batch: batch, backend: backend)
    }

    public func summaryRows(name: String) -> [SummaryRow] {
        var rows = main.summaryRows(name: name)
        if let shortcut {
            rows += shortcut.summaryRows(name: "\(name).shortcut")
        }
        rows.append(
            SummaryRow(name: "\(name).add", kind: "add+relu", outputShape: TensorShape([1] + outputShape.dims), parameterCount: 0, flops: 0))
        return rows
    }
}

/// A residual block on flat features: dense, ReLU, dense, add the block's input, ReLU.
///
/// It is the basic block with dense layers in place of convolutions and without batch norm,
/// in the original post-activation form (ReLU after the add, as `ResidualBlock`). The identity
/// shortcut needs as many input features as `units`, so a dense layer of that width goes first.
public final class DenseResidualBlock: Layer {
    public let kind = "dense_residual_block"
    public let units: Int

    private var main: Sequential
    private var outputShape = TensorShape()

    public init(units: Int) {
        self.units = units
        main = Sequential(layers: [])
    }

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        guard inputShape.rank == 1, inputShape[0] == units else {
            throw BackendError(
                "dense_residual_block",
                "expected \(units) input features for the identity shortcut, got \(inputShape); put Dense(units: \(units)) before it")
        }
        main = Sequential {
            Dense(units: units)
            ReLU()
            Dense(units: units)
        }
        outputShape = try main.build(inputShape: inputShape, context: context)
        return outputShape
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        var inner = context
        inner.observer = nil
        let residual = try main.forward(x, context: inner)
        let sum = try applyAdd(residual, x, context: context)
        return try applyReLU(sum, context: context)
    }

    public var parameters: [Parameter] { main.parameters }

    public var sublayers: [Layer] { [main] }

    public func summaryRows(name: String) -> [SummaryRow] {
        main.summaryRows(name: name) + [
            SummaryRow(name: "\(name).add", kind: "add+relu", outputShape: TensorShape([1] + outputShape.dims), parameterCount: 0, flops: 0)
        ]
    }
}
