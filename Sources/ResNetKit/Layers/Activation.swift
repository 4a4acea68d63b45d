/// Rectified linear unit, max(x, 0).
public final class ReLU: Layer {
    public let kind = "relu"
    private var outputShape = TensorShape()

    public init() {}

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        outputShape = inputShape
        return inputShape
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        try applyReLU(x, context: context)
    }

    public func summaryRows(name: String) -> [SummaryRow] {
        [SummaryRow(name: name, kind: kind, outputShape: TensorShape([1] + outputShape.dims), parameterCount: 0, flops: 0)]
    }
}

/// ReLU with its backward recorded; shared by `ReLU` and the residual blocks.
func applyReLU(_ x: Tensor, context: ForwardContext) throws -> Tensor {
    let backend = context.backend
    let y = try backend.relu(x)
    context.tape?.record(y, inputs: [x]) { dy, _ in
        [try backend.reluBackward(dy, y: y)]
    }
    return y
}

/// `a + b`, with the gradient passed unchanged to both.
func applyAdd(_ a: Tensor, _ b: Tensor, context: ForwardContext) throws -> Tensor {
    let y = try context.backend.add(a, b)
    context.tape?.record(y, inputs: [a, b]) { dy, _ in [dy, dy] }
    return y
}
