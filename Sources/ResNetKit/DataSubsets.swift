extension InMemoryDataset {
    /// Copies the samples at `range`, in order, into a new data set with the same sample shape
    /// and class count.
    public func samples(_ range: Range<Int>) throws -> InMemoryDataset {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw BackendError("dataset", "samples \(range) are outside the \(count) samples of the data set")
        }
        let sampleSize = sampleShape.elementCount
        let subsetInputs = Array(inputs[(range.lowerBound * sampleSize)..<(range.upperBound * sampleSize)])

        if let labels, let classCount {
            return try InMemoryDataset(
                sampleShape: sampleShape, inputs: subsetInputs, labels: Array(labels[range]), classCount: classCount)
        }
        let values = values ?? []
        let width = count == 0 ? 0 : values.count / count
        return try InMemoryDataset(
            sampleShape: sampleShape, inputs: subsetInputs,
            values: Array(values[(range.lowerBound * width)..<(range.upperBound * width)]), outputs: width)
    }

    /// Splits off the last `fraction` of the samples as Keras's `validation_split` does: the
    /// first `Int(count * (1 - fraction))` samples train and the rest validate.
    public func splitForValidation(fraction: Double) throws -> (train: InMemoryDataset, validation: InMemoryDataset) {
        guard fraction >= 0, fraction < 1 else {
            throw BackendError("dataset", "validation fraction \(fraction) is outside [0, 1)")
        }
        let trainCount = Int(Double(count) * (1 - fraction))
        return (try samples(0..<trainCount), try samples(trainCount..<count))
    }
}
