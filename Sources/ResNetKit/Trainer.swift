import Dispatch

/// The results of one epoch, as Keras's `fit` reports them.
public struct EpochMetrics: Sendable, Codable {
    public var epoch: Int
    /// Mean training loss over the epoch's samples.
    public var loss: Double
    public var accuracy: Double?
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    /// R² = 1 - SSE/SST over the epoch's training samples, for regression; nil for classification.
    public var r2: Double?
    public var validationR2: Double?
    /// Wall time of the training steps alone.
    public var trainingSeconds: Double
    /// Wall time of the whole epoch, validation included.
    public var seconds: Double
    public var samples: Int
    /// The learning rate of the epoch's last step.
    public var learningRate: Double = .nan

    /// Training throughput: samples over the time of the training steps.
    public var imagesPerSecond: Double { Double(samples) / max(trainingSeconds, 1e-9) }
}

/// The metrics of a model on a data set, in inference mode.
public struct Evaluation: Sendable {
    /// Mean loss over the samples.
    public var loss: Double
    /// Fraction of samples whose largest logit is at their label; nil for regression.
    public var accuracy: Double?
    /// R² = 1 - SSE/SST over the samples; nil for classification.
    public var r2: Double?
}

/// A place in a training run to continue from: the epoch under way and the steps of it already
/// taken, with the epoch's running sums so that its metrics cover all of its steps.
public struct ResumePoint: Sendable, Equatable, Codable {
    /// The epoch to continue, from 1.
    public var epoch: Int
    /// The steps of that epoch already taken.
    public var step: Int
    /// The sum over the steps taken of each batch's mean loss times its size.
    public var lossSum: Double
    /// Correct predictions in the steps taken.
    public var correct: Int
    /// Samples in the steps taken.
    public var seen: Int

    public init(epoch: Int, step: Int, lossSum: Double = 0, correct: Int = 0, seen: Int = 0) {
        self.epoch = epoch
        self.step = step
        self.lossSum = lossSum
        self.correct = correct
        self.seen = seen
    }
}

/// Receives progress from `Trainer.fit`.
public protocol TrainingObserver: AnyObject {
    func epochWillBegin(epoch: Int, epochs: Int, steps: Int)
    /// Called after each step with the epoch's running mean loss and accuracy.
    func stepDidEnd(step: Int, steps: Int, loss: Double, accuracy: Double?)
    func epochDidEnd(_ metrics: EpochMetrics, epochs: Int)
}

public enum TrainingError: Error, CustomStringConvertible {
    case nonFiniteLoss(epoch: Int, step: Int, loss: Double)
    case missingGradient(parameter: String)

    public var description: String {
        switch self {
        case .nonFiniteLoss(let epoch, let step, let loss):
            "loss is \(loss) at epoch \(epoch), step \(step); lower the learning rate or check the data for NaN"
        case .missingGradient(let parameter):
            "parameter \(parameter) got no gradient; it does not take part in computing the loss"
        }
    }
}

/// Trains a model with a loss and an optimizer, one batch or one data set at a time.
public final class Trainer {
    public let model: Model
    public let loss: Loss
    public let optimizer: Optimizer
    /// Random crop and flip applied to each training batch in `fit`; nil for none.
    public var augmentation: Augmentation?
    /// Whether `fit` prepares each batch (gather and augmentation) on a background thread
    /// during the step before. The dataset's methods are then called from that thread, one
    /// call at a time. The batches are the same either way.
    public var prefetchesBatches = true
    /// The schedule that sets `optimizer.learningRate` before each step of `fit`, or nil to
    /// leave the rate as it is.
    public var schedule: LearningRateSchedule?
    /// Checked by `fit` after each step; when it returns true, `fit` stops and records where
    /// in `stoppedAt`. A stop requested on an epoch's last step takes effect after that
    /// epoch's validation.
    public var shouldStop: (() -> Bool)?
    /// The point at which the last `fit` stopped on request, or nil when it ran to the end.
    public private(set) var stoppedAt: ResumePoint?
    /// The ranks of a data-parallel run that this trainer is one of, or nil to train alone.
    ///
    /// With a group, `fit` gives each rank its share of every batch, whose size stays that of
    /// the whole batch. It sums the gradients over the ranks before each step, and reports the
    /// loss and accuracy of the whole batch and of the whole validation set. Batch
    /// norm normalizes over each rank's share and updates running statistics per rank; before
    /// each validation every rank takes rank 0's, so that the validation metrics are those of
    /// rank 0's model, the one a checkpoint saves. `fit` compares a checksum of the weights
    /// across the ranks after each epoch.
    public var replicas: ReplicaGroup?
    /// Whether `fit` compares the ranks' weights after every step instead of every epoch.
    public var checksReplicasEveryStep = false
    /// The weight comparisons across ranks that `fit` has made and found equal.
    public private(set) var replicaChecks = 0
    private let exchange = GradientExchange()
    private let statisticsExchange = GradientExchange()
    private var batchBuffer: [Float] = []
    private var preparedBatch = 0

    public init(model: Model, loss: Loss, optimizer: Optimizer) {
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
    }

    private var backend: Backend { model.backend }

    /// Runs forward, backward and one optimizer step on a batch, and returns the loss before
    /// the step. A non-finite loss skips the step and is returned as it is.
    @discardableResult
    public func trainStep(_ x: Tensor, targets: Targets) throws -> LossOutput {
        let (output, gradients) = try computeGradients(x, targets: targets)
        guard output.loss.isFinite else { return output }
        try optimizer.step(model.trainableParameters, gradients: gradients, backend: backend)
        return output
    }

    /// Runs forward and backward in training mode and returns the loss and the gradient of
    /// each trainable parameter, in the order of `model.trainableParameters`. Batch-norm
    /// running statistics are updated; parameters are not. A non-finite loss returns no
    /// gradients.
    public func computeGradients(
        _ x: Tensor, targets: Targets, observer: ((String, Tensor) -> Void)? = nil
    ) throws -> (LossOutput, [Tensor]) {
        if preparedBatch == 0 {
            try model.prepare(batch: x.shape[0])
            preparedBatch = x.shape[0]
        }
        let parameters = model.trainableParameters
        let tape = Tape(backend: backend)
        for parameter in parameters {
            tape.watch(parameter.value)
        }

        let logits = try model.forward(x, tape: tape, training: true, observer: observer)
        let output = try loss.evaluate(
            logits: try backend.values(of: logits), outputs: model.outputShape.elementCount, targets: targets)
        guard output.loss.isFinite else { return (output, []) }

        let seed = try backend.makeTensor(output.gradient, shape: logits.shape)
        let gradients = try tape.gradients(of: logits, seed: seed, for: parameters.map(\.value))
        var present: [Tensor] = []
        for (parameter, gradient) in zip(parameters, gradients) {
            guard let gradient else { throw TrainingError.missingGradient(parameter: parameter.name) }
            present.append(gradient)
        }
        return (output, present)
    }

    /// Returns the mean loss and the accuracy (nil for regression) over `dataset`, in
    /// inference mode.
    public func evaluate(_ dataset: Dataset, batchSize: Int) throws -> (loss: Double, accuracy: Double?) {
        let result = try evaluation(of: dataset, batchSize: batchSize)
        return (result.loss, result.accuracy)
    }

    /// Returns the mean loss, and the accuracy for classification or R² for regression, over
    /// `dataset`, in inference mode.
    public func evaluation(of dataset: Dataset, batchSize: Int) throws -> Evaluation {
        try evaluation(of: dataset, batchSize: batchSize, samples: 0..<dataset.count, group: nil)
    }

    /// Evaluates `samples` of `dataset`; with `group`, each rank passes its share and the
    /// result covers the whole data set.
    private func evaluation(of dataset: Dataset, batchSize: Int, samples: Range<Int>, group: ReplicaGroup?) throws
        -> Evaluation
    {
        var total = 0.0
        var correct = 0
        var regression = RegressionTotals()
        let outputs = model.outputShape.elementCount
        let indices = Array(samples)
        for start in stride(from: 0, to: indices.count, by: batchSize) {
            let batch = indices[start..<min(start + batchSize, indices.count)]
            let x = try makeBatch(dataset, batch)
            let predictions = try backend.values(of: try model.forward(x))
            let targets = dataset.targets(batch)
            let output = try loss.evaluate(logits: predictions, outputs: outputs, targets: targets)
            total += output.loss * Double(batch.count)
            correct += output.correct ?? 0
            if case .values(let values) = targets {
                regression.add(predictions: predictions, targets: values, outputs: outputs)
            }
        }
        if let group {
            let purpose = "validation metrics"
            let sums = try group.gather([total, Double(correct)], purpose: purpose).reduce([0, 0]) { [$0[0] + $1[0], $0[1] + $1[1]] }
            total = sums[0]
            correct = Int(sums[1])
            regression = try RegressionTotals.merged(regression, outputs: outputs, over: group, purpose: purpose)
        }
        let count = Double(max(dataset.count, 1))
        let isClassification = dataset.classCount != nil
        return Evaluation(
            loss: total / count, accuracy: isClassification ? Double(correct) / count : nil,
            r2: isClassification ? nil : regression.r2)
    }

    /// Trains for `epochs` epochs, shuffling the training samples each epoch from `seed`, and
    /// evaluates on `validation` after each. A short last batch is kept, and metrics weigh each
    /// batch by its size. With `augmentation` set, each training image is cropped and flipped
    /// at random from `seed`, the epoch and the step.
    ///
    /// Starting from `resumePoint` continues a run that stopped there. Each epoch's shuffle and
    /// augmentation depend only on `seed`, the epoch and the step. So once the weights and the
    /// optimizer state are restored, the rest of the run repeats what an uninterrupted one does.
    @discardableResult
    public func fit(
        _ train: Dataset, validation: Dataset?, epochs: Int, batchSize: Int, seed: UInt64,
        observer: TrainingObserver? = nil, from resumePoint: ResumePoint? = nil
    ) throws -> [EpochMetrics] {
        stoppedAt = nil
        guard batchSize > 0, epochs > 0, train.count > 0 else {
            throw BackendError("fit", "needs a positive batch size, epoch count and sample count")
        }
        try augmentation?.validate(for: train.sampleShape)
        if let replicas, batchSize % replicas.size != 0 {
            throw BackendError("fit", "the batch size \(batchSize) does not split evenly among \(replicas.size) ranks")
        }
        let steps = (train.count + batchSize - 1) / batchSize
        let outputs = model.outputShape.elementCount
        let loader = BatchLoader(sampleShape: train.sampleShape, batchSize: batchSize, prefetches: prefetchesBatches)
        if let schedule, schedule.stepsPerEpoch != steps {
            throw BackendError("fit", "the schedule has \(schedule.stepsPerEpoch) steps per epoch, but the data gives \(steps)")
        }
        let start = resumePoint ?? ResumePoint(epoch: 1, step: 0)
        guard (1...epochs).contains(start.epoch), (0..<steps).contains(start.step) else {
            throw BackendError(
                "fit", "cannot resume at epoch \(start.epoch), step \(start.step) of a run of \(epochs) epochs of \(steps) steps")
        }
        var history: [EpochMetrics] = []

        for epoch in start.epoch...epochs {
            let resumes = epoch == start.epoch && start.step > 0
            let firstStep = resumes ? start.step : 0
            observer?.epochWillBegin(epoch: epoch, epochs: epochs, steps: steps)
            let started = DispatchTime.now()
            var order = Array(0..<train.count)
            var generator = SeededGenerator(seed: seed, stream: UInt64(epoch))
            order.shuffle(using: &generator)
            var plan = EpochPlan(
                dataset: train, order: order, batchSize: batchSize, augmentation: augmentation, seed: seed, epoch: epoch)
            if let replicas {
                plan.replica = (replicas.rank, replicas.size)
            }
            loader.begin(plan, at: firstStep)

            var total = resumes ? start.lossSum : 0
            var correct = resumes ? start.correct : 0
            var seen = resumes ? start.seen : 0
            var regression = RegressionTotals()
            var stopAfterEpoch = false
            for step in firstStep..<steps {
                let batch = loader.next()
                if let schedule {
                    optimizer.learningRate = schedule.rate(atStep: (epoch - 1) * steps + step)
                }
                let localCount = batch.shape[0]
                let (output, gradients) = try computeGradients(of: batch)
                var totals = StepTotals(
                    lossSum: output.loss * Double(localCount), correct: output.correct ?? 0, count: localCount,
                    stopRequested: shouldStop?() == true)
                if let replicas {
                    totals = try totals.summed(over: replicas, purpose: "loss of epoch \(epoch), step \(step + 1)")
                }
                guard totals.lossSum.isFinite else {
                    throw TrainingError.nonFiniteLoss(
                        epoch: epoch, step: step + 1, loss: replicas == nil ? output.loss : totals.lossSum / Double(totals.count))
                }
                if let replicas {
                    try exchange.sum(
                        gradients, backend: backend, group: replicas, weight: Double(localCount) / Double(totals.count),
                        purpose: "gradients of epoch \(epoch), step \(step + 1)")
                }
                try optimizer.step(model.trainableParameters, gradients: gradients, backend: backend)
                if let replicas, checksReplicasEveryStep {
                    try checkReplicas(replicas, epoch: epoch, step: step + 1)
                }

                total += totals.lossSum
                correct += totals.correct
                seen += totals.count
                // Value targets pair with mean squared error alone, so the loss times the
                // target count is the batch's sum of squared errors.
                if case .values(let values) = batch.targets {
                    regression.add(targets: values, outputs: outputs, sumOfSquaredErrors: output.loss * Double(values.count))
                }
                let accuracy = train.classCount == nil ? nil : Double(correct) / Double(seen)
                observer?.stepDidEnd(step: step + 1, steps: steps, loss: total / Double(seen), accuracy: accuracy)

                if totals.stopRequested {
                    guard step + 1 == steps else {
                        stoppedAt = ResumePoint(epoch: epoch, step: step + 1, lossSum: total, correct: correct, seen: seen)
                        return history
                    }
                    stopAfterEpoch = true
                }
            }
            let trainingSeconds = seconds(since: started)
            if let replicas {
                if !checksReplicasEveryStep {
                    try checkReplicas(replicas, epoch: epoch, step: steps)
                }
                if train.classCount == nil {
                    regression = try RegressionTotals.merged(
                        regression, outputs: outputs, over: replicas, purpose: "training R² of epoch \(epoch)")
                }
            }

            var metrics = EpochMetrics(
                epoch: epoch, loss: total / Double(seen),
                accuracy: train.classCount == nil ? nil : Double(correct) / Double(seen),
                trainingSeconds: trainingSeconds, seconds: 0, samples: seen - (resumes ? start.seen : 0),
                learningRate: optimizer.learningRate)
            metrics.r2 = train.classCount == nil ? regression.r2 : nil
            if let validation {
                if let replicas {
                    try takeLeaderStatistics(replicas, epoch: epoch)
                }
                let result = try evaluation(
                    of: validation, batchSize: batchSize, samples: replicas?.share(of: validation.count) ?? 0..<validation.count,
                    group: replicas)
                metrics.validationLoss = result.loss
                metrics.validationAccuracy = result.accuracy
                metrics.validationR2 = result.r2
            }
            metrics.seconds = seconds(since: started)
            history.append(metrics)
            observer?.epochDidEnd(metrics, epochs: epochs)
            if stopAfterEpoch, epoch < epochs {
                stoppedAt = ResumePoint(epoch: epoch + 1, step: 0)
                return history
            }
        }
        return history
    }

    /// Runs forward and backward on a loaded batch. A rank whose share of a short last batch is
    /// empty returns zero gradients and a loss of zero, which weigh nothing in the sums.
    private func computeGradients(of batch: LoadedBatch) throws -> (LossOutput, [Tensor]) {
        guard batch.shape[0] > 0 else {
            let zeros = try model.trainableParameters.map { try backend.zeros(like: $0.value) }
            return (LossOutput(loss: 0, correct: 0, batchSize: 0, gradient: []), zeros)
        }
        let x = try backend.makeTensor(copying: batch.inputs, shape: batch.shape)
        return try computeGradients(x, targets: batch.targets)
    }

    /// Replaces every rank's batch-norm running statistics by rank 0's: a sum in which the
    /// other ranks weigh their own by zero.
    private func takeLeaderStatistics(_ group: ReplicaGroup, epoch: Int) throws {
        let statistics = model.parameters.filter { !$0.isTrainable }.map(\.value)
        guard !statistics.isEmpty else { return }
        try statisticsExchange.sum(
            statistics, backend: backend, group: group, weight: group.rank == 0 ? 1 : 0,
            purpose: "batch-norm statistics of epoch \(epoch)")
    }

    /// Throws when the ranks' weights differ.
    private func checkReplicas(_ group: ReplicaGroup, epoch: Int, step: Int) throws {
        let checksum = try weightChecksum(model.trainableParameters, backend: backend)
        let all = try group.gather(checksum, purpose: "weight checksums after epoch \(epoch), step \(step)")
        let differing = all.indices.filter { all[$0] != all[0] }
        guard differing.isEmpty else {
            throw ReplicaError.weightsDiffer(ranks: differing, epoch: epoch, step: step)
        }
        replicaChecks += 1
    }

    /// Copies the samples at `indices` into one tensor, reusing a host buffer.
    func makeBatch(_ dataset: Dataset, _ indices: ArraySlice<Int>) throws -> Tensor {
        let shape = TensorShape([indices.count] + dataset.sampleShape.dims)
        if batchBuffer.count < shape.elementCount {
            batchBuffer = [Float](repeating: 0, count: shape.elementCount)
        }
        return try batchBuffer.withUnsafeMutableBufferPointer { buffer in
            let slice = UnsafeMutableBufferPointer(rebasing: buffer[0..<shape.elementCount])
            dataset.copyInputs(indices, into: slice)
            return try backend.makeTensor(copying: UnsafeBufferPointer(slice), shape: shape)
        }
    }
}

func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

/// Runs `body` `warmup` times untimed, then `repeats` times (at least once), and returns the
/// wall times of the timed runs in seconds, shortest first.
func sortedRunTimes(warmup: Int, repeats: Int, _ body: () throws -> Void) throws -> [Double] {
    for _ in 0..<warmup {
        try body()
    }
    var times: [Double] = []
    for _ in 0..<max(repeats, 1) {
        let start = DispatchTime.now()
        try body()
        times.append(seconds(since: start))
    }
    return times.sorted()
}
