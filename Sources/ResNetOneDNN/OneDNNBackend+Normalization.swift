import CxxBridge
import ResNetKit

struct BatchNormKey: Hashable {
    var shape: TensorShape
    var layout: Int32
    var epsilonBits: UInt32
    var training: Bool
}

// Dimensions: N batch, C channels, H x W spatial. Statistics, scale and shift are plain [C].
extension OneDNNBackend {
    // MARK: - Batch normalization

    public func batchNormTraining(_ x: Tensor, scale: Tensor, shift: Tensor, epsilon: Float) throws
        -> BatchNormOutput
    {
        let operation = "batch normalization training"
        let channels = try checkBatchNorm(x, perChannel: [("scale", scale), ("shift", shift)], operation)
        let valuesPerChannel = x.shape.elementCount / channels
        guard valuesPerChannel >= 2 else {
            throw BackendError(
                operation,
                "x of shape \(x.shape) has one value per channel, so the batch variance is 0; "
                    + "use a batch of at least 2 or larger feature maps")
        }

        let xStorage = try storage(of: x, operation)
        let plan = try batchNormPlan(x.shape, layout: xStorage.layout, epsilon: epsilon, training: true)
        let results = try run(
            plan, .forward,
            inputs: [
                Input(role: .src, storage: xStorage),
                Input(role: .scale, storage: try storage(of: scale, operation)),
                Input(role: .shift, storage: try storage(of: shift, operation)),
            ],
            outputs: [Output(role: .dst), Output(role: .mean), Output(role: .variance)])
        let statisticsShape = TensorShape(channels)
        return BatchNormOutput(
            y: Tensor(shape: x.shape, storage: results[0]),
            mean: Tensor(shape: statisticsShape, storage: results[1]),
            variance: Tensor(shape: statisticsShape, storage: results[2]))
    }

    public func batchNormInference(
        _ x: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor, epsilon: Float
    ) throws -> Tensor {
        let operation = "batch normalization inference"
        _ = try checkBatchNorm(
            x, perChannel: [("scale", scale), ("shift", shift), ("mean", mean), ("variance", variance)], operation)
        let xStorage = try storage(of: x, operation)
        let plan = try batchNormPlan(x.shape, layout: xStorage.layout, epsilon: epsilon, training: false)
        let results = try run(
            plan, .forward,
            inputs: [
                Input(role: .src, storage: xStorage),
                Input(role: .scale, storage: try storage(of: scale, operation)),
                Input(role: .shift, storage: try storage(of: shift, operation)),
                Input(role: .mean, storage: try storage(of: mean, operation)),
                Input(role: .variance, storage: try storage(of: variance, operation)),
            ],
            outputs: [Output(role: .dst)])
        return Tensor(shape: x.shape, storage: results[0])
    }

    public func batchNormBackward(
        _ dy: Tensor, x: Tensor, scale: Tensor, mean: Tensor, variance: Tensor, epsilon: Float
    ) throws -> BatchNormGradients {
        let operation = "batch normalization backward"
        let channels = try checkBatchNorm(
            x, perChannel: [("scale", scale), ("mean", mean), ("variance", variance)], operation)
        try check(dy, "dy", is: x.shape, operation)
        let xStorage = try storage(of: x, operation)
        let plan = try batchNormPlan(x.shape, layout: xStorage.layout, epsilon: epsilon, training: true)
        let results = try run(
            plan, .backward,
            inputs: [
                Input(role: .src, storage: xStorage),
                Input(role: .diffDst, storage: try storage(of: dy, operation)),
                Input(role: .scale, storage: try storage(of: scale, operation)),
                Input(role: .mean, storage: try storage(of: mean, operation)),
                Input(role: .variance, storage: try storage(of: variance, operation)),
            ],
            outputs: [Output(role: .diffSrc), Output(role: .diffScale), Output(role: .diffShift)])
        let parameterShape = TensorShape(channels)
        return BatchNormGradients(
            dx: Tensor(shape: x.shape, storage: results[0]),
            dscale: Tensor(shape: parameterShape, storage: results[1]),
            dshift: Tensor(shape: parameterShape, storage: results[2]))
    }

    /// Returns C after checking that x is `[N, C, H, W]` or `[N, C]` and each per-channel tensor `[C]`.
    func checkBatchNorm(_ x: Tensor, perChannel: [(String, Tensor)], _ operation: String) throws -> Int {
        guard x.shape.rank == 4 || x.shape.rank == 2 else {
            throw BackendError(operation, "x has shape \(x.shape), expected [N, C, H, W] or [N, C]")
        }
        let channels = x.shape[1]
        for (label, tensor) in perChannel {
            try check(tensor, label, is: TensorShape(channels), operation)
        }
        return channels
    }

    func batchNormPlan(_ shape: TensorShape, layout: Int32, epsilon: Float, training: Bool) throws -> Plan {
        let key = BatchNormKey(shape: shape, layout: layout, epsilonBits: epsilon.bitPattern, training: training)
        if let plan = batchNormPlans[key] {
            return plan
        }
        let mode = training ? "training" : "inference"
        let plan = try Plan(operation: "batch normalization \(mode)") {
            onednn_bridge.batchNormCreate(layout, epsilon, training, $0)
        }
        batchNormPlans[key] = plan
        return plan
    }

    // MARK: - ReLU

    public func relu(_ x: Tensor) throws -> Tensor {
        let xStorage = try storage(of: x, "relu")
        let plan = try reluPlan(xStorage.layout)
        let results = try run(plan, .forward, inputs: [Input(role: .src, storage: xStorage)], outputs: [Output(role: .dst)])
        return Tensor(shape: x.shape, storage: results[0])
    }

    public func reluBackward(_ dy: Tensor, y: Tensor) throws -> Tensor {
        let operation = "relu backward"
        try check(dy, "dy", is: y.shape, operation)
        let yStorage = try storage(of: y, operation)
        let plan = try reluPlan(yStorage.layout)
        let results = try run(
            plan, .backward,
            inputs: [Input(role: .dst, storage: yStorage), Input(role: .diffDst, storage: try storage(of: dy, operation))],
            outputs: [Output(role: .diffSrc)])
        return Tensor(shape: y.shape, storage: results[0])
    }

    func reluPlan(_ layout: Int32) throws -> Plan {
        if let plan = reluPlans[layout] {
            return plan
        }
        let plan = try Plan(operation: "relu") { onednn_bridge.reluCreate(layout, $0) }
        reluPlans[layout] = plan
        return plan
    }
}
