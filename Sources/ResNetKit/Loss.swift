import Foundation

/// The targets of a batch: class indices, or real-valued targets in `[N, outputs]` order for
/// regression.
public enum Targets {
    case classes([Int])
    case values([Float])

    public var count: Int {
        switch self {
        case .classes(let labels): labels.count
        case .values(let values): values.count
        }
    }
}

/// A loss's value on one batch and the gradient of that value with respect to the logits.
public struct LossOutput {
    /// Mean over the batch.
    public var loss: Double
    /// Samples whose largest logit is at their label; nil for regression.
    public var correct: Int?
    public var batchSize: Int
    /// `[N, outputs]`, canonical order.
    public var gradient: [Float]
}

public enum Loss: String, Sendable {
    /// Softmax fused with sparse categorical cross-entropy, computed from logits.
    case crossEntropy = "sparse_categorical_crossentropy"
    case meanSquaredError = "mse"

    /// Computes the loss and its gradient for logits of shape `[N, outputs]`.
    ///
    /// Cross-entropy subtracts each row's maximum before exponentiating, so logits of any
    /// magnitude give a finite loss and gradient: loss = logsumexp(z) - z[label], and the
    /// gradient is (softmax(z) - onehot(label)) / N.
    public func evaluate(logits: [Float], outputs: Int, targets: Targets) throws -> LossOutput {
        guard outputs > 0, logits.count % outputs == 0 else {
            throw BackendError("loss", "\(logits.count) logits do not split into rows of \(outputs)")
        }
        let batch = logits.count / outputs
        switch (self, targets) {
        case (.crossEntropy, .classes(let labels)):
            return try crossEntropy(logits: logits, outputs: outputs, batch: batch, labels: labels)
        case (.meanSquaredError, .values(let values)):
            return try meanSquaredError(predictions: logits, targets: values)
        default:
            throw BackendError("loss", "\(rawValue) does not take these targets; use class labels with cross-entropy and values with mse")
        }
    }

    private func crossEntropy(logits: [Float], outputs: Int, batch: Int, labels: [Int]) throws -> LossOutput {
        guard labels.count == batch else {
            throw BackendError("loss", "\(batch) rows of logits but \(labels.count) labels")
        }
        var gradient = [Float](repeating: 0, count: logits.count)
        var total = 0.0
        var correct = 0
        let scale = 1 / Double(batch)

        for row in 0..<batch {
            let label = labels[row]
            guard (0..<outputs).contains(label) else {
                throw BackendError("loss", "label \(label) of sample \(row) is outside 0..<\(outputs)")
            }
            let start = row * outputs
            let values = logits[start..<start + outputs]
            let maximum = Double(values.max()!)
            var sum = 0.0
            for value in values {
                sum += exp(Double(value) - maximum)
            }
            let logSumExp = maximum + log(sum)
            total += logSumExp - Double(values[start + label])

            var best = start
            for index in start..<start + outputs {
                let probability = exp(Double(logits[index]) - logSumExp)
                let target = index - start == label ? 1.0 : 0.0
                gradient[index] = Float((probability - target) * scale)
                if logits[index] > logits[best] { best = index }
            }
            if best - start == label { correct += 1 }
        }
        return LossOutput(loss: total * scale, correct: correct, batchSize: batch, gradient: gradient)
    }

    private func meanSquaredError(predictions: [Float], targets: [Float]) throws -> LossOutput {
        guard predictions.count == targets.count, !targets.isEmpty else {
            throw BackendError("loss", "\(predictions.count) predictions but \(targets.count) targets")
        }
        var total = 0.0
        var gradient = [Float](repeating: 0, count: predictions.count)
        let scale = 1 / Double(predictions.count)
        for index in predictions.indices {
            let difference = Double(predictions[index]) - Double(targets[index])
            total += difference * difference
            gradient[index] = Float(2 * difference * scale)
        }
        return LossOutput(loss: total * scale, correct: nil, batchSize: 0, gradient: gradient)
    }
}
