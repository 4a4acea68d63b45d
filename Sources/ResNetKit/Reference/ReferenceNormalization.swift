// Batch normalization and ReLU of the reference backend, forward and backward.
// Readable reference, no vectorisation.
//
// Dimensions: N batch, C channels, H x W spatial size (1 x 1 for `[N, C]` input).
// Statistics are per channel over M = N * H * W values, and the variance is the biased one
// (divided by M, not M - 1), as Keras and oneDNN compute it in training.

extension ReferenceBackend {
    // MARK: - Batch normalization

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func batchNormTraining(_ x: Tensor, scale: Tensor, shift: Tensor, epsilon: Float) throws
        -> BatchNormOutput
    {
        let operation = "batchNormTraining"
        let sizes = try normalizationSizes(x, scale: scale, shift: shift, epsilon: epsilon, in: operation)
        guard sizes.count >= 2 else {
            throw BackendError(
                operation,
                "x of shape \(x.shape) has one value per channel, so the batch variance is zero and "
                    + "every output equals the shift; use a larger batch or inference mode")
        }
        let xValues = try storage(of: x, in: operation).values
        let scaleValues = try storage(of: scale, in: operation).values
        let shiftValues = try storage(of: shift, in: operation).values
        let epsilon = Scalar(epsilon)
        let count = Scalar(sizes.count)

        var y = [Scalar](repeating: 0, count: x.shape.elementCount)  // N x C x H x W
        var mean = [Scalar](repeating: 0, count: sizes.channels)  // C
        var variance = [Scalar](repeating: 0, count: sizes.channels)  // C
        xValues.withUnsafeBufferPointer { x in
            y.withUnsafeMutableBufferPointer { y in
                mean.withUnsafeMutableBufferPointer { mean in
                    variance.withUnsafeMutableBufferPointer { variance in
                        parallelFor(sizes.channels) { c in
                            let planes = sizes.planes(of: c)

                            var sum: Scalar = 0
                            for plane in planes {
                                for position in plane { sum += x[position] }
                            }
                            let channelMean = sum / count

                            var squares: Scalar = 0
                            for plane in planes {
                                for position in plane {
                                    let centered = x[position] - channelMean
                                    squares += centered * centered
                                }
                            }
                            let channelVariance = squares / count

                            let inverseDeviation = 1 / (channelVariance + epsilon).squareRoot()
                            for plane in planes {
                                for position in plane {
                                    let normalized = (x[position] - channelMean) * inverseDeviation
                                    y[position] = scaleValues[c] * normalized + shiftValues[c]
                                }
                            }
                            mean[c] = channelMean
                            variance[c] = channelVariance
                        }
                    }
                }
            }
        }

        let channelShape = TensorShape(sizes.channels)
        return BatchNormOutput(
            y: makeTensor(y, x.shape), mean: makeTensor(mean, channelShape),
            variance: makeTensor(variance, channelShape))
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func batchNormInference(
        _ x: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor, epsilon: Float
    ) throws -> Tensor {
        let operation = "batchNormInference"
        let sizes = try normalizationSizes(x, scale: scale, shift: shift, epsilon: epsilon, in: operation)
        try requireShape(mean, TensorShape(sizes.channels), "mean", in: operation)
        try requireShape(variance, TensorShape(sizes.channels), "variance", in: operation)
        let xValues = try storage(of: x, in: operation).values
        let scaleValues = try storage(of: scale, in: operation).values
        let shiftValues = try storage(of: shift, in: operation).values
        let meanValues = try storage(of: mean, in: operation).values
        let varianceValues = try storage(of: variance, in: operation).values
        let epsilon = Scalar(epsilon)

        var y = [Scalar](repeating: 0, count: x.shape.elementCount)  // N x C x H x W
        xValues.withUnsafeBufferPointer { x in
            y.withUnsafeMutableBufferPointer { y in
                parallelFor(sizes.channels) { c in
                    let inverseDeviation = 1 / (varianceValues[c] + epsilon).squareRoot()
                    for plane in sizes.planes(of: c) {
                        for position in plane {
                            let normalized = (x[position] - meanValues[c]) * inverseDeviation
                            y[position] = scaleValues[c] * normalized + shiftValues[c]
                        }
                    }
                }
            }
        }
        return makeTensor(y, x.shape)
    }

    /// Computes, per channel with x̂ = (x - mean) / sqrt(variance + epsilon):
    /// dshift = Σ dy, dscale = Σ dy x̂, and
    /// dx = scale / sqrt(variance + epsilon) / M * (M dy - dshift - x̂ dscale),
    /// which includes the paths through the batch mean and variance.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func batchNormBackward(
        _ dy: Tensor, x: Tensor, scale: Tensor, mean: Tensor, variance: Tensor, epsilon: Float
    ) throws -> BatchNormGradients {
        let operation = "batchNormBackward"
        let sizes = try normalizationSizes(x, scale: scale, shift: nil, epsilon: epsilon, in: operation)
        try requireShape(dy, x.shape, "dy", in: operation)
        try requireShape(mean, TensorShape(sizes.channels), "mean", in: operation)
        try requireShape(variance, TensorShape(sizes.channels), "variance", in: operation)
        let dyValues = try storage(of: dy, in: operation).values
        let xValues = try storage(of: x, in: operation).values
        let scaleValues = try storage(of: scale, in: operation).values
        let meanValues = try storage(of: mean, in: operation).values
        let varianceValues = try storage(of: variance, in: operation).values
        let epsilon = Scalar(epsilon)
        let count = Scalar(sizes.count)

        var dx = [Scalar](repeating: 0, count: x.shape.elementCount)  // N x C x H x W
        var dscale = [Scalar](repeating: 0, count: sizes.channels)  // C
        var dshift = [Scalar](repeating: 0, count: sizes.channels)  // C
        dyValues.withUnsafeBufferPointer { dy in
            xValues.withUnsafeBufferPointer { x in
                dx.withUnsafeMutableBufferPointer { dx in
                    dscale.withUnsafeMutableBufferPointer { dscale in
                        dshift.withUnsafeMutableBufferPointer { dshift in
                            parallelFor(sizes.channels) { c in
                                let planes = sizes.planes(of: c)
                                let inverseDeviation = 1 / (varianceValues[c] + epsilon).squareRoot()

                                var shiftGradient: Scalar = 0
                                var scaleGradient: Scalar = 0
                                for plane in planes {
                                    for position in plane {
                                        let normalized = (x[position] - meanValues[c]) * inverseDeviation
                                        shiftGradient += dy[position]
                                        scaleGradient += dy[position] * normalized
                                    }
                                }

                                let factor = scaleValues[c] * inverseDeviation / count
                                for plane in planes {
                                    for position in plane {
                                        let normalized = (x[position] - meanValues[c]) * inverseDeviation
                                        dx[position] =
                                            factor * (count * dy[position] - shiftGradient - normalized * scaleGradient)
                                    }
                                }
                                dscale[c] = scaleGradient
                                dshift[c] = shiftGradient
                            }
                        }
                    }
                }
            }
        }

        let channelShape = TensorShape(sizes.channels)
        return BatchNormGradients(
            dx: makeTensor(dx, x.shape), dscale: makeTensor(dscale, channelShape),
            dshift: makeTensor(dshift, channelShape))
    }

    /// Checks the shapes of `x` (`[N, C, H, W]` or `[N, C]`), `scale` and `shift` (`[C]`) and
    /// the epsilon, and returns the sizes the loops need.
    private func normalizationSizes(
        _ x: Tensor, scale: Tensor, shift: Tensor?, epsilon: Float, in operation: String
    ) throws -> NormalizationSizes {
        guard x.shape.rank == 4 || x.shape.rank == 2 else {
            throw BackendError(operation, "x must be NCHW or [N, C], got shape \(x.shape)")
        }
        let channels = x.shape[1]
        try requireShape(scale, TensorShape(channels), "scale", in: operation)
        if let shift {
            try requireShape(shift, TensorShape(channels), "shift", in: operation)
        }
        guard epsilon.isFinite, epsilon >= 0 else {
            throw BackendError(operation, "epsilon must be finite and not negative, got \(epsilon)")
        }
        let planeSize = x.shape.rank == 4 ? x.shape[2] * x.shape[3] : 1
        return NormalizationSizes(batch: x.shape[0], channels: channels, planeSize: planeSize)
    }

    // MARK: - ReLU

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func relu(_ x: Tensor) throws -> Tensor {
        let xValues = try storage(of: x, in: "relu").values
        // `x < 0 ? 0 : x` rather than `max(x, 0)`, so that a NaN input stays visible downstream.
        let y = xValues.map { $0 < 0 ? 0 : $0 }
        return makeTensor(y, x.shape)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func reluBackward(_ dy: Tensor, y: Tensor) throws -> Tensor {
        let operation = "reluBackward"
        try requireShape(dy, y.shape, "dy", in: operation)
        let dyValues = try storage(of: dy, in: operation).values
        let yValues = try storage(of: y, in: operation).values
        var dx = [Scalar](repeating: 0, count: y.shape.elementCount)
        for position in dx.indices where yValues[position] > 0 {
            dx[position] = dyValues[position]
        }
        return makeTensor(dx, y.shape)
    }
}

/// The sizes of a batch-normalized tensor, seen as N planes of `planeSize` values per channel.
struct NormalizationSizes {
    var batch: Int
    var channels: Int
    var planeSize: Int

    /// The number of values per channel, M = N * H * W.
    var count: Int { batch * planeSize }

    /// Returns the flat positions of channel `c`, one range per image.
    func planes(of c: Int) -> [Range<Int>] {
        (0..<batch).map { n in
            let start = (n * channels + c) * planeSize
            return start..<(start + planeSize)
        }
    }
}
