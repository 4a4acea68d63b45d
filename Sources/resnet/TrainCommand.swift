import Foundation
import ResNetKit

let trainCommand = Command(
    name: "train",
    summary: "train a model on generated or file data and report loss and accuracy per epoch",
    description: """
        Trains a residual network with sparse categorical cross-entropy, by default with Adam, or \
        with mean squared error on --data regression, where the epoch lines report R² (r2=) \
        instead of accuracy. The defaults run \
        the Keras tutorial's job: the tutorial's model on 1000 random 224x224x3 images with random \
        labels from 10 classes, 10 epochs of batch 32, validated on 250 more. Random labels cannot \
        be learned, so a validation accuracy near 1/classes and a loss near ln(classes) are the \
        correct outcome; --data gratings gives images whose class can be learned. --data \
        regression is the tutorial's other job, x uniform in [-1, 1]^2 and y = x1 + x2 + noise \
        of standard deviation 0.1, trained with --model mlp; its noise floor is an MSE of 0.01. \
        With --data idx:DIR or npz:FILE the images and labels come from files, which set --input \
        and --classes; --samples and --validation-samples then keep the first N samples of each set.
        """,
    options: [
        Option("model", choices: ModelChoice.allCases.map(\.rawValue),
               help: "network to train; mlp is a residual MLP for --data regression", default: "tutorial"),
        Option("input", placeholder: "HxWxC", help: "image height, width and channels; file data takes them from its images", default: "224x224x3"),
        dataOption,
        Option("samples", placeholder: "N", help: "training samples; for file data, the first N of the training set, or all when absent", default: "1000"),
        Option("validation-samples", placeholder: "N", help: "validation samples, evaluated after each epoch; 0 for none; for file data, the first N of the test set, or all when absent", default: "250"),
        Option("classes", placeholder: "N", help: "number of classes; for file data, the largest label plus one unless N is larger", default: "10"),
        Option("epochs", placeholder: "N", help: "passes over the training samples", default: "10"),
        Option("batch-size", placeholder: "N", help: "samples per optimizer step", default: "32"),
        Option("seed", placeholder: "N", help: "seed for weights, data and shuffling", default: "1"),
        Option(flag: "augment",
               help: "randomly crop each training image from a copy padded with zeros, and flip it horizontally with probability 1/2; the padding is 1/8 of the smaller side, 4 for 32x32"),
        Option("augment-padding", placeholder: "N", help: "zero padding on each side for --augment's crop, in pixels; implies --augment"),
        Option("normalize", choices: NormalizeChoice.allCases.map(\.rawValue),
               help: "subtract each channel's training-set mean and divide by its standard deviation, in training and validation; auto does it for data read from files and leaves generated data as it is",
               default: "auto"),
        threadsOption,
        backendOption,
        noWinogradOption,
        saveOption,
        overwriteOption,
        saveEveryOption,
        resumeOption,
        Option(flag: "dry-run", help: "load the data, build the model and print the configuration and the memory plan (parameters, gradients, optimizer state, activations, workspace, data), then stop before training"),
    ] + dataSourceOptions + optimizerOptions + outputOptions + distributedOptions)

struct TrainSettings {
    var model: ModelChoice
    var input: ImageShape
    var data: DataSource
    var samples: Int
    var validationSamples: Int
    var classes: Int
    var epochs: Int
    var batchSize: Int
    var outputs: OutputSettings
    var seed: UInt64
    var normalizes: Bool
    var threads: Int?
    var backend: BackendChoice
    var winograd: Bool
    /// `--npz-keys` and `--layout` as given, recorded so that `evaluate` reads the file alike.
    var npzKeys: String?
    var layout: String?
    var save: URL?
    var overwrite: Bool
    /// Epochs between the checkpoints saved during training, or nil for none.
    var saveInterval: Int?

    init(_ arguments: ParsedArguments) throws(UsageError) {
        model = try arguments.choice("model", as: ModelChoice.self)
        input = try arguments.imageShape("input")
        data = try DataSource(parsing: arguments.string("data"))
        try checkCompatibility(model: model, data: data, arguments: arguments)
        samples = try arguments.integer("samples", in: 1...10_000_000)
        validationSamples = try arguments.integer("validation-samples", in: 0...10_000_000)
        classes = try arguments.integer("classes", in: 2...100_000)
        epochs = try arguments.integer("epochs", in: 1...1_000_000)
        batchSize = try arguments.integer("batch-size", in: 1...65_536)
        outputs = try OutputSettings(arguments)
        seed = UInt64(try arguments.integer("seed", in: 0...Int.max))
        switch try arguments.choice("normalize", as: NormalizeChoice.self) {
        case .auto: normalizes = data.normalizesByDefault
        case .on: normalizes = true
        case .off: normalizes = false
        }
        threads = try parseThreads(arguments)
        backend = try arguments.choice("backend", as: BackendChoice.self)
        winograd = !arguments.flag("no-winograd")
        npzKeys = arguments.contains("npz-keys") ? try arguments.string("npz-keys") : nil
        layout = arguments.contains("layout") ? try arguments.choice("layout") : nil
        // Rank 0 alone writes checkpoints, so the other ranks do not need its directory.
        save = (DistributedRun.currentRank ?? 0) == 0 ? try checkSaveTarget(arguments) : nil
        overwrite = arguments.flag("overwrite")
        if arguments.contains("save-every") {
            guard arguments.contains("save") else {
                throw UsageError("--save-every needs --save FILE, beside which the epoch checkpoints are written")
            }
            saveInterval = try arguments.integer("save-every", in: 1...1_000_000)
        }

        // Generated data sets are held in memory as float32; reject sizes that cannot fit before
        // generating anything. File data is sized by its files.
        guard !data.isFile else { return }
        let sampleSize = data.hasFeatures ? SyntheticData.regressionFeatures : input.height * input.width * input.channels
        let bytes = Double(samples + validationSamples) * Double(sampleSize) * 4
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
        if let r2 = metrics.r2 { fields.append("r2=\(formatMetric(r2))") }
        if let loss = metrics.validationLoss { fields.append("val_loss=\(formatMetric(loss))") }
        if let accuracy = metrics.validationAccuracy { fields.append("val_accuracy=\(formatMetric(accuracy))") }
        if let r2 = metrics.validationR2 { fields.append("val_r2=\(formatMetric(r2))") }
        fields.append("time=\(String(format: "%.1f", metrics.seconds))s")
        fields.append("img/s=\(String(format: "%.1f", metrics.imagesPerSecond))")
        progress.endEpoch(line: fields.joined(separator: " "))
    }
}

func runTrain(_ options: ParsedArguments) throws -> Int32 {
    // MPI starts before anything that can fail on one rank alone, such as reading a file, so
    // that such a failure ends every rank through MPI_Abort. The distributed options always
    // come from this command line, also when resuming.
    let distributed = try DistributedSettings.parse(options).map { try DistributedRun($0) }
    let resumed = options.contains("resume") ? try ResumedRun(options) : nil
    let arguments = resumed?.arguments ?? options
    let commandLine = resumed?.recordedArguments ?? Array(CommandLine.arguments.dropFirst(2))
    let settings = try TrainSettings(arguments)
    let isRegression = settings.data.isRegression
    let localBatch = try distributed?.shareOfBatch(settings.batchSize, resumed: resumed != nil) ?? settings.batchSize
    let isLeader = distributed?.isLeader ?? true
    let data = try loadData(arguments)
    try distributed?.checkData(data)
    let shape = data.train.sampleShape
    let optimization = try OptimizationSettings(
        arguments, epochs: settings.epochs, stepsPerEpoch: (data.train.count + settings.batchSize - 1) / settings.batchSize)
    let augmentation = try data.input.flatMap { input throws(UsageError) in try parseAugmentation(arguments, input: input) }
    let backend = try makeBackend(
        settings.backend, threads: settings.threads ?? distributed?.defaultThreads, winograd: settings.winograd)
    try distributed?.checkBackends(backend)

    let model: Model
    switch settings.model {
    case .image(let architecture):
        model = try buildModel(
            architecture, classes: data.classes, input: data.input ?? settings.input, backend: backend, seed: settings.seed)
    case .residualMLP:
        model = try ResidualMLP().makeModel(
            features: shape[0], outputs: isRegression ? 1 : data.classes, backend: backend, seed: settings.seed)
    }
    let optimizer = optimization.makeOptimizer()
    let dataBytes = (data.train.count + (data.validation?.count ?? 0)) * shape.elementCount * MemoryLayout<Float>.size
    let stateTensors = optimization.stateTensorsPerParameter
    let plan = MemoryPlan(model: model, batch: localBatch, stateTensorsPerParameter: stateTensors, dataBytes: dataBytes)
    let dryRun = arguments.flag("dry-run")
    if !dryRun {
        try checkMemory(
            plan, model: model, batch: localBatch, stateTensorsPerParameter: stateTensors,
            processes: distributed?.localRankCount ?? 1, ranks: distributed?.group.size ?? 1)
    }
    if let resumed {
        try resumed.restore(into: model, optimizer: optimizer)
    }
    // A dry run writes nothing. A real one opens the log and checks the plot's path before
    // printing anything, so that a bad path ends the run at once.
    let outputs = dryRun || !isLeader ? nil : try TrainingOutputs(settings.outputs, optimizer: optimizer, resumedHistory: resumed?.history)

    printConfiguration([
        ("model", "\(model.name) (\(settings.model.summary))"),
        ("parameters", "\(groupedThousands(model.trainableParameterCount)) trainable, \(groupedThousands(model.parameterCount)) in all"),
        ("flops", String(format: "%.2f GFLOP forward, %.2f GFLOP training per image", Double(model.forwardFlops) / 1e9, Double(model.trainingFlops) / 1e9)),
        ("input", data.input.map { "\($0)" } ?? "\(shape[0]) features"),
        ("data", data.description),
        ("loss", isRegression ? Loss.meanSquaredError.rawValue : Loss.crossEntropy.rawValue),
        ("augmentation", describe(augmentation, data: settings.data)),
        ("epochs", "\(settings.epochs)"),
        ("batch_size", "\(settings.batchSize)"),
        ("optimizer", optimization.optimizerDescription),
        ("schedule", optimization.schedule.description),
        ("batch_norm", BatchNormConvention.description),
        ("seed", "\(settings.seed)"),
        ("backend", backend.summary),
    ] + (settings.save.map { [("save", $0.path)] } ?? []) + settings.outputs.configurationRows
        + (resumed.map { [("resumed", "from \($0.checkpoint.path) at epoch \($0.point.epoch), step \($0.point.step)")] } ?? [])
        + (distributed?.configurationRows(batchSize: settings.batchSize) ?? []))
    if dryRun {
        printMemoryPlan(plan)
        try checkMemory(
            plan, model: model, batch: localBatch, stateTensorsPerParameter: stateTensors,
            processes: distributed?.localRankCount ?? 1, ranks: distributed?.group.size ?? 1)
        print("dry run: the plan fits; no training done")
        try distributed?.finish()
        return 0
    }
    let (trainInputs, validationInputs, normalization) = try normalize(
        data.train, data.validation, enabled: settings.normalizes)

    // Epoch checkpoints record the run's settings as the final one does, without its metrics.
    var epochCheckpoints: EpochCheckpoints?
    if let interval = settings.saveInterval, let save = settings.save {
        epochCheckpoints = EpochCheckpoints(
            every: interval, model: model, optimizer: optimizer, arguments: commandLine,
            record: trainingRecord(
                settings, optimization: optimization, normalization: normalization, validationSeed: settings.seed &+ 1,
                backend: backend, ranks: distributed?.group.size, last: nil),
            save: save, history: resumed?.history ?? [])
    }
    let trainer = Trainer(
        model: model, loss: isRegression ? .meanSquaredError : .crossEntropy, optimizer: optimizer)
    trainer.augmentation = augmentation
    trainer.schedule = optimization.schedule
    if let distributed {
        trainer.replicas = distributed.group
        trainer.checksReplicasEveryStep = arguments.flag("check-replicas")
    }
    Interruption.install()
    trainer.shouldStop = { Interruption.receivedSignal != nil }
    let started = Date()
    let history = try trainer.fit(
        trainInputs, validation: validationInputs, epochs: settings.epochs, batchSize: settings.batchSize, seed: settings.seed,
        observer: isLeader ? ObserverList([EpochPrinter()] + (outputs?.observers ?? []) + [epochCheckpoints].compactMap { $0 }) : nil,
        from: resumed?.point)
    let record = trainingRecord(
        settings, optimization: optimization, normalization: normalization, validationSeed: settings.seed &+ 1,
        backend: backend, ranks: distributed?.group.size, last: history.last)

    if let point = trainer.stoppedAt {
        // In a distributed run the ranks agree to stop when any of them is signalled, so this
        // rank may have received none.
        let signal = Interruption.receivedSignal ?? SIGINT
        let cause = Interruption.receivedSignal.map { Interruption.name(of: $0) } ?? "a signal to another rank"
        guard isLeader else {
            try distributed?.finish()
            return Interruption.exitCode(for: signal)
        }
        let url = try saveInterruptedRun(
            model: model, optimizer: optimizer, point: point, history: (resumed?.history ?? []) + history,
            arguments: commandLine, record: record, save: settings.save)
        let steps = (data.train.count + settings.batchSize - 1) / settings.batchSize
        print("")
        print("interrupted by \(cause) after step \(point.step) of \(steps) in epoch \(point.epoch); saved the run to \(url.path)")
        if let distributed {
            print("resume with: mpiexec -n \(distributed.group.size) resnet train --resume \(url.path) --distributed (any rank count whose share of the batch is whole works, as does one process without --distributed)")
        } else {
            print("resume with: resnet train --resume \(url.path)")
        }
        try distributed?.finish()
        return Interruption.exitCode(for: signal)
    }
    if let url = settings.save, isLeader {
        try saveTrainedModel(model, to: url, overwrite: settings.overwrite, record: record)
    }
    try distributed?.finish()

    if let distributed, distributed.group.size > 1 {
        print(
            "replicas: the weights of all \(distributed.group.size) ranks were identical at each of "
                + counted(trainer.replicaChecks, "check"))
    }
    let elapsed = Date().timeIntervalSince(started)
    let trainingSeconds = history.reduce(0) { $0 + $1.trainingSeconds }
    let images = history.reduce(0) { $0 + $1.samples }
    print(String(
        format: "done: %d %@ in %.1fs, training %.1f img/s, peak resident memory %.0f MB", history.count,
        history.count == 1 ? "epoch" : "epochs", elapsed,
        Double(images) / trainingSeconds, Double(peakResidentBytes()) / 1e6))
    if let failure = outputs?.failure {
        exitWithError(failure, code: ExitCode.failure)
    }
    return 0
}

/// Normalizes both data sets by the training set's per-channel statistics when `enabled`, and
/// prints the statistics or that normalization is off.
func normalize(_ train: InMemoryDataset, _ validation: InMemoryDataset?, enabled: Bool) throws
    -> (InMemoryDataset, InMemoryDataset?, Normalization?)
{
    guard enabled else {
        printConfiguration([("normalization", "off")])
        return (train, validation, nil)
    }
    let normalization = try train.channelNormalization()
    printConfiguration([("normalization", describe(normalization))])
    return (try train.normalized(by: normalization), try validation?.normalized(by: normalization), normalization)
}
