/// The padding of a convolution or pooling window.
public enum Padding: Hashable, Sendable {
    /// TensorFlow's 'same': output size ceil(input / stride); when the total padding is odd, the
    /// extra row and column go at the bottom and the right.
    case same
    /// No padding: output size floor((input - window) / stride) + 1.
    case valid
    /// Explicit padding on each side, as PyTorch's `padding=` gives it.
    case explicit(top: Int, bottom: Int, left: Int, right: Int)
}

/// Padding of one spatial axis, resolved to sizes.
struct AxisPadding {
    var before: Int
    var after: Int
    var output: Int
}

func resolvePadding(
    _ padding: Padding, input: Int, window: Int, stride: Int, axis: Axis
) throws -> AxisPadding {
    switch padding {
    case .same:
        let output = (input + stride - 1) / stride
        let total = max((output - 1) * stride + window - input, 0)
        return AxisPadding(before: total / 2, after: total - total / 2, output: output)
    case .valid:
        guard input >= window else {
            throw BackendError(
                "padding", "input \(axis.rawValue) \(input) is smaller than the window \(window) with 'valid' padding")
        }
        return AxisPadding(before: 0, after: 0, output: (input - window) / stride + 1)
    case .explicit(let top, let bottom, let left, let right):
        let (before, after) = axis == .height ? (top, bottom) : (left, right)
        guard before >= 0, after >= 0 else {
            throw BackendError("padding", "explicit padding must not be negative, got \(before) and \(after)")
        }
        let padded = input + before + after
        guard padded >= window else {
            throw BackendError(
                "padding", "padded input \(axis.rawValue) \(padded) is smaller than the window \(window)")
        }
        return AxisPadding(before: before, after: after, output: (padded - window) / stride + 1)
    }
}

enum Axis: String {
    case height, width
}

/// The shape-dependent parameters of a 2-D convolution, for every batch size.
///
/// Dimension names: C input channels, K output channels, H x W input, R x S kernel,
/// OH x OW output.
public struct ConvolutionGeometry: Hashable, Sendable, CustomStringConvertible {
    public var inputChannels: Int
    public var outputChannels: Int
    public var inputHeight: Int
    public var inputWidth: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideHeight: Int
    public var strideWidth: Int
    public var padTop: Int
    public var padBottom: Int
    public var padLeft: Int
    public var padRight: Int
    public var outputHeight: Int
    public var outputWidth: Int

    public init(
        inputChannels: Int, inputHeight: Int, inputWidth: Int, outputChannels: Int,
        kernel: (height: Int, width: Int), stride: (height: Int, width: Int), padding: Padding
    ) throws {
        guard inputChannels > 0, outputChannels > 0, inputHeight > 0, inputWidth > 0 else {
            throw BackendError(
                "convolution",
                "channels and sizes must be positive, got C=\(inputChannels) K=\(outputChannels) H=\(inputHeight) W=\(inputWidth)")
        }
        guard kernel.height > 0, kernel.width > 0, stride.height > 0, stride.width > 0 else {
            throw BackendError(
                "convolution",
                "kernel and stride must be positive, got kernel \(kernel.height)x\(kernel.width) stride \(stride.height)x\(stride.width)")
        }
        let vertical = try resolvePadding(
            padding, input: inputHeight, window: kernel.height, stride: stride.height, axis: .height)
        let horizontal = try resolvePadding(
            padding, input: inputWidth, window: kernel.width, stride: stride.width, axis: .width)
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.kernelHeight = kernel.height
        self.kernelWidth = kernel.width
        self.strideHeight = stride.height
        self.strideWidth = stride.width
        self.padTop = vertical.before
        self.padBottom = vertical.after
        self.padLeft = horizontal.before
        self.padRight = horizontal.after
        self.outputHeight = vertical.output
        self.outputWidth = horizontal.output
    }

    public func inputShape(batch: Int) -> TensorShape {
        TensorShape(batch, inputChannels, inputHeight, inputWidth)
    }

    public func outputShape(batch: Int) -> TensorShape {
        TensorShape(batch, outputChannels, outputHeight, outputWidth)
    }

    /// The kernel's shape, OIHW.
    public var weightShape: TensorShape {
        TensorShape(outputChannels, inputChannels, kernelHeight, kernelWidth)
    }

    public var description: String {
        "\(inputChannels)x\(inputHeight)x\(inputWidth) -> \(outputChannels)x\(outputHeight)x\(outputWidth), "
            + "kernel \(kernelHeight)x\(kernelWidth), stride \(strideHeight)x\(strideWidth), "
            + "padding \(padTop),\(padBottom),\(padLeft),\(padRight)"
    }
}

/// The shape-dependent parameters of a max or average pooling window, for every batch size.
/// Padded positions never win a max and do not count in an average.
public struct PoolGeometry: Hashable, Sendable, CustomStringConvertible {
    public var channels: Int
    public var inputHeight: Int
    public var inputWidth: Int
    public var windowHeight: Int
    public var windowWidth: Int
    public var strideHeight: Int
    public var strideWidth: Int
    public var padTop: Int
    public var padBottom: Int
    public var padLeft: Int
    public var padRight: Int
    public var outputHeight: Int
    public var outputWidth: Int

    public init(
        channels: Int, inputHeight: Int, inputWidth: Int,
        window: (height: Int, width: Int), stride: (height: Int, width: Int), padding: Padding
    ) throws {
        guard channels > 0, inputHeight > 0, inputWidth > 0 else {
            throw BackendError(
                "pooling", "channels and sizes must be positive, got C=\(channels) H=\(inputHeight) W=\(inputWidth)")
        }
        guard window.height > 0, window.width > 0, stride.height > 0, stride.width > 0 else {
            throw BackendError(
                "pooling",
                "window and stride must be positive, got window \(window.height)x\(window.width) stride \(stride.height)x\(stride.width)")
        }
        let vertical = try resolvePadding(
            padding, input: inputHeight, window: window.height, stride: stride.height, axis: .height)
        let horizontal = try resolvePadding(
            padding, input: inputWidth, window: window.width, stride: stride.width, axis: .width)
        guard vertical.before < window.height, vertical.after < window.height,
            horizontal.before < window.width, horizontal.after < window.width
        else {
            throw BackendError("pooling", "padding must be smaller than the window \(window.height)x\(window.width)")
        }
        self.channels = channels
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.windowHeight = window.height
        self.windowWidth = window.width
        self.strideHeight = stride.height
        self.strideWidth = stride.width
        self.padTop = vertical.before
        self.padBottom = vertical.after
        self.padLeft = horizontal.before
        self.padRight = horizontal.after
        self.outputHeight = vertical.output
        self.outputWidth = horizontal.output
    }

    public func inputShape(batch: Int) -> TensorShape {
        TensorShape(batch, channels, inputHeight, inputWidth)
    }

    public func outputShape(batch: Int) -> TensorShape {
        TensorShape(batch, channels, outputHeight, outputWidth)
    }

    public var description: String {
        "\(channels)x\(inputHeight)x\(inputWidth) -> \(channels)x\(outputHeight)x\(outputWidth), "
            + "window \(windowHeight)x\(windowWidth), stride \(strideHeight)x\(strideWidth), "
            + "padding \(padTop),\(padBottom),\(padLeft),\(padRight)"
    }
}
