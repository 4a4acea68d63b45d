import Dispatch

/// Per-channel input normalization, x' = (x - mean[c]) / standardDeviation[c], with statistics
/// taken from a training set and applied unchanged to every other set.
///
/// Channels are the first axis of the sample shape: the C of CxHxW images, or each feature of
/// flat `[F]` samples. The plain arrays are what a checkpoint stores to normalize inputs the
/// same way at inference. They are Double, because a Float mean of a channel with a large
/// offset and a small spread would leave a visible bias after subtraction.
public struct Normalization: Sendable, Equatable, Codable {
    public var mean: [Double]
    /// The population standard deviation (divided by the value count) per channel, or 1 for a
    /// channel whose values are all equal, which then only has its mean subtracted.
    public var standardDeviation: [Double]

    public init(mean: [Double], standardDeviation: [Double]) {
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    public var channelCount: Int { mean.count }

    /// Computes the mean and standard deviation of each channel over all samples of `dataset`,
    /// in Double, by two passes so that a large mean does not cancel the variance.
    public init(fitting dataset: InMemoryDataset) throws {
        let shape = dataset.sampleShape
        guard shape.rank >= 1, dataset.count > 0 else {
            throw BackendError("normalization", "needs at least one sample with a channel axis, got \(dataset.count) of \(shape)")
        }
        let channels = shape[0]
        let planeSize = shape.elementCount / channels
        let sampleSize = shape.elementCount
        var means = [Double](repeating: 0, count: channels)
        var deviations = [Double](repeating: 1, count: channels)

        dataset.inputs.withUnsafeBufferPointer { inputs in
            means.withUnsafeMutableBufferPointer { meanOutput in
                deviations.withUnsafeMutableBufferPointer { deviationOutput in
                    DispatchQueue.concurrentPerform(iterations: channels) { channel in
                        var sum = 0.0
                        for sample in 0..<dataset.count {
                            let start = sample * sampleSize + channel * planeSize
                            for index in start..<start + planeSize { sum += Double(inputs[index]) }
                        }
                        let count = Double(dataset.count * planeSize)
                        let mean = sum / count

                        var squares = 0.0
                        for sample in 0..<dataset.count {
                            let start = sample * sampleSize + channel * planeSize
                            for index in start..<start + planeSize {
                                let deviation = Double(inputs[index]) - mean
                                squares += deviation * deviation
                            }
                        }
                        let deviation = (squares / count).squareRoot()
                        meanOutput[channel] = mean
                        deviationOutput[channel] = deviation > 0 ? deviation : 1
                    }
                }
            }
        }
        self.init(mean: means, standardDeviation: deviations)
    }

    /// Normalizes `values`, consecutive samples of `sampleShape`, in place.
    public func apply(to values: inout [Float], sampleShape: TensorShape) throws {
        guard sampleShape.rank >= 1, sampleShape[0] == channelCount, values.count % sampleShape.elementCount == 0 else {
            throw BackendError(
                "normalization",
                "statistics for \(channelCount) channels do not fit \(values.count) values of samples \(sampleShape)")
        }
        let planeSize = sampleShape.elementCount / channelCount
        for planeStart in stride(from: 0, to: values.count, by: planeSize) {
            let channel = planeStart / planeSize % channelCount
            let mean = mean[channel]
            let deviation = standardDeviation[channel]
            for index in planeStart..<planeStart + planeSize {
                values[index] = Float((Double(values[index]) - mean) / deviation)
            }
        }
    }
}

extension InMemoryDataset {
    /// Computes the per-channel mean and standard deviation of this data set's inputs.
    public func channelNormalization() throws -> Normalization {
        try Normalization(fitting: self)
    }

    /// Returns a copy whose inputs are normalized by `normalization`, with the same targets.
    public func normalized(by normalization: Normalization) throws -> InMemoryDataset {
        var values = inputs
        try normalization.apply(to: &values, sampleShape: sampleShape)
        if let labels, let classCount {
            return try InMemoryDataset(sampleShape: sampleShape, inputs: values, labels: labels, classCount: classCount)
        }
        let targets = self.values ?? []
        return try InMemoryDataset(
            sampleShape: sampleShape, inputs: values, values: targets, outputs: targets.count / max(count, 1))
    }
}
