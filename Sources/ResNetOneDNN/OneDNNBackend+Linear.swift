import CxxBridge
import ResNetKit

struct ConvolutionKey: Hashable {
    var geometry: ConvolutionGeometry
    var batch: Int
    var hasBias: Bool
}

struct DenseKey: Hashable {
    var batch: Int
    var inputs: Int
    var outputs: Int
    var hasBias: Bool
}

// Dimensions: N batch, C input channels, K output channels, H x W input, R x S kernel and
// OH x OW output. Dense layers map I inputs to O outputs.
extension OneDNNBackend {
    // MARK: - Convolution

    public func convolution(_ x: Tensor, weights: Tensor, bias: Tensor?, geometry: ConvolutionGeometry) throws
        -> Tensor
    {
        let operation = "convolution"
        let batch = try batchSize(of: x, geometry: geometry, operation)
        try check(weights, "weights", is: geometry.weightShape, operation)
        if let bias {
            try check(bias, "bias", is: TensorShape(geometry.outputChannels), operation)
        }

        let plan = try convolutionPlan(geometry, batch: batch, hasBias: bias != nil)
        var inputs = [
            Input(role: .src, storage: try storage(of: x, operation)),
            Input(role: .weights, storage: try storage(of: weights, operation)),
        ]
        if let bias {
            inputs.append(Input(role: .bias, storage: try storage(of: bias, operation)))
        }
        let outputs = try run(plan, .forward, inputs: inputs, outputs: [Output(role: .dst)])
        return Tensor(shape: geometry.outputShape(batch: batch), storage: outputs[0])
    }

    public func convolutionBackward(
        _ dy: Tensor, x: Tensor, weights: Tensor, hasBias: Bool, geometry: ConvolutionGeometry,
        computeInputGradient: Bool
    ) throws -> LinearGradients {
        let operation = "convolution backward"
        let batch = try batchSize(of: x, geometry: geometry, operation)
        try check(dy, "dy", is: geometry.outputShape(batch: batch), operation)
        try check(weights, "weights", is: geometry.weightShape, operation)
        let plan = try convolutionPlan(geometry, batch: batch, hasBias: hasBias)
        let dyStorage = try storage(of: dy, operation)
        let weightsStorage = try storage(of: weights, operation)

        var dx: Tensor?
        if computeInputGradient {
            let outputs = try run(
                plan, .backward,
                inputs: [Input(role: .diffDst, storage: dyStorage), Input(role: .weights, storage: weightsStorage)],
                outputs: [Output(role: .diffSrc)])
            dx = Tensor(shape: x.shape, storage: outputs[0])
        }

        var outputs = [Output(role: .diffWeights)]
        if hasBias {
            outputs.append(Output(role: .diffBias))
        }
        let results = try run(
            plan, .backwardWeights,
            inputs: [Input(role: .src, storage: try storage(of: x, operation)), Input(role: .diffDst, storage: dyStorage)],
            outputs: outputs)

        // The optimizer updates the kernel and dw element by element, so dw takes the kernel's layout.
        let dw = try conform(results[0], to: weightsStorage.layout, operation)
        let db = hasBias ? Tensor(shape: TensorShape(geometry.outputChannels), storage: results[1]) : nil
        return LinearGradients(dx: dx, dw: Tensor(shape: weights.shape, storage: dw), db: db)
    }

    /// Returns a copy of a convolution kernel in the layout the forward primitive for this
    /// geometry and batch size reads, so that a model can keep its kernels there and skip a
    /// reorder on every forward call.
    ///
    /// The copy has the same shape and values; `values(of:)` reads them back in OIHW order.
    /// Gradients and `zeros(like:)` of the copy share its layout, as optimizers require.
    ///
    /// NOTE: the backward-data pass may still reorder the kernel into a pooled temporary on
    /// each call, because oneDNN 2.6.3 often reads it there in another blocking (`ABcd8a8b`
    /// against the forward pass's `ABcd8b8a` with AVX2, as `ONEDNN_VERBOSE=1` shows).
    public func preferredLayoutCopy(of weights: Tensor, geometry: ConvolutionGeometry, batch: Int) throws -> Tensor {
        let operation = "preferredLayoutCopy"
        try check(weights, "weights", is: geometry.weightShape, operation)
        guard batch >= 1 else {
            throw BackendError(operation, "batch size must be at least 1, got \(batch)")
        }
        let plan = try convolutionPlan(geometry, batch: batch, hasBias: false)
        let layout = try plan.layout(.forward, .weights)
        let source = try storage(of: weights, operation)
        let copy = try allocate(layout: layout)
        if source.layout == layout {
            copy.buffer.copyMemory(from: source.buffer, byteCount: copy.byteCount)
        } else {
            try reorder(source, into: copy.buffer, layout: layout, operation)
        }
        return Tensor(shape: weights.shape, storage: copy)
    }

    func batchSize(of x: Tensor, geometry: ConvolutionGeometry, _ operation: String) throws -> Int {
        guard x.shape.rank == 4, x.shape[0] >= 1 else {
            throw BackendError(
                operation,
                "x has shape \(x.shape), expected N x \(geometry.inputChannels) x \(geometry.inputHeight) x \(geometry.inputWidth)")
        }
        let batch = x.shape[0]
        try check(x, "x", is: geometry.inputShape(batch: batch), operation)
        return batch
    }

    /// Returns whether convolutions of this geometry run the bridge's Winograd kernels rather
    /// than oneDNN's. That is so on AVX2 for 3x3 kernels at stride 1 with one pixel of padding
    /// and channel counts that are multiples of 8, unless Winograd is off. Batches whose
    /// transformed tiles would pass 1 GiB still run oneDNN's direct kernels.
    public func usesBridgeWinograd(_ geometry: ConvolutionGeometry) -> Bool {
        winograd && onednn_bridge.convolutionUsesBridgeWinograd(bridgeShape(geometry, batch: 1))
    }

    func convolutionPlan(_ geometry: ConvolutionGeometry, batch: Int, hasBias: Bool) throws -> Plan {
        let key = ConvolutionKey(geometry: geometry, batch: batch, hasBias: hasBias)
        if let plan = convolutionPlans[key] {
            return plan
        }
        let shape = bridgeShape(geometry, batch: batch)
        let winograd = self.winograd
        let plan = try Plan(operation: "convolution") {
            onednn_bridge.convolutionCreate(shape, hasBias, winograd, $0)
        }
        convolutionPlans[key] = plan
        return plan
    }

    func bridgeShape(_ geometry: ConvolutionGeometry, batch: Int) -> onednn_bridge.ConvolutionShape {
        var shape = onednn_bridge.ConvolutionShape()
        shape.batch = Int64(batch)
        shape.inputChannels = Int64(geometry.inputChannels)
        shape.outputChannels = Int64(geometry.outputChannels)
        shape.inputHeight = Int64(geometry.inputHeight)
        shape.inputWidth = Int64(geometry.inputWidth)
        shape.kernelHeight = Int64(geometry.kernelHeight)
        shape.kernelWidth = Int64(geometry.kernelWidth)
        shape.strideHeight = Int64(geometry.strideHeight)
        shape.strideWidth = Int64(geometry.strideWidth)
        shape.padTop = Int64(geometry.padTop)
        shape.padBottom = Int64(geometry.padBottom)
        shape.padLeft = Int64(geometry.padLeft)
        shape.padRight = Int64(geometry.padRight)
        shape.outputHeight = Int64(geometry.outputHeight)
        shape.outputWidth = Int64(geometry.outputWidth)
        return shape
    }

    // MARK: - Dense

    public func dense(_ x: Tensor, weights: Tensor, bias: Tensor?) throws -> Tensor {
        let operation = "dense"
        let (batch, inputs, outputs) = try denseSizes(x: x, weights: weights, operation)
        if let bias {
            try check(bias, "bias", is: TensorShape(outputs), operation)
        }
        let plan = try densePlan(batch: batch, inputs: inputs, outputs: outputs, hasBias: bias != nil)
        var arguments = [
            Input(role: .src, storage: try storage(of: x, operation)),
            Input(role: .weights, storage: try storage(of: weights, operation)),
        ]
        if let bias {
            arguments.append(Input(role: .bias, storage: try storage(of: bias, operation)))
        }
        let results = try run(plan, .forward, inputs: arguments, outputs: [Output(role: .dst)])
        return Tensor(shape: TensorShape(batch, outputs), storage: results[0])
    }

    public func denseBackward(_ dy: Tensor, x: Tensor, weights: Tensor, hasBias: Bool, computeInputGradient: Bool)
        throws -> LinearGradients
    {
        let operation = "dense backward"
        let (batch, inputs, outputs) = try denseSizes(x: x, weights: weights, operation)
        try check(dy, "dy", is: TensorShape(batch, outputs), operation)
        let plan = try densePlan(batch: batch, inputs: inputs, outputs: outputs, hasBias: hasBias)
        let dyStorage = try storage(of: dy, operation)
        let weightsStorage = try storage(of: weights, operation)

        var dx: Tensor?
        if computeInputGradient {
            let results = try run(
                plan, .backward,
                inputs: [Input(role: .diffDst, storage: dyStorage), Input(role: .weights, storage: weightsStorage)],
                outputs: [Output(role: .diffSrc)])
            dx = Tensor(shape: x.shape, storage: results[0])
        }

        var requested = [Output(role: .diffWeights)]
        if hasBias {
            requested.append(Output(role: .diffBias))
        }
        let results = try run(
            plan, .backwardWeights,
            inputs: [Input(role: .src, storage: try storage(of: x, operation)), Input(role: .diffDst, storage: dyStorage)],
            outputs: requested)
        let dw = try conform(results[0], to: weightsStorage.layout, operation)
        let db = hasBias ? Tensor(shape: TensorShape(outputs), storage: results[1]) : nil
        return LinearGradients(dx: dx, dw: Tensor(shape: weights.shape, storage: dw), db: db)
    }

    /// Returns N, I and O after checking that x is `[N, I]` and weights `[O, I]`.
    func denseSizes(x: Tensor, weights: Tensor, _ operation: String) throws -> (Int, Int, Int) {
        guard x.shape.rank == 2 else {
            throw BackendError(operation, "x has shape \(x.shape), expected [N, inputs]; reshape it first")
        }
        guard weights.shape.rank == 2, weights.shape[1] == x.shape[1] else {
            throw BackendError(
                operation, "weights have shape \(weights.shape), expected [outputs, \(x.shape[1])] for x of shape \(x.shape)")
        }
        return (x.shape[0], x.shape[1], weights.shape[0])
    }

    func densePlan(batch: Int, inputs: Int, outputs: Int, hasBias: Bool) throws -> Plan {
        let key = DenseKey(batch: batch, inputs: inputs, outputs: outputs, hasBias: hasBias)
        if let plan = densePlans[key] {
            return plan
        }
        let plan = try Plan(operation: "dense") {
            onednn_bridge.innerProductCreate(Int64(batch), Int64(inputs), Int64(outputs), hasBias, $0)
        }
        densePlans[key] = plan
        return plan
    }
}
