/// An estimate of the memory a training run needs at its peak, made before anything is
/// allocated, in bytes of float32.
///
/// The tape keeps every layer's output until backward has used it, so the activations of one
/// batch are all alive at the end of the forward pass. Backward then holds, besides them, the
/// gradient flowing back and the one being computed: the workspace term counts the two largest
/// layer outputs for that, and a layer's workspace such as max pooling's indices.
public struct MemoryPlan: Sendable {
    /// Parameter values, batch-norm running statistics included.
    public var parameters: Int
    /// One gradient per trainable parameter.
    public var gradients: Int
    /// The optimizer's moments or velocities.
    public var optimizerState: Int
    /// Layer outputs of one batch kept for backward, and the input batch.
    public var activations: Int
    /// Activation gradients alive at once during backward.
    public var workspace: Int
    /// Training and validation samples held in memory.
    public var data: Int

    public var total: Int { parameters + gradients + optimizerState + activations + workspace + data }

    /// Estimates the plan for training `model` at `batch` with an optimizer that keeps
    /// `stateTensorsPerParameter` tensors per trainable parameter (2 for Adam, 1 for SGD with
    /// momentum), with `dataBytes` of samples in memory.
    public init(model: Model, batch: Int, stateTensorsPerParameter: Int, dataBytes: Int = 0) {
        let rows = model.network.summaryRows(name: "")
        let outputs = rows.map { $0.outputShape.elementCount }
        let largest = outputs.sorted(by: >).prefix(2).reduce(0, +)
        let float = MemoryLayout<Float>.size

        parameters = model.parameterCount * float
        gradients = model.trainableParameterCount * float
        optimizerState = stateTensorsPerParameter * model.trainableParameterCount * float
        activations = (outputs.reduce(0, +) + model.inputShape.elementCount) * batch * float
        workspace = largest * batch * float
        data = dataBytes
    }

    /// Returns the largest batch size, at most `batch`, whose plan fits in `limit` bytes, or nil
    /// when not even a batch of 1 fits.
    public static func largestBatch(
        model: Model, upTo batch: Int, stateTensorsPerParameter: Int, dataBytes: Int, limit: Int
    ) -> Int? {
        let fixed = MemoryPlan(model: model, batch: 0, stateTensorsPerParameter: stateTensorsPerParameter, dataBytes: dataBytes)
        let perSample = MemoryPlan(model: model, batch: 1, stateTensorsPerParameter: stateTensorsPerParameter).total
            - MemoryPlan(model: model, batch: 0, stateTensorsPerParameter: stateTensorsPerParameter).total
        guard limit > fixed.total, perSample > 0 else { return nil }
        let fitting = (limit - fixed.total) / perSample
        return fitting >= 1 ? min(fitting, batch) : nil
    }
}
