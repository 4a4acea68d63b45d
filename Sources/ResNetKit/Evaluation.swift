/// A classifier's results on a labelled data set: the mean loss and the confusion matrix, from
/// which accuracy and per-class accuracy follow.
public struct ClassificationReport: Sendable {
    /// Mean cross-entropy over the samples.
    public var loss: Double
    /// `confusion[label][predicted]` counts the samples of class `label` whose largest logit
    /// is at class `predicted`; on ties the lower class wins, as in the loss's accuracy.
    public var confusion: [[Int]]

    public var sampleCount: Int { confusion.reduce(0) { $0 + $1.reduce(0, +) } }

    public var correctCount: Int { confusion.indices.reduce(0) { $0 + confusion[$1][$1] } }

    public var accuracy: Double { sampleCount == 0 ? 0 : Double(correctCount) / Double(sampleCount) }

    /// Sample count of each true class: the confusion matrix's row sums.
    public var classSampleCounts: [Int] { confusion.map { $0.reduce(0, +) } }

    /// Share of each class's samples predicted as that class (its recall); nil for a class
    /// without samples.
    public var classAccuracies: [Double?] {
        confusion.indices.map { label in
            let count = confusion[label].reduce(0, +)
            return count == 0 ? nil : Double(confusion[label][label]) / Double(count)
        }
    }
}

extension Model {
    /// Runs the model in inference mode over `dataset` in batches of `batchSize` and returns
    /// the mean cross-entropy and the confusion matrix. Kernels are first prepared for
    /// `batchSize`, as training prepares them, so the results match a validation pass run at
    /// the same batch size on the same backend.
    public func evaluateClassifier(_ dataset: Dataset, batchSize: Int) throws -> ClassificationReport {
        let classes = outputShape.elementCount
        guard dataset.classCount == classes else {
            throw BackendError(
                "evaluate", "the data has \(dataset.classCount.map(String.init) ?? "no") classes, the model \(classes)")
        }
        guard dataset.sampleShape == inputShape else {
            throw BackendError("evaluate", "the data's samples are \(dataset.sampleShape), the model takes \(inputShape)")
        }
        guard batchSize > 0, dataset.count > 0 else {
            throw BackendError("evaluate", "needs a positive batch size and at least one sample")
        }
        try prepare(batch: batchSize)

        var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        var totalLoss = 0.0
        var buffer = [Float](repeating: 0, count: batchSize * inputShape.elementCount)
        for start in stride(from: 0, to: dataset.count, by: batchSize) {
            let indices = Array(start..<min(start + batchSize, dataset.count))[...]
            let shape = TensorShape([indices.count] + inputShape.dims)
            let x = try buffer.withUnsafeMutableBufferPointer { whole in
                let slice = UnsafeMutableBufferPointer(rebasing: whole[0..<shape.elementCount])
                dataset.copyInputs(indices, into: slice)
                return try backend.makeTensor(copying: UnsafeBufferPointer(slice), shape: shape)
            }
            let logits = try backend.values(of: try forward(x))
            let targets = dataset.targets(indices)
            let output = try Loss.crossEntropy.evaluate(logits: logits, outputs: classes, targets: targets)
            totalLoss += output.loss * Double(indices.count)

            guard case .classes(let labels) = targets else { continue }
            for (row, label) in labels.enumerated() {
                var predicted = 0
                for column in 1..<classes where logits[row * classes + column] > logits[row * classes + predicted] {
                    predicted = column
                }
                confusion[label][predicted] += 1
            }
        }
        return ClassificationReport(loss: totalLoss / Double(dataset.count), confusion: confusion)
    }
}
