// Convolution and dense layers of the reference backend, forward and backward.
// Readable reference, no vectorisation by hand: direct loops over the NCHW and OIHW arrays,
// whose unit-stride inner loops a release build may vectorise by itself.
//
// Dimensions:
//   N   batch
//   C   input channels                 K   output channels
//   H   input height                   W   input width
//   R   kernel height                  S   kernel width
//   OH  output height                  OW  output width
// Output position (oh, ow) with kernel offset (r, s) reads input row
// ih = oh * strideHeight - padTop + r and column iw = ow * strideWidth - padLeft + s.
// Positions outside 0..<H or 0..<W are padding and contribute zero.

extension ReferenceBackend {
    // MARK: - Convolution

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func convolution(_ x: Tensor, weights: Tensor, bias: Tensor?, geometry: ConvolutionGeometry) throws
        -> Tensor
    {
        let operation = "convolution"
        try requireRank(x, 4, "x", in: operation)
        let batch = x.shape[0]
        try requireShape(x, geometry.inputShape(batch: batch), "x", in: operation)
        try requireShape(weights, geometry.weightShape, "weights", in: operation)
        if let bias {
            try requireShape(bias, TensorShape(geometry.outputChannels), "bias", in: operation)
        }
        let xValues = try storage(of: x, in: operation).values
        let weightValues = try storage(of: weights, in: operation).values
        let biasValues = try bias.map { try storage(of: $0, in: operation).values }

        let outputShape = geometry.outputShape(batch: batch)
        var y = [Scalar](repeating: 0, count: outputShape.elementCount)  // N x K x OH x OW
        xValues.withUnsafeBufferPointer { x in
            weightValues.withUnsafeBufferPointer { weights in
                y.withUnsafeMutableBufferPointer { y in
                    parallelFor(batch) { n in
                        convolutionForward(image: n, x: x, weights: weights, y: y, geometry: geometry)
                    }
                }
            }
        }

        if let biasValues {
            let planeSize = geometry.outputHeight * geometry.outputWidth
            y.withUnsafeMutableBufferPointer { y in
                for n in 0..<batch {
                    for k in 0..<geometry.outputChannels {
                        let plane = (n * geometry.outputChannels + k) * planeSize
                        for position in plane..<(plane + planeSize) { y[position] += biasValues[k] }
                    }
                }
            }
        }
        return makeTensor(y, outputShape)
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func convolutionBackward(
        _ dy: Tensor, x: Tensor, weights: Tensor, hasBias: Bool, geometry: ConvolutionGeometry,
        computeInputGradient: Bool
    ) throws -> LinearGradients {
        let operation = "convolutionBackward"
        try requireRank(x, 4, "x", in: operation)
        let batch = x.shape[0]
        try requireShape(x, geometry.inputShape(batch: batch), "x", in: operation)
        try requireShape(weights, geometry.weightShape, "weights", in: operation)
        try requireShape(dy, geometry.outputShape(batch: batch), "dy", in: operation)
        let xValues = try storage(of: x, in: operation).values
        let weightValues = try storage(of: weights, in: operation).values
        let dyValues = try storage(of: dy, in: operation).values

        var dx: [Scalar]? = nil  // N x C x H x W
        if computeInputGradient {
            var values = [Scalar](repeating: 0, count: x.shape.elementCount)
            dyValues.withUnsafeBufferPointer { dy in
                weightValues.withUnsafeBufferPointer { weights in
                    values.withUnsafeMutableBufferPointer { dx in
                        parallelFor(batch) { n in
                            convolutionInputGradient(image: n, dy: dy, weights: weights, dx: dx, geometry: geometry)
                        }
                    }
                }
            }
            dx = values
        }

        var dw = [Scalar](repeating: 0, count: geometry.weightShape.elementCount)  // K x C x R x S
        dyValues.withUnsafeBufferPointer { dy in
            xValues.withUnsafeBufferPointer { x in
                dw.withUnsafeMutableBufferPointer { dw in
                    parallelFor(geometry.outputChannels) { k in
                        convolutionWeightGradient(
                            outputChannel: k, batch: batch, dy: dy, x: x, dw: dw, geometry: geometry)
                    }
                }
            }
        }

        var db: [Scalar]? = nil  // K
        if hasBias {
            db = sumPlanes(dyValues, batch: batch, channels: geometry.outputChannels,
                           planeSize: geometry.outputHeight * geometry.outputWidth)
        }

        return LinearGradients(
            dx: dx.map { makeTensor($0, x.shape) },
            dw: makeTensor(dw, geometry.weightShape),
            db: db.map { makeTensor($0, TensorShape(geometry.outputChannels)) })
    }

    // MARK: - Dense

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func dense(_ x: Tensor, weights: Tensor, bias: Tensor?) throws -> Tensor {
        let operation = "dense"
        let (batch, inputs, outputs) = try denseSizes(x: x, weights: weights, in: operation)
        if let bias {
            try requireShape(bias, TensorShape(outputs), "bias", in: operation)
        }
        let xValues = try storage(of: x, in: operation).values
        let weightValues = try storage(of: weights, in: operation).values
        let biasValues = try bias.map { try storage(of: $0, in: operation).values }

        var y = [Scalar](repeating: 0, count: batch * outputs)  // N x O
        xValues.withUnsafeBufferPointer { x in
            weightValues.withUnsafeBufferPointer { weights in
                y.withUnsafeMutableBufferPointer { y in
                    parallelFor(batch) { n in
                        for o in 0..<outputs {
                            var sum: Scalar = biasValues?[o] ?? 0
                            for i in 0..<inputs { sum += x[n * inputs + i] * weights[o * inputs + i] }
                            y[n * outputs + o] = sum
                        }
                    }
                }
            }
        }
        return makeTensor(y, TensorShape(batch, outputs))
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func denseBackward(
        _ dy: Tensor, x: Tensor, weights: Tensor, hasBias: Bool, computeInputGradient: Bool
    ) throws -> LinearGradients {
        let operation = "denseBackward"
        let (batch, inputs, outputs) = try denseSizes(x: x, weights: weights, in: operation)
        try requireShape(dy, TensorShape(batch, outputs), "dy", in: operation)
        let xValues = try storage(of: x, in: operation).values
        let weightValues = try storage(of: weights, in: operation).values
        let dyValues = try storage(of: dy, in: operation).values

        var dx: [Scalar]? = nil  // N x I
        if computeInputGradient {
            var values = [Scalar](repeating: 0, count: batch * inputs)
            dyValues.withUnsafeBufferPointer { dy in
                weightValues.withUnsafeBufferPointer { weights in
                    values.withUnsafeMutableBufferPointer { dx in
                        parallelFor(batch) { n in
                            for o in 0..<outputs {
                                let gradient = dy[n * outputs + o]
                                for i in 0..<inputs { dx[n * inputs + i] += gradient * weights[o * inputs + i] }
                            }
                        }
                    }
                }
            }
            dx = values
        }

        var dw = [Scalar](repeating: 0, count: outputs * inputs)  // O x I
        dyValues.withUnsafeBufferPointer { dy in
            xValues.withUnsafeBufferPointer { x in
                dw.withUnsafeMutableBufferPointer { dw in
                    parallelFor(outputs) { o in
                        for n in 0..<batch {
                            let gradient = dy[n * outputs + o]
                            for i in 0..<inputs { dw[o * inputs + i] += gradient * x[n * inputs + i] }
                        }
                    }
                }
            }
        }

        var db: [Scalar]? = nil  // O
        if hasBias {
            db = sumPlanes(dyValues, batch: batch, channels: outputs, planeSize: 1)
        }

        return LinearGradients(
            dx: dx.map { makeTensor($0, x.shape) },
            dw: makeTensor(dw, weights.shape),
            db: db.map { makeTensor($0, TensorShape(outputs)) })
    }

    /// Checks that `x` is `[N, I]` and `weights` is `[O, I]`, and returns N, I and O.
    private func denseSizes(x: Tensor, weights: Tensor, in operation: String) throws -> (Int, Int, Int) {
        try requireRank(x, 2, "x", in: operation)
        try requireRank(weights, 2, "weights", in: operation)
        guard x.shape[1] == weights.shape[1] else {
            throw BackendError(
                operation,
                "x has shape \(x.shape) with \(x.shape[1]) features, but weights of shape \(weights.shape) "
                    + "expect \(weights.shape[1])")
        }
        return (x.shape[0], x.shape[1], weights.shape[0])
    }
}

// MARK: - Loops

/// Returns the output positions `o` whose input position `o * stride - pad + offset` lies in
/// `0..<input`, so that the loops over `o` need no bounds test.
func validOutputRange(offset: Int, pad: Int, stride: Int, input: Int, output: Int) -> Range<Int> {
    let shift = pad - offset
    let lower = shift <= 0 ? 0 : (shift + stride - 1) / stride
    let highestInput = input - 1 + shift
    guard highestInput >= 0 else { return 0..<0 }
    let upper = min(output, highestInput / stride + 1)
    return lower..<max(lower, upper)
}

/// Adds image `n`'s convolution into `y` (N x K x OH x OW, zero on entry).
@_specialize(where Scalar == Float)
@_specialize(where Scalar == Double)
func convolutionForward<Scalar: BinaryFloatingPoint>(
    image n: Int, x: UnsafeBufferPointer<Scalar>, weights: UnsafeBufferPointer<Scalar>,
    y: UnsafeMutableBufferPointer<Scalar>, geometry g: ConvolutionGeometry
) {
    let (C, K, H, W) = (g.inputChannels, g.outputChannels, g.inputHeight, g.inputWidth)
    let (R, S, OH, OW) = (g.kernelHeight, g.kernelWidth, g.outputHeight, g.outputWidth)
    for k in 0..<K {
        let yPlane = (n * K + k) * OH * OW
        for c in 0..<C {
            let xPlane = (n * C + c) * H * W
            for r in 0..<R {
                let rows = validOutputRange(offset: r, pad: g.padTop, stride: g.strideHeight, input: H, output: OH)
                for s in 0..<S {
                    let weight = weights[((k * C + c) * R + r) * S + s]
                    let columns = validOutputRange(
                        offset: s, pad: g.padLeft, stride: g.strideWidth, input: W, output: OW)
                    for oh in rows {
                        let ih = oh * g.strideHeight - g.padTop + r
                        let xRow = xPlane + ih * W - g.padLeft + s
                        let yRow = yPlane + oh * OW
                        multiplyAdd(
                            weight, x, from: xRow + columns.lowerBound * g.strideWidth, stride: g.strideWidth,
                            into: y, from: yRow + columns.lowerBound, count: columns.count)
                    }
                }
            }
        }
    }
}

/// Adds image `n`'s input gradient into `dx` (N x C x H x W, zero on entry): each output
/// gradient flows back to every input its window read, times the weight that read it.
@_specialize(where Scalar == Float)
@_specialize(where Scalar == Double)
func convolutionInputGradient<Scalar: BinaryFloatingPoint>(
    image n: Int, dy: UnsafeBufferPointer<Scalar>, weights: UnsafeBufferPointer<Scalar>,
    dx: UnsafeMutableBufferPointer<Scalar>, geometry g: ConvolutionGeometry
) {
    let (C, K, H, W) = (g.inputChannels, g.outputChannels, g.inputHeight, g.inputWidth)
    let (R, S, OH, OW) = (g.kernelHeight, g.kernelWidth, g.outputHeight, g.outputWidth)
    for k in 0..<K {
        let yPlane = (n * K + k) * OH * OW
        for c in 0..<C {
            let xPlane = (n * C + c) * H * W
            for r in 0..<R {
                let rows = validOutputRange(offset: r, pad: g.padTop, stride: g.strideHeight, input: H, output: OH)
                for s in 0..<S {
                    let weight = weights[((k * C + c) * R + r) * S + s]
                    let columns = validOutputRange(
                        offset: s, pad: g.padLeft, stride: g.strideWidth, input: W, output: OW)
                    for oh in rows {
                        let ih = oh * g.strideHeight - g.padTop + r
                        let xRow = xPlane + ih * W - g.padLeft + s
                        let yRow = yPlane + oh * OW
                        scatterMultiplyAdd(
                            weight, dy, from: yRow + columns.lowerBound,
                            into: dx, from: xRow + columns.lowerBound * g.strideWidth, stride: g.strideWidth,
                            count: columns.count)
                    }
                }
            }
        }
    }
}

/// Writes the kernel gradient of output channel `k` into `dw` (K x C x R x S), summed over
/// the whole batch.
@_specialize(where Scalar == Float)
@_specialize(where Scalar == Double)
func convolutionWeightGradient<Scalar: BinaryFloatingPoint>(
    outputChannel k: Int, batch: Int, dy: UnsafeBufferPointer<Scalar>, x: UnsafeBufferPointer<Scalar>,
    dw: UnsafeMutableBufferPointer<Scalar>, geometry g: ConvolutionGeometry
) {
    let (C, K, H, W) = (g.inputChannels, g.outputChannels, g.inputHeight, g.inputWidth)
    let (R, S, OH, OW) = (g.kernelHeight, g.kernelWidth, g.outputHeight, g.outputWidth)
    for c in 0..<C {
        for r in 0..<R {
            let rows = validOutputRange(offset: r, pad: g.padTop, stride: g.strideHeight, input: H, output: OH)
            for s in 0..<S {
                let columns = validOutputRange(offset: s, pad: g.padLeft, stride: g.strideWidth, input: W, output: OW)
                var sum: Scalar = 0
                for n in 0..<batch {
                    let xPlane = (n * C + c) * H * W
                    let yPlane = (n * K + k) * OH * OW
                    for oh in rows {
                        let ih = oh * g.strideHeight - g.padTop + r
                        let xRow = xPlane + ih * W - g.padLeft + s
                        let yRow = yPlane + oh * OW
                        sum += dotProduct(
                            dy, from: yRow + columns.lowerBound,
                            x, from: xRow + columns.lowerBound * g.strideWidth, stride: g.strideWidth,
                            count: columns.count)
                    }
                }
                dw[((k * C + c) * R + r) * S + s] = sum
            }
        }
    }
}

/// Adds `alpha * x[xStart + i * xStride]` to `y[yStart + i]` for `i` in `0..<count`.
///
/// The loops run on raw pointers with wrapping index arithmetic, so that a release build can
/// vectorise the unit-stride case. The assertions keep the bounds checks of a debug build.
@inline(__always)
func multiplyAdd<Scalar: BinaryFloatingPoint>(
    _ alpha: Scalar, _ x: UnsafeBufferPointer<Scalar>, from xStart: Int, stride xStride: Int,
    into y: UnsafeMutableBufferPointer<Scalar>, from yStart: Int, count: Int
) {
    guard count > 0 else { return }
    assert(xStart >= 0, "x starts before its buffer")
    assert(xStart + (count - 1) * xStride < x.count, "x ends after its buffer")
    assert(yStart >= 0, "y starts before its buffer")
    assert(yStart + count <= y.count, "y ends after its buffer")
    let source = x.baseAddress! + xStart
    let target = y.baseAddress! + yStart
    if xStride == 1 {
        for i in 0..<count { target[i] += alpha * source[i] }
    } else {
        for i in 0..<count { target[i] += alpha * source[i &* xStride] }
    }
}

/// Adds `alpha * y[yStart + i]` to `x[xStart + i * xStride]` for `i` in `0..<count`: the
/// transpose of `multiplyAdd`, which routes gradients back to strided inputs.
@inline(__always)
func scatterMultiplyAdd<Scalar: BinaryFloatingPoint>(
    _ alpha: Scalar, _ y: UnsafeBufferPointer<Scalar>, from yStart: Int,
    into x: UnsafeMutableBufferPointer<Scalar>, from xStart: Int, stride xStride: Int, count: Int
) {
    guard count > 0 else { return }
    assert(xStart >= 0, "x starts before its buffer")
    assert(xStart + (count - 1) * xStride < x.count, "x ends after its buffer")
    assert(yStart >= 0, "y starts before its buffer")
    assert(yStart + count <= y.count, "y ends after its buffer")
    let source = y.baseAddress! + yStart
    let target = x.baseAddress! + xStart
    if xStride == 1 {
        for i in 0..<count { target[i] += alpha * source[i] }
    } else {
        for i in 0..<count { target[i &* xStride] += alpha * source[i] }
    }
}

/// Returns the sum of `y[yStart + i] * x[xStart + i * xStride]` for `i` in `0..<count`.
///
/// Four partial sums let consecutive additions run without waiting on each other, because
/// the compiler must not reorder floating-point additions by itself.
@inline(__always)
func dotProduct<Scalar: BinaryFloatingPoint>(
    _ y: UnsafeBufferPointer<Scalar>, from yStart: Int,
    _ x: UnsafeBufferPointer<Scalar>, from xStart: Int, stride xStride: Int, count: Int
) -> Scalar {
    guard count > 0 else { return 0 }
    assert(xStart >= 0, "x starts before its buffer")
    assert(xStart + (count - 1) * xStride < x.count, "x ends after its buffer")
    assert(yStart >= 0, "y starts before its buffer")
    assert(yStart + count <= y.count, "y ends after its buffer")
    let left = y.baseAddress! + yStart
    let right = x.baseAddress! + xStart
    var partial: (Scalar, Scalar, Scalar, Scalar) = (0, 0, 0, 0)
    var i = 0
    while i + 4 <= count {
        partial.0 += left[i] * right[i &* xStride]
        partial.1 += left[i &+ 1] * right[(i &+ 1) &* xStride]
        partial.2 += left[i &+ 2] * right[(i &+ 2) &* xStride]
        partial.3 += left[i &+ 3] * right[(i &+ 3) &* xStride]
        i += 4
    }
    while i < count {
        partial.0 += left[i] * right[i &* xStride]
        i += 1
    }
    return (partial.0 + partial.1) + (partial.2 + partial.3)
}

/// Sums `values` (N x channels x planeSize) over N and the plane, one sum per channel.
@_specialize(where Scalar == Float)
@_specialize(where Scalar == Double)
func sumPlanes<Scalar: BinaryFloatingPoint>(_ values: [Scalar], batch: Int, channels: Int, planeSize: Int)
    -> [Scalar]
{
    var sums = [Scalar](repeating: 0, count: channels)
    values.withUnsafeBufferPointer { values in
        for n in 0..<batch {
            for channel in 0..<channels {
                let plane = (n * channels + channel) * planeSize
                for position in plane..<(plane + planeSize) { sums[channel] += values[position] }
            }
        }
    }
    return sums
}
