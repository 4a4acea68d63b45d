import Dispatch
import Foundation

/// Throughput of a model on one backend, measured as `resnet bench` reports it.
public struct BenchmarkResult: Sendable {
    public var batch: Int
    /// Median seconds of one training step (forward, backward, Adam update), or nil if not run.
    public var trainingStepSeconds: Double?
    /// Median seconds of one inference forward pass, or nil if not run.
    public var inferenceSeconds: Double?
    /// Sum over the model's convolutions of the fastest of the timed runs of forward,
    /// backward-data (except for the first convolution) and backward-weights, each run alone:
    /// the least time a training step can take on this backend's convolutions. The fastest run,
    /// not the median, keeps timing noise from putting the ceiling below the training rate.
    public var convolutionSeconds: Double?
    public var trainingFlopsPerImage: Int
    public var forwardFlopsPerImage: Int

    public var trainingImagesPerSecond: Double? { trainingStepSeconds.map { Double(batch) / $0 } }
    public var inferenceImagesPerSecond: Double? { inferenceSeconds.map { Double(batch) / $0 } }
    public var convolutionCeilingImagesPerSecond: Double? { convolutionSeconds.map { Double(batch) / $0 } }

    /// Effective GFLOP/s of training: the model's training FLOPs over the step time.
    public var trainingGigaflops: Double? {
        trainingStepSeconds.map { Double(trainingFlopsPerImage) * Double(batch) / $0 / 1e9 }
    }

    public var inferenceGigaflops: Double? {
        inferenceSeconds.map { Double(forwardFlopsPerImage) * Double(batch) / $0 / 1e9 }
    }

    /// Training throughput as a fraction of the convolution-only ceiling.
    public var ceilingFraction: Double? {
        guard let step = trainingStepSeconds, let convolutions = convolutionSeconds else { return nil }
        return convolutions / step
    }
}

/// Times training steps, inference passes and each convolution alone on random data.
public struct Benchmark {
    public var model: Model
    public var batch: Int
    public var warmupSteps: Int
    public var timedSteps: Int

    public init(model: Model, batch: Int, warmupSteps: Int = 2, timedSteps: Int = 5) {
        self.model = model
        self.batch = batch
        self.warmupSteps = warmupSteps
        self.timedSteps = timedSteps
    }

    public func run(training: Bool, inference: Bool, convolutions: Bool) throws -> BenchmarkResult {
        let backend = model.backend
        var result = BenchmarkResult(
            batch: batch, trainingFlopsPerImage: model.trainingFlops, forwardFlopsPerImage: model.forwardFlops)
        guard let classes = model.outputShape.dims.first else {
            throw BackendError("benchmark", "model \(model.name) has no output classes")
        }
        let data = try SyntheticData.uniform(samples: batch, sampleShape: model.inputShape, classes: classes, seed: 1)
        let indices = Array(0..<batch)[...]
        let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: Adam())
        let x = try trainer.makeBatch(data, indices)
        let targets = data.targets(indices)

        if training {
            result.trainingStepSeconds = try median { try trainer.trainStep(x, targets: targets) }
        }
        if inference {
            result.inferenceSeconds = try median { _ = try model.forward(x) }
        }
        if convolutions {
            result.convolutionSeconds = try timeConvolutions(backend)
        }
        return result
    }

    private func timeConvolutions(_ backend: Backend) throws -> Double {
        let layers = model.network.allLayers.compactMap { $0 as? Conv2D }
        var generator = SeededGenerator(seed: 2)
        var total = 0.0
        for (index, layer) in layers.enumerated() {
            guard let geometry = layer.geometry, let kernel = layer.kernel else { continue }
            let random = { (shape: TensorShape) in
                (0..<shape.elementCount).map { _ in generator.nextUnitFloat() - 0.5 }
            }
            let x = try backend.makeTensor(random(geometry.inputShape(batch: batch)), shape: geometry.inputShape(batch: batch))
            let dy = try backend.makeTensor(random(geometry.outputShape(batch: batch)), shape: geometry.outputShape(batch: batch))
            let weights = kernel.value
            let bias = layer.bias?.value
            let isFirst = index == 0

            total += try fastest { _ = try backend.convolution(x, weights: weights, bias: bias, geometry: geometry) }
            total += try fastest {
                _ = try backend.convolutionBackward(
                    dy, x: x, weights: weights, hasBias: bias != nil, geometry: geometry, computeInputGradient: !isFirst)
            }
        }
        return total
    }

    /// Returns the median wall time of `timedSteps` runs of `body` after `warmupSteps` untimed ones.
    private func median(_ body: () throws -> Void) throws -> Double {
        let times = try sortedRunTimes(warmup: warmupSteps, repeats: timedSteps, body)
        return times[times.count / 2]
    }

    /// Returns the shortest wall time of `timedSteps` runs of `body` after `warmupSteps` untimed ones.
    private func fastest(_ body: () throws -> Void) throws -> Double {
        try sortedRunTimes(warmup: warmupSteps, repeats: timedSteps, body)[0]
    }
}

/// Returns the process's peak resident memory in bytes, from getrusage.
public func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return usage.ru_maxrss * 1024
    #else
        getrusage(RUSAGE_SELF, &usage)
        return usage.ru_maxrss
    #endif
}
