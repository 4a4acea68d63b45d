/// Running sums for the coefficient of determination of regression outputs,
/// R² = 1 - SSE / SST, over the samples added so far.
///
/// SST sums each output column's squared deviations from that column's mean, so with several
/// outputs R² is pooled over the columns (scikit-learn's "variance_weighted"). With one output,
/// as in the tutorial's regression data, it is the usual R².
public struct RegressionTotals: Sendable {
    public private(set) var sumOfSquaredErrors = 0.0
    public private(set) var samples = 0
    /// Per output column: the mean of the targets so far and the sum of their squared
    /// deviations from it, updated by Welford's method so that a large mean does not cancel SST.
    private var means: [Double] = []
    private var squaredDeviations: [Double] = []

    public init() {}

    /// Adds a batch: its targets in `[N, outputs]` order and the sum of its squared errors.
    public mutating func add(targets: [Float], outputs: Int, sumOfSquaredErrors: Double) {
        precondition(outputs > 0 && targets.count % outputs == 0, "\(targets.count) targets do not split into rows of \(outputs)")
        if means.isEmpty {
            means = [Double](repeating: 0, count: outputs)
            squaredDeviations = [Double](repeating: 0, count: outputs)
        }
        precondition(means.count == outputs, "batches with \(means.count) and \(outputs) outputs")
        for row in 0..<targets.count / outputs {
            samples += 1
            for column in 0..<outputs {
                let value = Double(targets[row * outputs + column])
                let delta = value - means[column]
                means[column] += delta / Double(samples)
                squaredDeviations[column] += delta * (value - means[column])
            }
        }
        self.sumOfSquaredErrors += sumOfSquaredErrors
    }

    /// Adds a batch from its predictions and targets, both in `[N, outputs]` order.
    public mutating func add(predictions: [Float], targets: [Float], outputs: Int) {
        precondition(predictions.count == targets.count, "\(predictions.count) predictions for \(targets.count) targets")
        var squaredErrors = 0.0
        for (prediction, target) in zip(predictions, targets) {
            let error = Double(prediction) - Double(target)
            squaredErrors += error * error
        }
        add(targets: targets, outputs: outputs, sumOfSquaredErrors: squaredErrors)
    }

    /// Returns the totals as numbers, for sending to other ranks: the sum of squared errors, the sample
    /// count, then each column's mean and sum of squared deviations. `outputs` sizes the list
    /// when no sample has been added.
    func components(outputs: Int) -> [Double] {
        let means = means.isEmpty ? [Double](repeating: 0, count: outputs) : means
        let deviations = squaredDeviations.isEmpty ? [Double](repeating: 0, count: outputs) : squaredDeviations
        return [sumOfSquaredErrors, Double(samples)] + means + deviations
    }

    /// Adds the totals that `components(outputs:)` of another part of the data returned, by
    /// Chan, Golub and LeVeque's rule for combining means and squared deviations.
    mutating func merge(components: [Double]) {
        let outputs = (components.count - 2) / 2
        let count = Int(components[1])
        guard count > 0 else { return }
        if means.isEmpty {
            means = [Double](repeating: 0, count: outputs)
            squaredDeviations = [Double](repeating: 0, count: outputs)
        }
        let total = Double(samples + count)
        for column in 0..<outputs {
            let delta = components[2 + column] - means[column]
            means[column] += delta * Double(count) / total
            squaredDeviations[column] += components[2 + outputs + column] + delta * delta * Double(samples) * Double(count) / total
        }
        samples += count
        sumOfSquaredErrors += components[0]
    }

    /// Returns the totals of all ranks' parts of a data set, `local` being this rank's.
    static func merged(_ local: RegressionTotals, outputs: Int, over group: ReplicaGroup, purpose: String) throws
        -> RegressionTotals
    {
        var merged = RegressionTotals()
        for part in try group.gather(local.components(outputs: outputs), purpose: purpose) {
            merged.merge(components: part)
        }
        return merged
    }

    /// Sum of squared deviations of the targets from their column means.
    public var totalSumOfSquares: Double { squaredDeviations.reduce(0, +) }

    /// R², or nil before the first sample. It is NaN when every target is the same, because
    /// SST is then 0.
    public var r2: Double? {
        guard samples > 0 else { return nil }
        let total = totalSumOfSquares
        return total > 0 ? 1 - sumOfSquaredErrors / total : .nan
    }
}
