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
