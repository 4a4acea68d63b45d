import CxxBridge
import ResNetKit

struct PoolKey: Hashable {
    var geometry: PoolGeometry
    var batch: Int
    var layout: Int32
    var training: Bool
}

// Dimensions: N batch, C channels, H x W input, OH x OW output.
extension OneDNNBackend {
    // MARK: - Max pooling

    public func maxPool(_ x: Tensor, geometry: PoolGeometry, training: Bool) throws -> MaxPoolOutput {
        let operation = "max pooling"
        let batch = try poolBatchSize(of: x, geometry: geometry, operation)
        let xStorage = try storage(of: x, operation)
        let plan = try maxPoolPlan(geometry, batch: batch, layout: xStorage.layout, training: training)
        var outputs = [Output(role: .dst)]
        if training {
            outputs.append(Output(role: .workspace, content: .workspace))
        }
        let results = try run(plan, .forward, inputs: [Input(role: .src, storage: xStorage)], outputs: outputs)
        let outputShape = geometry.outputShape(batch: batch)
        let workspace = training ? Tensor(shape: outputShape, storage: results[1]) : nil
        return MaxPoolOutput(y: Tensor(shape: outputShape, storage: results[0]), indices: workspace)
    }

    public func maxPoolBackward(_ dy: Tensor, x: Tensor, forward: MaxPoolOutput, geometry: PoolGeometry) throws
        -> Tensor
    {
        let operation = "max pooling backward"
        let batch = try poolBatchSize(of: x, geometry: geometry, operation)
        try check(dy, "dy", is: geometry.outputShape(batch: batch), operation)
        guard let indices = forward.indices, let workspace = indices.storage as? OneDNNStorage,
            workspace.content == .workspace
        else {
            throw BackendError(
                operation, "forward output of shape \(forward.y.shape) has no workspace; run maxPool with training: true")
        }
        let xStorage = try storage(of: x, operation)
        let plan = try maxPoolPlan(geometry, batch: batch, layout: xStorage.layout, training: true)
        guard workspace.layout == (try plan.layout(.backward, .workspace)) else {
            throw BackendError(
                operation, "the workspace comes from a forward pass on x in another layout; pass the same x to both")
        }
        let results = try run(
            plan, .backward,
            inputs: [Input(role: .diffDst, storage: try storage(of: dy, operation)), Input(role: .workspace, storage: workspace)],
            outputs: [Output(role: .diffSrc)])
        return Tensor(shape: x.shape, storage: results[0])
    }

    func poolBatchSize(of x: Tensor, geometry: PoolGeometry, _ operation: String) throws -> Int {
        guard x.shape.rank == 4, x.shape[0] >= 1 else {
            throw BackendError(
                operation,
                "x has shape \(x.shape), expected N x \(geometry.channels) x \(geometry.inputHeight) x \(geometry.inputWidth)")
        }
        try check(x, "x", is: geometry.inputShape(batch: x.shape[0]), operation)
        return x.shape[0]
    }

    func maxPoolPlan(_ geometry: PoolGeometry, batch: Int, layout: Int32, training: Bool) throws -> Plan {
        let key = PoolKey(geometry: geometry, batch: batch, layout: layout, training: training)
        if let plan = maxPoolPlans[key] {
            return plan
        }
        var shape = onednn_bridge.PoolShape()
        shape.batch = Int64(batch)
        shape.channels = Int64(geometry.channels)
        shape.inputHeight = Int64(geometry.inputHeight)
        shape.inputWidth = Int64(geometry.inputWidth)
        shape.windowHeight = Int64(geometry.windowHeight)
        shape.windowWidth = Int64(geometry.windowWidth)
        shape.strideHeight = Int64(geometry.strideHeight)
        shape.strideWidth = Int64(geometry.strideWidth)
        shape.padTop = Int64(geometry.padTop)
        shape.padBottom = Int64(geometry.padBottom)
        shape.padLeft = Int64(geometry.padLeft)
        shape.padRight = Int64(geometry.padRight)
        shape.outputHeight = Int64(geometry.outputHeight)
        shape.outputWidth = Int64(geometry.outputWidth)
        let plan = try Plan(operation: "max pooling") {
            onednn_bridge.maxPoolCreate(shape, layout, training, $0)
        }
        maxPoolPlans[key] = plan
        return plan
    }

    // MARK: - Global average pooling

    public func globalAveragePool(_ x: Tensor) throws -> Tensor {
        let operation = "global average pooling"
        guard x.shape.rank == 4 else {
            throw BackendError(operation, "x has shape \(x.shape), expected [N, C, H, W]")
        }
        let xStorage = try storage(of: x, operation)
        let plan = try globalPoolPlan(x.shape, layout: xStorage.layout)
        let flatShape = TensorShape(x.shape[0], x.shape[1])
        let results = try run(
            plan, .forward, inputs: [Input(role: .src, storage: xStorage)],
            outputs: [Output(role: .dst, plainLayout: try plainLayout(flatShape, operation))])
        return Tensor(shape: flatShape, storage: results[0])
    }

    public func globalAveragePoolBackward(_ dy: Tensor, inputShape: TensorShape) throws -> Tensor {
        let operation = "global average pooling backward"
        guard inputShape.rank == 4 else {
            throw BackendError(operation, "input shape \(inputShape) must be [N, C, H, W]")
        }
        try check(dy, "dy", is: TensorShape(inputShape[0], inputShape[1]), operation)
        let plan = try globalPoolPlan(inputShape, layout: plainLayout(inputShape, operation))
        let results = try run(
            plan, .backward,
            inputs: [Input(role: .diffDst, storage: try storage(of: dy, operation), reinterpretsPlain: true)],
            outputs: [Output(role: .diffSrc)])
        return Tensor(shape: inputShape, storage: results[0])
    }

    /// Returns the plan for inputs of `shape`, built for the layout of the first input it gets,
    /// so that the backward pass, which gets only the shape, returns dx in the forward input's layout.
    func globalPoolPlan(_ shape: TensorShape, layout: Int32) throws -> Plan {
        if let plan = globalPoolPlans[shape] {
            return plan
        }
        let plan = try Plan(operation: "global average pooling") {
            onednn_bridge.globalAveragePoolCreate(
                Int64(shape[0]), Int64(shape[1]), Int64(shape[2]), Int64(shape[3]), layout, $0)
        }
        globalPoolPlans[shape] = plan
        return plan
    }

    // MARK: - Add

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        let operation = "add"
        try check(b, "b", is: a.shape, operation)
        let aStorage = try storage(of: a, operation)
        let plan: Plan
        if let cached = addPlans[aStorage.layout] {
            plan = cached
        } else {
            let layout = aStorage.layout
            plan = try Plan(operation: "add") { onednn_bridge.addCreate(layout, $0) }
            addPlans[aStorage.layout] = plan
        }
        let results = try run(
            plan, .forward,
            inputs: [Input(role: .src, storage: aStorage), Input(role: .src1, storage: try storage(of: b, operation))],
            outputs: [Output(role: .dst)])
        return Tensor(shape: a.shape, storage: results[0])
    }
}
