/// A 2-D convolution with optional bias, as Keras's `Conv2D`: Glorot-uniform kernel, zero bias.
public final class Conv2D: Layer {
    public let kind = "conv2d"
    public let filters: Int
    public let kernelSize: (height: Int, width: Int)
    public let strides: (height: Int, width: Int)
    public let padding: Padding
    public let useBias: Bool

    public private(set) var geometry: ConvolutionGeometry?
    public private(set) var kernel: Parameter?
    public private(set) var bias: Parameter?

    /// Creates a convolution with `filters` output channels and a square kernel.
    public init(filters: Int, kernelSize: Int, strides: Int = 1, padding: Padding = .valid, useBias: Bool = true) {
        self.filters = filters
        self.kernelSize = (kernelSize, kernelSize)
        self.strides = (strides, strides)
        self.padding = padding
        self.useBias = useBias
    }

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        guard inputShape.rank == 3 else {
            throw BackendError("conv2d", "expected an input of shape CxHxW, got \(inputShape)")
        }
        let geometry = try ConvolutionGeometry(
            inputChannels: inputShape[0], inputHeight: inputShape[1], inputWidth: inputShape[2],
            outputChannels: filters, kernel: kernelSize, stride: strides, padding: padding)
        self.geometry = geometry

        let receptive = kernelSize.height * kernelSize.width
        let values = context.glorotUniform(
            count: geometry.weightShape.elementCount, fanIn: inputShape[0] * receptive, fanOut: filters * receptive)
        kernel = try context.makeParameter("kernel", role: .kernel, shape: geometry.weightShape, values: values)
        if useBias {
            bias = try context.makeParameter(
                "bias", role: .bias, shape: TensorShape(filters), values: [Float](repeating: 0, count: filters))
        }
        return TensorShape(filters, geometry.outputHeight, geometry.outputWidth)
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        guard let geometry, let kernel else { throw BackendError("conv2d", "layer used before build") }
        let backend = context.backend
        let weights = kernel.value
        let biasValue = bias?.value
        let y = try backend.convolution(x, weights: weights, bias: biasValue, geometry: geometry)

        if let tape = context.tape {
            let inputs = [x, weights] + (biasValue.map { [$0] } ?? [])
            let hasBias = biasValue != nil
            tape.record(y, inputs: inputs) { dy, needsGradient in
                let gradients = try backend.convolutionBackward(
                    dy, x: x, weights: weights, hasBias: hasBias, geometry: geometry,
                    computeInputGradient: needsGradient[0])
                return [gradients.dx, gradients.dw] + (hasBias ? [gradients.db] : [])
            }
        }
        return y
    }

    public var parameters: [Parameter] { [kernel, bias].compactMap { $0 } }

    public func prepare(batch: Int, backend: Backend) throws {
        guard let geometry, let kernel else { return }
        kernel.value = try backend.prepareConvolutionWeights(kernel.value, geometry: geometry, batch: batch)
    }

    public func summaryRows(name: String) -> [SummaryRow] {
        guard let geometry else { return [] }
        let macs = geometry.weightShape.elementCount * geometry.outputHeight * geometry.outputWidth
        let parameterCount = parameters.reduce(0) { $0 + $1.shape.elementCount }
        return [
            SummaryRow(
                name: name, kind: kind, outputShape: geometry.outputShape(batch: 1), parameterCount: parameterCount,
                flops: 2 * macs)
        ]
    }
}

/// A fully connected layer on `[N, F]` inputs, as Keras's `Dense` without activation. The kernel
/// is stored `[units, F]` (PyTorch's and oneDNN's order), the transpose of Keras's.
public final class Dense: Layer {
    public let kind = "dense"
    public let units: Int
    public let useBias: Bool
    public private(set) var kernel: Parameter?
    public private(set) var bias: Parameter?
    private var inputFeatures = 0

    public init(units: Int, useBias: Bool = true) {
        self.units = units
        self.useBias = useBias
    }

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        guard inputShape.rank == 1 else {
            throw BackendError("dense", "expected flat features, got \(inputShape); add Flatten or GlobalAveragePool2D")
        }
        guard units > 0 else { throw BackendError("dense", "units must be positive, got \(units)") }
        inputFeatures = inputShape[0]

        let values = context.glorotUniform(count: units * inputFeatures, fanIn: inputFeatures, fanOut: units)
        kernel = try context.makeParameter(
            "kernel", role: .kernel, shape: TensorShape(units, inputFeatures), values: values)
        if useBias {
            bias = try context.makeParameter(
                "bias", role: .bias, shape: TensorShape(units), values: [Float](repeating: 0, count: units))
        }
        return TensorShape(units)
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        guard let kernel else { throw BackendError("dense", "layer used before build") }
        let backend = context.backend
        let weights = kernel.value
        let biasValue = bias?.value
        let y = try backend.dense(x, weights: weights, bias: biasValue)

        if let tape = context.tape {
            let inputs = [x, weights] + (biasValue.map { [$0] } ?? [])
            let hasBias = biasValue != nil
            tape.record(y, inputs: inputs) { dy, needsGradient in
                let gradients = try backend.denseBackward(
                    dy, x: x, weights: weights, hasBias: hasBias, computeInputGradient: needsGradient[0])
                return [gradients.dx, gradients.dw] + (hasBias ? [gradients.db] : [])
            }
        }
        return y
    }

    public var parameters: [Parameter] { [kernel, bias].compactMap { $0 } }

    public func summaryRows(name: String) -> [SummaryRow] {
        let parameterCount = parameters.reduce(0) { $0 + $1.shape.elementCount }
        return [
            SummaryRow(
                name: name, kind: kind, outputShape: TensorShape(1, units), parameterCount: parameterCount,
                flops: 2 * units * inputFeatures)
        ]
    }
}
