extension SyntheticData {
    /// The number of input features of `regression`.
    public static let regressionFeatures = 2

    /// Makes the tutorial's regression data: x uniform in [-1, 1) per feature, and one target
    /// y = x1 + x2 + e with e Gaussian of standard deviation `noise`. A model that learns the
    /// sum reaches a mean squared error of noise² (0.01 by default), the noise floor.
    public static func regression(samples: Int, noise: Double = 0.1, seed: UInt64) throws -> InMemoryDataset {
        guard samples > 0, noise >= 0, noise.isFinite else {
            throw BackendError("regression data", "needs a positive sample count and a finite noise of at least 0")
        }
        let features = regressionFeatures
        var inputs = [Float](repeating: 0, count: samples * features)
        var values = [Float](repeating: 0, count: samples)

        // One stream per sample, so that the first n samples do not depend on the total count.
        for sample in 0..<samples {
            var generator = SeededGenerator(seed: seed, stream: UInt64(sample) + 1)
            var sum = 0.0
            for feature in 0..<features {
                let x = 2 * generator.nextUnitDouble() - 1
                inputs[sample * features + feature] = Float(x)
                sum += x
            }
            values[sample] = Float(sum + noise * generator.nextNormal())
        }
        return try InMemoryDataset(sampleShape: TensorShape(features), inputs: inputs, values: values, outputs: 1)
    }
}
