/// The batch-norm statistics convention, kept in this one place: Keras's defaults.
///
/// In training, batch norm normalizes with the batch's mean and biased variance (divided by
/// N*H*W) and then updates `running = momentum * running + (1 - momentum) * batch` for both
/// statistics. Inference uses the running statistics. PyTorch's `momentum=0.1` is the same rule
/// with momentum 0.9 here, but PyTorch updates the running variance with the unbiased estimate.
public enum BatchNormConvention {
    public static let momentum: Float = 0.99
    public static let epsilon: Float = 1e-3
    public static let description = "keras: running = 0.99 * running + 0.01 * batch, biased batch variance, epsilon 1e-3"
}

/// Batch normalization over the batch and spatial axes of NCHW input, with learnable scale
/// (gamma, initially 1) and shift (beta, initially 0).
public final class BatchNorm: Layer {
    public let kind = "batch_normalization"
    public let momentum: Float
    public let epsilon: Float
    public private(set) var scale: Parameter?
    public private(set) var shift: Parameter?
    public private(set) var runningMean: Parameter?
    public private(set) var runningVariance: Parameter?
    private var outputShape = TensorShape()

    public init(momentum: Float = BatchNormConvention.momentum, epsilon: Float = BatchNormConvention.epsilon) {
        self.momentum = momentum
        self.epsilon = epsilon
    }

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        guard inputShape.rank == 3 else {
            throw BackendError("batch_normalization", "expected an input of shape CxHxW, got \(inputShape)")
        }
        let channels = inputShape[0]
        let shape = TensorShape(channels)
        let ones = [Float](repeating: 1, count: channels)
        let zeros = [Float](repeating: 0, count: channels)
        scale = try context.makeParameter("scale", role: .scale, shape: shape, values: ones)
        shift = try context.makeParameter("shift", role: .shift, shape: shape, values: zeros)
        runningMean = try context.makeParameter("running_mean", role: .runningMean, shape: shape, values: zeros)
        runningVariance = try context.makeParameter(
            "running_variance", role: .runningVariance, shape: shape, values: ones)
        outputShape = inputShape
        return inputShape
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        guard let scale, let shift, let runningMean, let runningVariance else {
            throw BackendError("batch_normalization", "layer used before build")
        }
        let backend = context.backend
        guard context.training else {
            return try backend.batchNormInference(
                x, scale: scale.value, shift: shift.value, mean: runningMean.value,
                variance: runningVariance.value, epsilon: epsilon)
        }

        let valuesPerChannel = x.shape.elementCount / max(x.shape[1], 1)
        guard valuesPerChannel >= 2 else {
            throw BackendError(
                "batch_normalization",
                "a training batch of shape \(x.shape) has one value per channel, so its variance is undefined; "
                    + "every training batch needs at least 2 samples at this input size (the last batch of an "
                    + "epoch holds the leftover samples, so choose --samples and --batch-size to leave none "
                    + "or at least 2), or use a larger input")
        }
        let output = try backend.batchNormTraining(x, scale: scale.value, shift: shift.value, epsilon: epsilon)
        try backend.update(
            [runningMean.value, output.mean], with: MovingAverage(momentum: momentum))
        try backend.update(
            [runningVariance.value, output.variance], with: MovingAverage(momentum: momentum))

        if let tape = context.tape {
            let (scaleValue, mean, variance, epsilon) = (scale.value, output.mean, output.variance, epsilon)
            tape.record(output.y, inputs: [x, scale.value, shift.value]) { dy, _ in
                let gradients = try backend.batchNormBackward(
                    dy, x: x, scale: scaleValue, mean: mean, variance: variance, epsilon: epsilon)
                return [gradients.dx, gradients.dscale, gradients.dshift]
            }
        }
        return output.y
    }

    public var parameters: [Parameter] { [scale, shift, runningMean, runningVariance].compactMap { $0 } }

    public func summaryRows(name: String) -> [SummaryRow] {
        [
            SummaryRow(
                name: name, kind: kind, outputShape: TensorShape([1] + outputShape.dims),
                parameterCount: 4 * (outputShape.dims.first ?? 0), flops: 0)
        ]
    }
}

/// `running = momentum * running + (1 - momentum) * batch` on buffers `[running, batch]`.
struct MovingAverage: ElementwiseUpdate {
    var momentum: Float

    func apply(_ buffers: [UnsafeMutableBufferPointer<Float>]) {
        blend(buffers, momentum)
    }

    func apply(_ buffers: [UnsafeMutableBufferPointer<Double>]) {
        blend(buffers, Double(momentum))
    }

    private func blend<Scalar: BinaryFloatingPoint>(_ buffers: [UnsafeMutableBufferPointer<Scalar>], _ momentum: Scalar) {
        let running = buffers[0]
        let batch = buffers[1]
        for index in running.indices {
            running[index] = momentum * running[index] + (1 - momentum) * batch[index]
        }
    }
}
