import Foundation

/// The learning rate of every optimizer step of a run.
///
/// The rate is a pure function of the global step, counted from 0 over the whole run, so a run
/// resumed at step `s` gets the same rates as one that never stopped. An optional linear
/// warm-up comes first: step `s < warmupSteps` gets `(s + 1) / warmupSteps` times the rate the
/// schedule starts at. The schedule itself then runs over the remaining steps, so its step `t`
/// is `s - warmupSteps` and its length is `totalSteps - warmupSteps`.
public struct LearningRateSchedule: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The base rate at every step.
        case constant
        /// The base rate times `gamma` after every `epochs` epochs, as PyTorch's `StepLR`
        /// stepped once per epoch: `base * gamma^floor(epoch / epochs)` with the epoch counted
        /// from 0 after warm-up.
        case step(epochs: Int, gamma: Double)
        /// Cosine annealing from the base rate at `t = 0` to `minimum` at `t = T`, the length
        /// after warm-up: `minimum + (base - minimum) * (1 + cos(pi * t / T)) / 2`, as PyTorch's
        /// `CosineAnnealingLR` with `T_max = T` stepped once per step.
        case cosine(minimum: Double)
        /// PyTorch's `OneCycleLR` with cosine annealing and two phases, the base rate being
        /// `max_lr`. The rate rises from `base / initialDivisor` to `base` at step
        /// `peakFraction * T - 1`, then falls to `base / initialDivisor / finalDivisor` at the
        /// last step `T - 1`.
        case oneCycle(peakFraction: Double, initialDivisor: Double, finalDivisor: Double)

        /// One-cycle with PyTorch's defaults: the peak at 30% of the steps, a start at
        /// `base / 25` and an end at `base / (25 * 1e4)`.
        public static let oneCycle = Kind.oneCycle(peakFraction: 0.3, initialDivisor: 25, finalDivisor: 1e4)
    }

    public var kind: Kind
    /// The rate the schedule scales: the constant rate, the rate before any drop or annealing,
    /// or one-cycle's peak.
    public var baseRate: Double
    public var stepsPerEpoch: Int
    /// Steps in the whole run, warm-up included.
    public var totalSteps: Int
    public var warmupSteps: Int

    /// Creates a schedule for `epochs` epochs of `stepsPerEpoch` steps, with `warmupSteps` of
    /// linear warm-up counted in those epochs.
    public init(_ kind: Kind, baseRate: Double, stepsPerEpoch: Int, epochs: Int, warmupSteps: Int = 0) {
        precondition(stepsPerEpoch > 0 && epochs > 0, "a schedule needs at least one epoch of one step")
        precondition((0...stepsPerEpoch * epochs).contains(warmupSteps), "warm-up must fit in the run")
        self.kind = kind
        self.baseRate = baseRate
        self.stepsPerEpoch = stepsPerEpoch
        self.totalSteps = stepsPerEpoch * epochs
        self.warmupSteps = warmupSteps
    }

    /// Returns the rate of global step `step`, counted from 0. Steps past the end keep the
    /// schedule's last rate, except that `.step` keeps dropping.
    public func rate(atStep step: Int) -> Double {
        let step = max(step, 0)
        if step < warmupSteps {
            return scheduledRate(at: 0) * Double(step + 1) / Double(warmupSteps)
        }
        return scheduledRate(at: step - warmupSteps)
    }

    /// Returns the rate of step `t` of the schedule after warm-up.
    private func scheduledRate(at t: Int) -> Double {
        let length = max(totalSteps - warmupSteps, 1)
        switch kind {
        case .constant:
            return baseRate

        case .step(let epochs, let gamma):
            let drops = t / stepsPerEpoch / max(epochs, 1)
            return baseRate * pow(gamma, Double(drops))

        case .cosine(let minimum):
            let progress = Double(min(t, length)) / Double(length)
            return anneal(from: baseRate, to: minimum, progress)

        case .oneCycle(let peakFraction, let initialDivisor, let finalDivisor):
            let initial = baseRate / initialDivisor
            let final = initial / finalDivisor
            let peakStep = peakFraction * Double(length) - 1
            let lastStep = Double(length - 1)
            let s = Double(t)
            if s <= peakStep, peakStep > 0 {
                return anneal(from: initial, to: baseRate, s / peakStep)
            }
            guard lastStep > peakStep else { return final }
            let progress = min((s - peakStep) / (lastStep - peakStep), 1)
            return anneal(from: baseRate, to: final, progress)
        }
    }

    /// Returns the cosine interpolation from `start` at `progress` 0 to `end` at 1.
    private func anneal(from start: Double, to end: Double, _ progress: Double) -> Double {
        end + (start - end) * (1 + cos(Double.pi * progress)) / 2
    }

    /// The schedule in words for the configuration lines, such as
    /// `cosine from 0.1 to 0.0 over 300 steps, after 30 linear warm-up steps`.
    public var description: String {
        let length = totalSteps - warmupSteps
        var text: String
        switch kind {
        case .constant:
            text = "constant \(baseRate)"
        case .step(let epochs, let gamma):
            text = "step: \(baseRate), times \(gamma) every \(epochs) \(epochs == 1 ? "epoch" : "epochs")"
        case .cosine(let minimum):
            text = "cosine from \(baseRate) to \(minimum) over \(length) steps"
        case .oneCycle(let peakFraction, let initialDivisor, let finalDivisor):
            let initial = baseRate / initialDivisor
            text = "one-cycle over \(length) steps: up from \(initial) to \(baseRate) in the first "
                + "\(Int((peakFraction * 100).rounded()))%, then down to \(initial / finalDivisor)"
        }
        if warmupSteps > 0 {
            text += ", after \(warmupSteps) linear warm-up steps"
        }
        return text
    }
}
