/// Gradients of a convolution or dense layer with respect to its input and parameters.
public struct LinearGradients {
    /// Gradient with respect to the layer's input; nil when it was not requested.
    public var dx: Tensor?
    /// Gradient with respect to the kernel, in the same layout as the kernel.
    public var dw: Tensor
    /// Gradient with respect to the bias; nil when the layer has none.
    public var db: Tensor?

    public init(dx: Tensor?, dw: Tensor, db: Tensor?) {
        self.dx = dx
        self.dw = dw
        self.db = db
    }
}

/// The output of batch normalization in training mode: the normalized tensor and the batch
/// statistics it used (biased variance, as Keras and oneDNN compute it), each of shape `[C]`.
public struct BatchNormOutput {
    public var y: Tensor
    public var mean: Tensor
    public var variance: Tensor

    public init(y: Tensor, mean: Tensor, variance: Tensor) {
        self.y = y
        self.mean = mean
        self.variance = variance
    }
}

public struct BatchNormGradients {
    public var dx: Tensor
    public var dscale: Tensor
    public var dshift: Tensor

    public init(dx: Tensor, dscale: Tensor, dshift: Tensor) {
        self.dx = dx
        self.dscale = dscale
        self.dshift = dshift
    }
}

/// The output of max pooling. `indices` carries what the backward pass needs to route each
/// gradient to the maximum of its window (oneDNN's workspace, or argmax positions). It is nil
/// when the forward pass ran for inference.
public struct MaxPoolOutput {
    public var y: Tensor
    public var indices: Tensor?

    public init(y: Tensor, indices: Tensor?) {
        self.y = y
        self.indices = indices
    }
}

/// An in-place update of several same-sized raw buffers, element by element, such as an
/// optimizer step over a parameter, its gradient and its moments.
///
/// A backend calls the overload for its scalar type with buffers in its own layout. All
/// buffers handed over at once have the same count, and padding elements hold zeros.
public protocol ElementwiseUpdate {
    func apply(_ buffers: [UnsafeMutableBufferPointer<Float>])
    func apply(_ buffers: [UnsafeMutableBufferPointer<Double>])
}

/// The operations a model needs, forward and backward, on tensors the backend owns.
///
/// Shapes are canonical (see `TensorShape`); the layout in memory is the backend's choice and
/// stays hidden. A method throws `BackendError` for shapes it cannot handle, naming the
/// operation and the shapes. Gradient names follow one vocabulary: `dy` is the gradient of the
/// loss with respect to an operation's output, `dx`, `dw`, `db` with respect to its input,
/// kernel and bias.
public protocol Backend: AnyObject {
    /// A short name, such as `onednn` or `reference`.
    var name: String { get }

    /// A line describing the library, instruction set and threads, for logs.
    var summary: String { get }

    // MARK: - Data

    /// Creates a tensor from values in canonical order.
    func makeTensor(_ values: [Float], shape: TensorShape) throws -> Tensor

    /// Creates a tensor from values in canonical order, read from a buffer.
    func makeTensor(copying values: UnsafeBufferPointer<Float>, shape: TensorShape) throws -> Tensor

    /// Returns the tensor's values in canonical order.
    func values(of tensor: Tensor) throws -> [Float]

    /// Creates a tensor of zeros with the same shape, layout and element count as `tensor`, for
    /// optimizer state that is updated element by element beside it.
    func zeros(like tensor: Tensor) throws -> Tensor

    /// Runs `update` on the raw storage of the tensors, which must share shape and layout.
    func update(_ tensors: [Tensor], with update: ElementwiseUpdate) throws

    // MARK: - Convolution and dense

    /// Convolution of `x` (NCHW) with `weights` (OIHW) plus an optional `bias` (`[K]`).
    func convolution(_ x: Tensor, weights: Tensor, bias: Tensor?, geometry: ConvolutionGeometry) throws
        -> Tensor

    func convolutionBackward(
        _ dy: Tensor, x: Tensor, weights: Tensor, hasBias: Bool, geometry: ConvolutionGeometry,
        computeInputGradient: Bool
    ) throws -> LinearGradients

    /// `x` (`[N, I]`) times the transposed `weights` (`[O, I]`) plus `bias` (`[O]`).
    func dense(_ x: Tensor, weights: Tensor, bias: Tensor?) throws -> Tensor

    func denseBackward(_ dy: Tensor, x: Tensor, weights: Tensor, hasBias: Bool, computeInputGradient: Bool)
        throws -> LinearGradients

    // MARK: - Normalization and activation

    /// Batch normalization over N, H and W with the batch's own statistics.
    func batchNormTraining(_ x: Tensor, scale: Tensor, shift: Tensor, epsilon: Float) throws
        -> BatchNormOutput

    /// Batch normalization with given (running) statistics.
    func batchNormInference(
        _ x: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor, epsilon: Float
    ) throws -> Tensor

    /// Backward of `batchNormTraining`, given the batch statistics it returned.
    func batchNormBackward(
        _ dy: Tensor, x: Tensor, scale: Tensor, mean: Tensor, variance: Tensor, epsilon: Float
    ) throws -> BatchNormGradients

    func relu(_ x: Tensor) throws -> Tensor

    /// Backward of ReLU from its output `y`: `dx = dy` where `y > 0`, else 0.
    func reluBackward(_ dy: Tensor, y: Tensor) throws -> Tensor

    // MARK: - Pooling

    func maxPool(_ x: Tensor, geometry: PoolGeometry, training: Bool) throws -> MaxPoolOutput

    func maxPoolBackward(_ dy: Tensor, x: Tensor, forward: MaxPoolOutput, geometry: PoolGeometry) throws
        -> Tensor

    /// Mean over H and W: NCHW to `[N, C]`.
    func globalAveragePool(_ x: Tensor) throws -> Tensor

    func globalAveragePoolBackward(_ dy: Tensor, inputShape: TensorShape) throws -> Tensor

    // MARK: - Element-wise and shape

    /// `a + b`, for the residual connection and for summing gradients.
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor

    /// Returns the same values under a new shape with the same element count, in canonical order.
    func reshape(_ x: Tensor, to shape: TensorShape) throws -> Tensor

    // MARK: - Layout

    /// Returns the kernel in the layout the backend's convolution runs fastest at this batch
    /// size. Gradients of the returned tensor come back in its layout.
    func prepareConvolutionWeights(_ weights: Tensor, geometry: ConvolutionGeometry, batch: Int) throws
        -> Tensor
}

extension Backend {
    /// Returns the kernel in the layout the backend's convolution runs fastest at this batch
    /// size; a backend without a preference returns it unchanged.
    public func prepareConvolutionWeights(_ weights: Tensor, geometry: ConvolutionGeometry, batch: Int) throws
        -> Tensor
    {
        weights
    }
}
