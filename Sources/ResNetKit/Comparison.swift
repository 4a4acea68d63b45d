import Dispatch

/// How far one tensor computed by two backends is apart.
public struct TensorDifference: Sendable {
    public var name: String
    public var maxAbsolute: Double
    /// `maxAbsolute` divided by the largest magnitude in the reference tensor, or by `floor`
    /// when that is larger.
    public var maxRelative: Double
    public var tolerance: Double

    public var passed: Bool { maxRelative <= tolerance && maxRelative.isFinite }

    /// Compares `values` with `reference`, element by element. A positive `floor` sets the least
    /// magnitude the difference is measured against, for tensors that are zero up to rounding.
    public init(name: String, values: [Float], reference: [Float], tolerance: Double, floor: Double = 0) {
        self.name = name
        self.tolerance = tolerance
        guard values.count == reference.count else {
            maxAbsolute = .infinity
            maxRelative = .infinity
            return
        }
        var difference = 0.0
        var magnitude = 0.0
        for (value, expected) in zip(values, reference) {
            let gap = abs(Double(value) - Double(expected))
            difference = gap.isNaN ? .infinity : max(difference, gap)
            magnitude = max(magnitude, abs(Double(expected)))
        }
        maxAbsolute = difference
        magnitude = max(magnitude, floor)
        maxRelative = magnitude > 0 ? difference / magnitude : (difference == 0 ? 0 : .infinity)
    }
}

/// The result of running the same model, weights and batch on two backends.
public struct ComparisonReport: Sendable {
    public var backendNames: (String, String)
    /// Each top-level layer's output, then the loss.
    public var outputs: [TensorDifference]
    /// Each trainable parameter's gradient; empty in inference mode.
    public var gradients: [TensorDifference]
    /// Loss after each optimizer step on each backend, when steps were requested.
    public var stepLosses: [(Double, Double)]
    public var stepLossDifference: TensorDifference?
    /// Parameters after the optimizer steps.
    public var weights: [TensorDifference]
    /// Median seconds for one inference forward pass and one training step, per backend.
    public var forwardSeconds: (Double, Double)
    public var stepSeconds: (Double, Double)

    public var passed: Bool {
        (outputs + gradients + weights + (stepLossDifference.map { [$0] } ?? [])).allSatisfy(\.passed)
    }
}

public enum ComparisonMode: String, Sendable {
    case train, inference
}

/// Runs one model on two backends from the same seed and batch and measures how far their
/// results are apart.
public struct BackendComparison {
    /// Relative tolerance for a layer output, a gradient, and the losses after optimizer steps.
    /// Both backends compute in float32 but sum in different orders (blocked and Winograd
    /// kernels on one side, plain loops on the other), so results agree to a few units in the
    /// 4th significant digit at worst, not bit for bit.
    public static let defaultTolerance = 2e-3
    /// Relative tolerance for weights after optimizer steps, measured against the model's
    /// largest weight. Adam divides by sqrt(v), so a gradient that is zero up to rounding (the
    /// bias of a convolution followed by batch norm) still moves its weight by about the
    /// learning rate per step, in directions that differ between backends.
    public static let defaultStepTolerance = 5e-2
    /// Gradients are measured against at least this fraction of the model's largest gradient,
    /// so that gradients that are zero up to rounding compare their rounding noise to a real
    /// scale instead of to itself.
    public static let gradientFloor = 1e-2

    public var makeModel: (Backend) throws -> Model
    public var batch: Int
    public var mode: ComparisonMode
    public var steps: Int
    public var seed: UInt64
    public var tolerance: Double
    public var stepTolerance: Double
    public var timingRepeats: Int

    public init(
        makeModel: @escaping (Backend) throws -> Model, batch: Int, mode: ComparisonMode = .train, steps: Int = 0,
        seed: UInt64 = 1, tolerance: Double = defaultTolerance, stepTolerance: Double = defaultStepTolerance,
        timingRepeats: Int = 3
    ) {
        self.makeModel = makeModel
        self.batch = batch
        self.mode = mode
        self.steps = steps
        self.seed = seed
        self.tolerance = tolerance
        self.stepTolerance = stepTolerance
        self.timingRepeats = timingRepeats
    }

    /// Compares `candidate` against `reference`.
    public func run(candidate: Backend, reference: Backend) throws -> ComparisonReport {
        let models = (try makeModel(candidate), try makeModel(reference))
        let sampleShape = models.0.inputShape
        guard let classes = models.0.outputShape.dims.first, models.0.outputShape.rank == 1 else {
            throw BackendError("compare", "expected a classifier with outputs [classes], got \(models.0.outputShape)")
        }
        let data = try SyntheticData.uniform(samples: batch, sampleShape: sampleShape, classes: classes, seed: seed)
        let indices = Array(0..<batch)[...]
        let targets = data.targets(indices)
        let trainers = (
            Trainer(model: models.0, loss: .crossEntropy, optimizer: Adam()),
            Trainer(model: models.1, loss: .crossEntropy, optimizer: Adam())
        )
        let inputs = (try trainers.0.makeBatch(data, indices), try trainers.1.makeBatch(data, indices))

        var report = ComparisonReport(
            backendNames: (candidate.name, reference.name), outputs: [], gradients: [], stepLosses: [],
            stepLossDifference: nil, weights: [], forwardSeconds: (0, 0), stepSeconds: (0, 0))

        switch mode {
        case .inference:
            let first = try layerOutputs(models.0, inputs.0)
            let second = try layerOutputs(models.1, inputs.1)
            report.outputs = compare(first, second, tolerance: tolerance)
        case .train:
            let recordedA = try recordingOutputs(candidate) { observer in
                try trainers.0.computeGradients(inputs.0, targets: targets, observer: observer)
            }
            let recordedB = try recordingOutputs(reference) { observer in
                try trainers.1.computeGradients(inputs.1, targets: targets, observer: observer)
            }
            var (first, second) = (recordedA.outputs, recordedB.outputs)
            let (lossA, gradientsA) = recordedA.result
            let (lossB, gradientsB) = recordedB.result
            first.append(("loss", [Float(lossA.loss)]))
            second.append(("loss", [Float(lossB.loss)]))
            report.outputs = compare(first, second, tolerance: tolerance)

            let names = models.0.trainableParameters.map(\.name)
            let candidateGradients = try gradientsA.map { try candidate.values(of: $0) }
            let referenceGradients = try gradientsB.map { try reference.values(of: $0) }
            let largest = referenceGradients.flatMap { $0 }.map { abs(Double($0)) }.max() ?? 0
            var gradients: [TensorDifference] = []
            for (index, name) in names.enumerated() where index < gradientsA.count && index < gradientsB.count {
                gradients.append(
                    TensorDifference(
                        name: name, values: candidateGradients[index], reference: referenceGradients[index],
                        tolerance: tolerance, floor: Self.gradientFloor * largest))
            }
            report.gradients = gradients
        }

        if steps > 0 {
            let stepModels = (try makeModel(candidate), try makeModel(reference))
            let stepTrainers = (
                Trainer(model: stepModels.0, loss: .crossEntropy, optimizer: Adam()),
                Trainer(model: stepModels.1, loss: .crossEntropy, optimizer: Adam())
            )
            for _ in 0..<steps {
                let a = try stepTrainers.0.trainStep(inputs.0, targets: targets)
                let b = try stepTrainers.1.trainStep(inputs.1, targets: targets)
                report.stepLosses.append((a.loss, b.loss))
            }
            report.stepLossDifference = TensorDifference(
                name: "loss over \(steps) steps", values: report.stepLosses.map { Float($0.0) },
                reference: report.stepLosses.map { Float($0.1) }, tolerance: tolerance)
            let candidateWeights = try stepModels.0.parameters.map { try candidate.values(of: $0.value) }
            let referenceWeights = try stepModels.1.parameters.map { try reference.values(of: $0.value) }
            let largest = referenceWeights.flatMap { $0 }.map { abs(Double($0)) }.max() ?? 0
            report.weights = zip(stepModels.0.parameters.indices, stepModels.0.parameters).map { index, parameter in
                TensorDifference(
                    name: parameter.name, values: candidateWeights[index], reference: referenceWeights[index],
                    tolerance: stepTolerance, floor: largest)
            }
        }

        report.forwardSeconds = (
            try median(timingRepeats) { _ = try models.0.forward(inputs.0) },
            try median(timingRepeats) { _ = try models.1.forward(inputs.1) }
        )
        report.stepSeconds = (
            try median(timingRepeats) { _ = try trainers.0.computeGradients(inputs.0, targets: targets) },
            try median(timingRepeats) { _ = try trainers.1.computeGradients(inputs.1, targets: targets) }
        )
        return report
    }

    private func layerOutputs(_ model: Model, _ x: Tensor) throws -> [(String, [Float])] {
        try recordingOutputs(model.backend) { observer in
            _ = try model.forward(x, observer: observer)
        }.outputs
    }

    /// Runs `body` with an observer that reads each named layer output back from `backend`, and
    /// returns the outputs beside `body`'s result. A failed read is thrown after `body` returns.
    private func recordingOutputs<Result>(
        _ backend: Backend, _ body: (@escaping (String, Tensor) -> Void) throws -> Result
    ) throws -> (outputs: [(String, [Float])], result: Result) {
        var outputs: [(String, [Float])] = []
        var failure: Error?
        let result = try body { name, tensor in
            do {
                outputs.append((name, try backend.values(of: tensor)))
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return (outputs, result)
    }

    private func compare(_ first: [(String, [Float])], _ second: [(String, [Float])], tolerance: Double)
        -> [TensorDifference]
    {
        zip(first, second).map { a, b in
            TensorDifference(name: a.0, values: a.1, reference: b.1, tolerance: tolerance)
        }
    }

    /// Returns the median wall time of `repeats` runs of `body`, after one warm-up run.
    private func median(_ repeats: Int, _ body: () throws -> Void) throws -> Double {
        let times = try sortedRunTimes(warmup: 1, repeats: repeats, body)
        return times[times.count / 2]
    }
}
