import ResNetKit

enum OptimizerChoice: String, CaseIterable {
    case adam, adamw, sgd

    var defaultLearningRate: Double { self == .sgd ? 0.01 : 0.001 }
    var defaultWeightDecay: Double { self == .adamw ? 0.01 : 0 }
}

enum ScheduleChoice: String, CaseIterable {
    case constant, step, cosine
    case oneCycle = "one-cycle"
}

/// The options of `resnet train` that choose the optimizer and the learning-rate schedule.
let optimizerOptions = [
    Option(
        "optimizer", choices: OptimizerChoice.allCases.map(\.rawValue),
        help: "adam: Adam with Keras's update rule; adamw: the same with decoupled weight decay; "
            + "sgd: SGD with momentum as PyTorch defines it (v = momentum*v + g, w -= lr*v)",
        default: "adam"),
    Option(
        "learning-rate", placeholder: "RATE",
        help: "the optimizer's step size, greater than 0 and at most 10; the peak rate with --schedule one-cycle",
        default: "0.001 for adam and adamw, 0.01 for sgd"),
    Option("momentum", placeholder: "M", help: "SGD momentum, at least 0 and less than 1 (sgd only)", default: "0.9"),
    Option(flag: "nesterov", help: "use Nesterov momentum, w -= lr*(g + momentum*v) (sgd only)"),
    Option(
        "weight-decay", placeholder: "WD",
        help: "weight decay from 0 to 1: added to the gradient as WD*w by adam and sgd, "
            + "subtracted from the weights as lr*WD*w by adamw; kernels only unless --decay-all-parameters",
        default: "0 for adam and sgd, 0.01 for adamw"),
    Option(flag: "decay-all-parameters", help: "apply weight decay to biases and batch-norm scales and shifts too"),
    Option(
        "schedule", choices: ScheduleChoice.allCases.map(\.rawValue),
        help: "learning rate per step: constant; step: times --gamma every --step-size epochs; "
            + "cosine: down to --min-learning-rate at the end; one-cycle: PyTorch's OneCycleLR, "
            + "up from RATE/25 for 30% of the steps, then down to RATE/25e4",
        default: "constant"),
    Option(
        "warmup-epochs", placeholder: "E",
        help: "epochs of linear warm-up before the schedule, rising to RATE in equal steps; may be fractional",
        default: "0"),
    Option("step-size", placeholder: "N", help: "epochs between drops of --schedule step", default: "a third of the epochs"),
    Option("gamma", placeholder: "F", help: "factor of each drop of --schedule step, greater than 0 and less than 1", default: "0.1"),
    Option("min-learning-rate", placeholder: "RATE", help: "the rate --schedule cosine ends at", default: "0"),
]

/// The optimizer and schedule that the command line requests, validated.
struct OptimizationSettings {
    var optimizer: OptimizerChoice
    var learningRate: Double
    var momentum: Double
    var nesterov: Bool
    var weightDecay: Double
    var decayAll: Bool
    var schedule: LearningRateSchedule

    /// Reads the options for a run of `epochs` epochs of `stepsPerEpoch` steps. Options that
    /// apply only to another optimizer or schedule are rejected rather than ignored.
    init(_ arguments: ParsedArguments, epochs: Int, stepsPerEpoch: Int) throws(UsageError) {
        optimizer = try arguments.choice("optimizer", as: OptimizerChoice.self)
        learningRate = optimizer.defaultLearningRate
        if arguments.contains("learning-rate") {
            learningRate = try arguments.double(
                "learning-rate", in: NumberBounds(lower: .exclusive(0), upper: .inclusive(10)))
        }

        try Self.require(arguments, ["momentum", "nesterov"], apply: optimizer == .sgd, to: "--optimizer sgd")
        momentum = 0.9
        if arguments.contains("momentum") {
            momentum = try arguments.double("momentum", in: NumberBounds(lower: .inclusive(0), upper: .exclusive(1)))
        }
        nesterov = arguments.flag("nesterov")
        if nesterov, momentum == 0 {
            throw UsageError("--nesterov needs a momentum greater than 0, but --momentum is 0; raise --momentum or drop --nesterov")
        }

        weightDecay = optimizer.defaultWeightDecay
        if arguments.contains("weight-decay") {
            weightDecay = try arguments.double("weight-decay", in: .from(0, to: 1))
        }
        if optimizer == .adamw, learningRate * weightDecay >= 1 {
            throw UsageError(
                "--learning-rate \(formatNumber(learningRate)) times --weight-decay \(formatNumber(weightDecay)) is "
                    + "\(formatNumber(learningRate * weightDecay)), but adamw shrinks the weights by that fraction each step, "
                    + "so it must be less than 1; lower either")
        }
        decayAll = arguments.flag("decay-all-parameters")
        if decayAll, weightDecay == 0 {
            throw UsageError("--decay-all-parameters has no effect with a weight decay of 0; give --weight-decay WD")
        }

        schedule = try Self.readSchedule(arguments, learningRate: learningRate, epochs: epochs, stepsPerEpoch: stepsPerEpoch)
    }

    private static func readSchedule(
        _ arguments: ParsedArguments, learningRate: Double, epochs: Int, stepsPerEpoch: Int
    ) throws(UsageError) -> LearningRateSchedule {
        let choice = try arguments.choice("schedule", as: ScheduleChoice.self)
        try require(arguments, ["step-size", "gamma"], apply: choice == .step, to: "--schedule step")
        try require(arguments, ["min-learning-rate"], apply: choice == .cosine, to: "--schedule cosine")

        let totalSteps = epochs * stepsPerEpoch
        let warmupEpochs = try arguments.double("warmup-epochs", in: .atLeast(0))
        let warmupSteps = Int((warmupEpochs * Double(stepsPerEpoch)).rounded())
        guard warmupEpochs < Double(epochs), warmupSteps < totalSteps else {
            throw UsageError(
                "invalid value '\(try arguments.string("warmup-epochs"))' for --warmup-epochs: expected fewer than the \(epochs) epochs of the run "
                    + "(\(totalSteps) steps), so that the schedule has steps after warm-up")
        }
        if choice == .oneCycle, warmupSteps > 0 {
            throw UsageError("--warmup-epochs does not apply to --schedule one-cycle, which warms up over its first 30% of steps")
        }

        let kind: LearningRateSchedule.Kind
        switch choice {
        case .constant:
            kind = .constant
        case .oneCycle:
            kind = .oneCycle
        case .cosine:
            let minimum = try arguments.double("min-learning-rate", in: .atLeast(0))
            guard minimum < learningRate else {
                throw UsageError(
                    "invalid value '\(try arguments.string("min-learning-rate"))' for --min-learning-rate: expected a number less than the learning rate \(learningRate)")
            }
            kind = .cosine(minimum: minimum)
        case .step:
            let stepSize: Int
            if arguments.contains("step-size") {
                stepSize = try arguments.integer("step-size", in: 1...1_000_000)
            } else {
                stepSize = max(epochs / 3, 1)
            }
            let stepsAfterWarmup = totalSteps - warmupSteps
            // The largest step size whose first drop still falls inside the run.
            let largest = (stepsAfterWarmup - 1) / stepsPerEpoch
            guard largest >= 1 else {
                throw UsageError(
                    "--schedule step needs more than one epoch after warm-up to drop the rate, but the run has "
                        + "\(stepsAfterWarmup) steps of \(stepsPerEpoch) per epoch; give more --epochs or fewer --warmup-epochs")
            }
            guard stepSize <= largest else {
                throw UsageError(
                    "invalid value '\(stepSize)' for --step-size: the rate would never drop, because the first drop "
                        + "comes after \(stepSize * stepsPerEpoch) steps and the run has \(stepsAfterWarmup) steps "
                        + "after warm-up; give a --step-size of at most \(largest)")
            }
            let gamma = try arguments.double("gamma", in: NumberBounds(lower: .exclusive(0), upper: .exclusive(1)))
            kind = .step(epochs: stepSize, gamma: gamma)
        }
        return LearningRateSchedule(
            kind, baseRate: learningRate, stepsPerEpoch: stepsPerEpoch, epochs: epochs, warmupSteps: warmupSteps)
    }

    /// Throws when an option in `names` is given but does not apply.
    private static func require(
        _ arguments: ParsedArguments, _ names: [String], apply: Bool, to context: String
    ) throws(UsageError) {
        guard !apply, let given = names.first(where: arguments.contains) else { return }
        throw UsageError("--\(given) applies only to \(context); remove it or add \(context)")
    }

    func makeOptimizer() -> Optimizer {
        switch optimizer {
        case .adam:
            Adam(learningRate: learningRate, weightDecay: weightDecay > 0 ? .l2(weightDecay) : .none, decayAll: decayAll)
        case .adamw:
            Adam(learningRate: learningRate, weightDecay: .decoupled(weightDecay), decayAll: decayAll)
        case .sgd:
            SGD(learningRate: learningRate, momentum: momentum, nesterov: nesterov,
                weightDecay: weightDecay > 0 ? .l2(weightDecay) : .none, decayAll: decayAll)
        }
    }

    /// The optimizer in words for the configuration lines.
    /// The tensors the optimizer keeps per trainable parameter: Adam's two moments, SGD's
    /// velocity when it has momentum.
    var stateTensorsPerParameter: Int {
        switch optimizer {
        case .adam, .adamw: 2
        case .sgd: momentum > 0 ? 1 : 0
        }
    }

    var optimizerDescription: String {
        var details = ["learning rate \(learningRate)"]
        switch optimizer {
        case .adam, .adamw:
            details.append("beta1 0.9, beta2 0.999, epsilon 1e-07")
        case .sgd:
            details.append("momentum \(momentum)\(nesterov ? ", Nesterov" : "")")
        }
        if weightDecay > 0 {
            let kind = optimizer == .adamw ? "decoupled" : "L2"
            details.append("\(kind) weight decay \(weightDecay) on \(decayAll ? "all parameters" : "kernels")")
        }
        return "\(optimizer.rawValue) (\(details.joined(separator: ", ")))"
    }
}

/// Formats a number as the command line would take it, such as `10`, `0.5` or `1e-05`.
private func formatNumber(_ value: Double) -> String {
    String(format: "%g", value)
}
