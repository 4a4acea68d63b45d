// Pooling, addition and reshaping of the reference backend, forward and backward.
// Readable reference, no vectorisation.
//
// Dimensions: N batch, C channels, H x W input, OH x OW output. The window of output row oh
// starts at input row oh * strideHeight - padTop and spans windowHeight rows, and columns
// follow the same rule. Rows and columns outside the input are padding, which never wins a max.

extension ReferenceBackend {
    // MARK: - Max pooling

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func maxPool(_ x: Tensor, geometry: PoolGeometry, training: Bool) throws -> MaxPoolOutput {
        let operation = "maxPool"
        try requireRank(x, 4, "x", in: operation)
        let batch = x.shape[0]
        try requireShape(x, geometry.inputShape(batch: batch), "x", in: operation)
        let xValues = try storage(of: x, in: operation).values

        let (y, positions) = maxPoolWinners(xValues, batch: batch, geometry: geometry)
        let outputShape = geometry.outputShape(batch: batch)
        let indices = training ? Tensor(shape: outputShape, storage: ReferencePoolIndices(positions)) : nil
        return MaxPoolOutput(y: makeTensor(y, outputShape), indices: indices)
    }

    /// Routes each output gradient to the input that won its window. When windows overlap and
    /// one input wins several of them, it receives the sum of their gradients. Without saved
    /// indices (a forward pass run for inference), the winners are found again from `x`.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func maxPoolBackward(_ dy: Tensor, x: Tensor, forward: MaxPoolOutput, geometry: PoolGeometry) throws
        -> Tensor
    {
        let operation = "maxPoolBackward"
        try requireRank(x, 4, "x", in: operation)
        let batch = x.shape[0]
        let outputShape = geometry.outputShape(batch: batch)
        try requireShape(x, geometry.inputShape(batch: batch), "x", in: operation)
        try requireShape(dy, outputShape, "dy", in: operation)
        try requireShape(forward.y, outputShape, "forward output", in: operation)
        let dyValues = try storage(of: dy, in: operation).values

        let positions: [Int]
        if let indices = forward.indices {
            guard let saved = indices.storage as? ReferencePoolIndices, saved.positions.count == outputShape.elementCount
            else {
                throw BackendError(
                    operation,
                    "forward indices of shape \(indices.shape) were not saved by reference maxPool for output \(outputShape)")
            }
            positions = saved.positions
        } else {
            let xValues = try storage(of: x, in: operation).values
            positions = maxPoolWinners(xValues, batch: batch, geometry: geometry).positions
        }

        let inputPlane = geometry.inputHeight * geometry.inputWidth
        let outputPlane = geometry.outputHeight * geometry.outputWidth
        var dx = [Scalar](repeating: 0, count: x.shape.elementCount)  // N x C x H x W
        dyValues.withUnsafeBufferPointer { dy in
            positions.withUnsafeBufferPointer { positions in
                dx.withUnsafeMutableBufferPointer { dx in
                    parallelFor(batch) { n in
                        for c in 0..<geometry.channels {
                            let plane = n * geometry.channels + c
                            for output in (plane * outputPlane)..<((plane + 1) * outputPlane) {
                                dx[plane * inputPlane + positions[output]] += dy[output]
                            }
                        }
                    }
                }
            }
        }
        return makeTensor(dx, x.shape)
    }

    /// Returns the max of every window (N x C x OH x OW) and the position `h * W + w` of the
    /// winning input in its channel plane. Among equal values the first in row-major order wins.
    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    private func maxPoolWinners(_ xValues: [Scalar], batch: Int, geometry g: PoolGeometry)
        -> (y: [Scalar], positions: [Int])
    {
        let (C, H, W, OH, OW) = (g.channels, g.inputHeight, g.inputWidth, g.outputHeight, g.outputWidth)
        var y = [Scalar](repeating: 0, count: batch * C * OH * OW)
        var positions = [Int](repeating: 0, count: batch * C * OH * OW)
        xValues.withUnsafeBufferPointer { x in
            y.withUnsafeMutableBufferPointer { y in
                positions.withUnsafeMutableBufferPointer { positions in
                    parallelFor(batch) { n in
                        for c in 0..<C {
                            let plane = n * C + c
                            for oh in 0..<OH {
                                let top = oh * g.strideHeight - g.padTop
                                let rows = max(top, 0)..<min(top + g.windowHeight, H)
                                for ow in 0..<OW {
                                    let left = ow * g.strideWidth - g.padLeft
                                    let columns = max(left, 0)..<min(left + g.windowWidth, W)

                                    // Padding is smaller than the window, so every window contains
                                    // at least one input cell.
                                    var best = rows.lowerBound * W + columns.lowerBound
                                    for ih in rows {
                                        for iw in columns where x[plane * H * W + ih * W + iw] > x[plane * H * W + best] {
                                            best = ih * W + iw
                                        }
                                    }
                                    let output = (plane * OH + oh) * OW + ow
                                    y[output] = x[plane * H * W + best]
                                    positions[output] = best
                                }
                            }
                        }
                    }
                }
            }
        }
        return (y, positions)
    }

    // MARK: - Global average pooling

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func globalAveragePool(_ x: Tensor) throws -> Tensor {
        let operation = "globalAveragePool"
        try requireRank(x, 4, "x", in: operation)
        let (batch, channels) = (x.shape[0], x.shape[1])
        let planeSize = x.shape[2] * x.shape[3]
        guard planeSize > 0 else {
            throw BackendError(operation, "x of shape \(x.shape) has no spatial positions to average")
        }
        let xValues = try storage(of: x, in: operation).values

        var y = [Scalar](repeating: 0, count: batch * channels)  // N x C
        xValues.withUnsafeBufferPointer { x in
            for plane in 0..<(batch * channels) {
                var sum: Scalar = 0
                for position in (plane * planeSize)..<((plane + 1) * planeSize) { sum += x[position] }
                y[plane] = sum / Scalar(planeSize)
            }
        }
        return makeTensor(y, TensorShape(batch, channels))
    }

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func globalAveragePoolBackward(_ dy: Tensor, inputShape: TensorShape) throws -> Tensor {
        let operation = "globalAveragePoolBackward"
        guard inputShape.rank == 4, inputShape.dims.allSatisfy({ $0 > 0 }) else {
            throw BackendError(operation, "input shape must be NCHW with positive sizes, got \(inputShape)")
        }
        try requireShape(dy, TensorShape(inputShape[0], inputShape[1]), "dy", in: operation)
        let dyValues = try storage(of: dy, in: operation).values
        let planeSize = inputShape[2] * inputShape[3]

        var dx = [Scalar](repeating: 0, count: inputShape.elementCount)  // N x C x H x W
        for plane in dyValues.indices {
            let share = dyValues[plane] / Scalar(planeSize)
            for position in (plane * planeSize)..<((plane + 1) * planeSize) { dx[position] = share }
        }
        return makeTensor(dx, inputShape)
    }

    // MARK: - Element-wise and shape

    @_specialize(where Scalar == Float)
    @_specialize(where Scalar == Double)
    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        let operation = "add"
        guard a.shape == b.shape else {
            throw BackendError(operation, "operands have shapes \(a.shape) and \(b.shape), which must be equal")
        }
        let aValues = try storage(of: a, in: operation).values
        let bValues = try storage(of: b, in: operation).values
        let sum = zip(aValues, bValues).map { $0 + $1 }
        return makeTensor(sum, a.shape)
    }

    /// Returns a copy under the new shape, so that an in-place update of either tensor leaves the
    /// other unchanged.
    public func reshape(_ x: Tensor, to shape: TensorShape) throws -> Tensor {
        let operation = "reshape"
        guard shape.dims.allSatisfy({ $0 >= 0 }), shape.elementCount == x.shape.elementCount else {
            throw BackendError(
                operation,
                "cannot reshape \(x.shape) (\(x.shape.elementCount) elements) to \(shape) (\(shape.elementCount) elements)")
        }
        let xValues = try storage(of: x, in: operation).values
        return makeTensor(xValues, shape)
    }
}
