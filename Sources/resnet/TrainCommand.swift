import Foundation
import ResNetKit

let trainCommand = Command(
    name: "train",
    summary: "train a model on synthetic or file data and report loss and accuracy per epoch",
    description: """
        Trains a residual network with Adam and sparse categorical cross-entropy. The defaults run \
        the Keras tutorial's job: the tutorial's model on 1000 random 224x224x3 images with random \
        labels from 10 classes, 10 epochs of batch 32, validated on 250 more. Random labels cannot \
        be learned, so a validation accuracy near 1/classes and a loss near ln(classes) are the \
        correct outcome; --data gratings gives images whose class can be learned. With --data \
        idx:DIR or npz:FILE the images and labels come from files, which set --input and --classes; \
        --samples and --validation-samples then keep the first N samples of each set.
        """,
    options: [
        Option("model", choices: Architecture.allCases.map(\.rawValue), help: "network to train", default: "tutorial"),
        Option("input", placeholder: "HxWxC", help: "image height, width and channels; file data takes them from its images", default: "224x224x3"),
        dataOption,
        Option("samples", placeholder: "N", help: "training samples; for file data, the first N of the training set, or all when absent", default: "1000"),
        Option("validation-samples", placeholder: "N", help: "validation samples, evaluated after each epoch; 0 for none; for file data, the first N of the test set, or all when absent", default: "250"),
        Option("classes", placeholder: "N", help: "number of classes; for file data, the largest label plus one unless N is larger", default: "10"),
        Option("epochs", placeholder: "N", help: "passes over the training samples", default: "10"),
        Option("batch-size", placeholder: "N", help: "samples per optimizer step", default: "32"),
        Option("learning-rate", placeholder: "RATE", help: "Adam's step size", default: "0.001"),
        Option("seed", placeholder: "N", help: "seed for weights, data and shuffling", default: "1"),
        threadsOption,
        backendOption,
        winogradOption,
    ] + dataSourceOptions)

struct TrainSettings {
    var architecture: Architecture
    var input: ImageShape
    var data: DataSource
    var samples: Int
    var validationSamples: Int
    var classes: Int
    var epochs: Int
    var batchSize: Int
    var learningRate: Double
    var seed: UInt64
    var threads: Int?
    var backend: BackendChoice
    var winograd: Bool

    init(_ arguments: ParsedArguments) throws(UsageError) {
        architecture = try arguments.choice("model", as: Architecture.self)
        input = try arguments.imageShape("input")
        data = try DataSource(parsing: arguments.string("data"))
        samples = try arguments.integer("samples", in: 1...10_000_000)
        validationSamples = try arguments.integer("validation-samples", in: 0...10_000_000)
        classes = try arguments.integer("classes", in: 2...100_000)
        epochs = try arguments.integer("epochs", in: 1...1_000_000)
        batchSize = try arguments.integer("batch-size", in: 1...65_536)
        learningRate = try arguments.double("learning-rate", in: .from(0, to: 10))
        guard learningRate > 0 else {
            throw UsageError("invalid value '\(learningRate)' for --learning-rate: expected a number greater than 0")
        }
        seed = UInt64(try arguments.integer("seed", in: 0...Int.max))
        threads = try parseThreads(arguments)
        backend = try arguments.choice("backend", as: BackendChoice.self)
        winograd = arguments.flag("winograd")

        // Generated data sets are held in memory as float32; reject sizes that cannot fit before
        // generating anything. File data is sized by its files.
        guard !data.isFile else { return }
        let bytes = Double(samples + validationSamples) * Double(input.height * input.width * input.channels) * 4
        let available = Double(ProcessInfo.processInfo.physicalMemory)
        guard bytes < available / 2 else {
            throw UsageError(
                "--samples \(samples) and --validation-samples \(validationSamples) of \(input) need "
                    + "\(String(format: "%.1f", bytes / 1e9)) GB as float32, more than half of this machine's "
                    + "\(String(format: "%.1f", available / 1e9)) GB; use fewer samples or a smaller --input")
        }
    }
}

/// Prints Keras-style per-epoch lines and a progress bar on a terminal.
final class EpochPrinter: TrainingObserver {
    private var progress = TrainingProgress()

    func epochWillBegin(epoch: Int, epochs: Int, steps: Int) {
        progress.beginEpoch(epoch: epoch, of: epochs, steps: steps)
    }

    func stepDidEnd(step: Int, steps: Int, loss: Double, accuracy: Double?) {
        progress.step(step, loss: loss, accuracy: accuracy ?? .nan)
    }

    func epochDidEnd(_ metrics: EpochMetrics, epochs: Int) {
        var fields = ["epoch \(metrics.epoch)/\(epochs)", "loss=\(formatMetric(metrics.loss))"]
        if let accuracy = metrics.accuracy { fields.append("accuracy=\(formatMetric(accuracy))") }
        if let loss = metrics.validationLoss { fields.append("val_loss=\(formatMetric(loss))") }
        if let accuracy = metrics.validationAccuracy { fields.append("val_accuracy=\(formatMetric(accuracy))") }
        fields.append("time=\(String(format: "%.1f", metrics.seconds))s")
        fields.append("img/s=\(String(format: "%.1f", metrics.imagesPerSecond))")
        progress.endEpoch(line: fields.joined(separator: " "))
    }
}

func runTrain(_ arguments: ParsedArguments) throws -> Int32 {
    let settings = try TrainSettings(arguments)
    let data = try loadData(arguments)
    let backend = try makeBackend(settings.backend, threads: settings.threads, winograd: settings.winograd)

    let model = try buildModel(
        settings.architecture, classes: data.classes, input: data.input, backend: backend, seed: settings.seed)
    try checkMemory(model, batch: settings.batchSize)

    printConfiguration([
        ("model", "\(model.name) (\(settings.architecture.summary))"),
        ("parameters", "\(groupedThousands(model.trainableParameterCount)) trainable, \(groupedThousands(model.parameterCount)) in all"),
        ("flops", String(format: "%.2f GFLOP forward, %.2f GFLOP training per image", Double(model.forwardFlops) / 1e9, Double(model.trainingFlops) / 1e9)),
        ("input", "\(data.input)"),
        ("data", data.description),
        ("epochs", "\(settings.epochs)"),
        ("batch_size", "\(settings.batchSize)"),
        ("optimizer", "adam (learning rate \(settings.learningRate), beta1 0.9, beta2 0.999, epsilon 1e-07)"),
        ("batch_norm", BatchNormConvention.description),
        ("seed", "\(settings.seed)"),
        ("backend", backend.summary),
    ])

    let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: Adam(learningRate: settings.learningRate))
    let started = Date()
    let history = try trainer.fit(
        data.train, validation: data.validation, epochs: settings.epochs, batchSize: settings.batchSize, seed: settings.seed,
        observer: EpochPrinter())

    let elapsed = Date().timeIntervalSince(started)
    let trainingSeconds = history.reduce(0) { $0 + $1.trainingSeconds }
    let images = history.reduce(0) { $0 + $1.samples }
    print(String(
        format: "done: %d %@ in %.1fs, training %.1f img/s, peak resident memory %.0f MB", history.count,
        history.count == 1 ? "epoch" : "epochs", elapsed,
        Double(images) / trainingSeconds, Double(peakResidentBytes()) / 1e6))
    return 0
}
