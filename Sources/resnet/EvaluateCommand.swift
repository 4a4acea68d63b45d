import Foundation
import ResNetKit

let evaluateCommand = Command(
    name: "evaluate",
    summary: "run a saved checkpoint on labelled data and report loss, accuracy and a confusion matrix",
    description: """
        Rebuilds the model that a checkpoint written by 'resnet train --save' describes, runs it in \
        inference mode and prints the mean loss, the accuracy, the accuracy of each class and the \
        confusion matrix (rows: true class, columns: predicted class). Without --data, --samples \
        and --seed the data is the training run's validation set, made again from the settings the \
        checkpoint records; with the recorded batch size and the same backend, loss and accuracy \
        then equal the last epoch's val_loss and val_accuracy. A damaged or mismatched checkpoint \
        is rejected with exit status 2.
        """,
    options: [
        Option("checkpoint", placeholder: "FILE", help: "safetensors checkpoint written by resnet train --save"),
        Option("data", placeholder: "synthetic|gratings|idx:DIR|npz:FILE",
               help: "data to evaluate on, as in train; for idx and npz files, the test set (default: the data the checkpoint was trained on)"),
        Option("samples", placeholder: "N",
               help: "samples to evaluate; for file data, the first N of the test set (default: the run's validation sample count, or 250 if it had none, or the whole test set)"),
        Option("seed", placeholder: "N", help: "seed the data is made from (default: the run's validation seed)"),
        Option(
            "layout", choices: ImageLayout.allCases.map(\.rawValue),
            help: "position of the channel axis in rank-4 npz images (default: the training run's, or detected from the shape)"),
        Option(
            "npz-keys", placeholder: "XTRAIN,YTRAIN,XTEST,YTEST",
            help: "array names in an npz file, as in train; the test images and labels are read "
                + "(default: the training run's, or x_train,y_train,x_test,y_test)"),
        Option("batch-size", placeholder: "N", help: "samples per forward pass (default: the run's batch size)"),
        threadsOption,
        backendOption,
        noWinogradOption,
        Option(flag: "json", help: "print one JSON object with every result instead of text, for scripts"),
    ])

/// Confusion matrices of more classes than this are too wide for a terminal; `--json` has them.
private let maximumPrintedClasses = 30

/// The data settings of `evaluate`, from the command line or else from the checkpoint's training record.
struct EvaluationData {
    var source: DataSource
    /// The sample count; nil for the whole test set of file data.
    var samples: Int?
    var seed: UInt64
    /// The array names and layout of an npz file.
    var npzKeys = NPZKeys.keras
    var layout: ImageLayout?
}

func runEvaluate(_ arguments: ParsedArguments) throws -> Int32 {
    let checkpointText = try arguments.string("checkpoint")
    let checkpoint: Checkpoint
    do {
        checkpoint = try Checkpoint(contentsOf: URL(fileURLWithPath: checkpointText))
    } catch let error as SafeTensorsError {
        throw UsageError("--checkpoint \(error)")
    } catch let error as CheckpointError {
        throw UsageError("--checkpoint \(error)")
    }

    let data = try evaluationData(arguments, record: checkpoint.entries)
    let recordedBatch = checkpoint.entries[TrainingRecord.batchSize].flatMap { Int($0) }
    let batchSize = arguments.contains("batch-size") ? try arguments.integer("batch-size", in: 1...65_536) : recordedBatch ?? 32
    let threads = try parseThreads(arguments)
    let backendChoice = try arguments.choice("backend", as: BackendChoice.self)
    let backend = try makeBackend(backendChoice, threads: threads, winograd: !arguments.flag("no-winograd"))

    let model: Model
    do {
        model = try checkpoint.makeModel(backend: backend)
    } catch let error as CheckpointError {
        throw UsageError("--checkpoint \(error)")
    }
    var dataset = try makeEvaluationData(data, sampleShape: checkpoint.inputShape, classes: checkpoint.classCount)
    if let normalization = try recordedNormalization(checkpoint) {
        dataset = try dataset.normalized(by: normalization)
    }
    let report = try model.evaluateClassifier(dataset, batchSize: batchSize)

    let input = imageShape(of: checkpoint.inputShape)
    if arguments.flag("json") {
        try printJSON(report, checkpoint: checkpoint, input: input, data: data, batchSize: batchSize, backend: backend)
        return 0
    }

    var configuration = [
        ("checkpoint", checkpoint.path),
        ("model", "\(model.name), input \(input), \(checkpoint.classCount) classes, \(groupedThousands(model.parameterCount)) parameters"),
    ]
    if let trained = trainingSummary(checkpoint.entries) {
        configuration.append(("trained", trained))
    }
    configuration += [
        ("data", data.source.isFile
            ? "\(data.source.description), \(dataset.count) test samples"
            : "\(data.source.description), \(dataset.count) samples, seed \(data.seed)"),
        ("batch_size", "\(batchSize)"),
        ("backend", backend.summary),
    ]
    printConfiguration(configuration)
    print("loss=\(formatMetric(report.loss)) accuracy=\(formatMetric(report.accuracy)) samples=\(report.sampleCount)")
    print("")
    print(perClassTable(report).joined(separator: "\n"))
    print("")
    print(confusionTable(report).joined(separator: "\n"))
    return 0
}

/// Reads `--data`, `--samples`, `--seed`, `--npz-keys` and `--layout`, taking each missing one
/// from the training record.
private func evaluationData(_ arguments: ParsedArguments, record: [String: String]) throws(UsageError) -> EvaluationData {
    let source: DataSource
    if arguments.contains("data") {
        source = try DataSource(parsing: arguments.string("data"))
    } else if let recorded = record[TrainingRecord.data] {
        do {
            source = try DataSource(parsing: recorded)
        } catch {
            throw UsageError(
                "the checkpoint was trained on data '\(recorded)', which evaluate cannot read; pass --data "
                    + "synthetic|gratings|idx:DIR|npz:FILE")
        }
    } else {
        throw UsageError("the checkpoint records no training data; pass --data synthetic|gratings|idx:DIR|npz:FILE")
    }

    let recordedSamples = record[TrainingRecord.validationSamples].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
    let samples: Int?
    if arguments.contains("samples") {
        samples = try arguments.integer("samples", in: 1...10_000_000)
    } else {
        samples = source.isFile ? nil : recordedSamples ?? 250
    }
    let recordedSeed = record[TrainingRecord.validationSeed].flatMap { UInt64($0) }
    let seed = arguments.contains("seed") ? UInt64(try arguments.integer("seed", in: 0...Int.max)) : recordedSeed ?? 1
    var data = EvaluationData(source: source, samples: samples, seed: seed)

    // The npz file the run trained on is read with the keys and layout the run gave.
    try checkNPZOptions(arguments, source: source)
    let recordedFile = record[TrainingRecord.data] == source.description
    if arguments.contains("npz-keys") {
        data.npzKeys = try npzKeys(arguments.string("npz-keys"))
    } else if recordedFile, let recorded = record[TrainingRecord.npzKeys] {
        guard let keys = try? npzKeys(recorded) else {
            throw UsageError(
                "invalid npz keys '\(recorded)' in the checkpoint: expected four comma-separated array names; pass --npz-keys")
        }
        data.npzKeys = keys
    }
    if arguments.contains("layout") {
        data.layout = try arguments.choice("layout", as: ImageLayout.self)
    } else if recordedFile, let recorded = record[TrainingRecord.layout] {
        guard let layout = ImageLayout(rawValue: recorded) else {
            throw UsageError(
                "invalid layout '\(recorded)' in the checkpoint: expected channels-last or channels-first; pass --layout")
        }
        data.layout = layout
    }
    return data
}

/// Makes the labelled samples that `evaluate` runs on: generated ones, or the test set of
/// files.
func makeEvaluationData(_ data: EvaluationData, sampleShape: TensorShape, classes: Int) throws -> InMemoryDataset {
    let samples = data.samples ?? 250
    let bytes = Double(samples) * Double(sampleShape.elementCount) * 4
    let available = Double(ProcessInfo.processInfo.physicalMemory)
    guard bytes < available / 2 else {
        throw UsageError(
            "--samples \(samples) of \(imageShape(of: sampleShape)) need \(String(format: "%.1f", bytes / 1e9)) GB "
                + "as float32, more than half of this machine's memory; use fewer --samples")
    }

    let sets: FileDatasets
    do {
        switch data.source {
        case .synthetic:
            return try SyntheticData.uniform(samples: samples, sampleShape: sampleShape, classes: classes, seed: data.seed)
        case .gratings:
            return try SyntheticData.gratings(samples: samples, sampleShape: sampleShape, classes: classes, seed: data.seed)
        case .regression:
            throw UsageError(
                "--data regression has real-valued targets, but evaluate reports classification metrics of an image model; "
                    + "use --data synthetic, gratings, idx:DIR or npz:FILE")
        case .idx(let directory):
            sets = try DatasetFiles.loadIDX(directory: directory, classes: classes)
        case .npz(let file):
            sets = try DatasetFiles.loadNPZ(path: file, keys: data.npzKeys, layout: data.layout, classes: classes)
        }
    } catch let error as DataFileError {
        throw UsageError(error.description)
    }

    guard sets.test.sampleShape == sampleShape, sets.classCount == classes else {
        throw UsageError(
            "--data \(data.source.description) has \(sets.classCount) classes of \(imageShape(of: sets.test.sampleShape)) "
                + "images, but the checkpoint's model takes \(classes) classes of \(imageShape(of: sampleShape)); "
                + "evaluate it on the data it was trained for")
    }
    guard let count = data.samples else { return sets.test }
    guard count <= sets.test.count else {
        throw UsageError(
            "--samples \(count) exceeds the \(sets.test.count) test samples of --data \(data.source.description); "
                + "give at most \(sets.test.count), or leave --samples out to use them all")
    }
    return try sets.test.samples(0..<count)
}

/// Turns a canonical CxHxW sample shape into the command line's HxWxC.
private func imageShape(of shape: TensorShape) -> ImageShape {
    ImageShape(height: shape[1], width: shape[2], channels: shape[0])
}

/// Describes the training run the checkpoint records, such as
/// `gratings, 5 epochs, val_loss=0.3120 val_accuracy=0.9040`; nil when it records none.
private func trainingSummary(_ record: [String: String]) -> String? {
    guard let data = record[TrainingRecord.data], let epochs = record[TrainingRecord.epochs] else { return nil }
    var parts = ["\(data), \(epochs) \(epochs == "1" ? "epoch" : "epochs")"]
    let metrics = [("val_loss", TrainingRecord.validationLoss), ("val_accuracy", TrainingRecord.validationAccuracy)]
        .compactMap { label, key in record[key].flatMap(Double.init).map { "\(label)=\(formatMetric($0))" } }
    if !metrics.isEmpty {
        parts.append(metrics.joined(separator: " "))
    }
    return parts.joined(separator: ", ")
}

// MARK: - Tables

/// Formats one row per class: its samples, how many were predicted correctly, and the share.
private func perClassTable(_ report: ClassificationReport) -> [String] {
    let header = ["class", "samples", "correct", "accuracy"]
    let rows = report.confusion.indices.map { label in
        [
            String(label), String(report.classSampleCounts[label]), String(report.confusion[label][label]),
            report.classAccuracies[label].map(formatMetric) ?? "-",
        ]
    }
    return ["per-class accuracy:"] + alignRight([header] + rows)
}

/// Formats the confusion matrix with a header row of predicted classes and a first column of
/// true classes, or a note when there are too many classes to print.
private func confusionTable(_ report: ClassificationReport) -> [String] {
    let classes = report.confusion.count
    guard classes <= maximumPrintedClasses else {
        return ["confusion matrix: \(classes) classes are too many to print; use --json for the matrix"]
    }
    let header = ["true\\predicted"] + (0..<classes).map(String.init)
    let rows = report.confusion.enumerated().map { label, counts in [String(label)] + counts.map(String.init) }
    return ["confusion matrix (rows: true class, columns: predicted class):"] + alignRight([header] + rows)
}

/// Right-aligns every column to its widest cell, two spaces apart.
private func alignRight(_ rows: [[String]]) -> [String] {
    let columns = rows.map(\.count).max() ?? 0
    let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
    return rows.map { cells in
        cells.enumerated().map { column, cell in
            String(repeating: " ", count: widths[column] - cell.count) + cell
        }.joined(separator: "  ")
    }
}

// MARK: - JSON

private func printJSON(
    _ report: ClassificationReport, checkpoint: Checkpoint, input: ImageShape, data: EvaluationData, batchSize: Int,
    backend: Backend
) throws {
    let classes: [[String: Any]] = report.confusion.indices.map { label in
        [
            "class": label,
            "samples": report.classSampleCounts[label],
            "correct": report.confusion[label][label],
            "accuracy": report.classAccuracies[label].map(jsonNumber) ?? NSNull(),
        ]
    }
    let object: [String: Any] = [
        "checkpoint": checkpoint.path,
        "architecture": checkpoint.architecture,
        "input": input.description,
        "data": ["kind": data.source.description, "samples": report.sampleCount, "seed": Int(data.seed)] as [String: Any],
        "batch_size": batchSize,
        "backend": backend.name,
        "samples": report.sampleCount,
        "loss": jsonNumber(report.loss),
        "accuracy": jsonNumber(report.accuracy),
        "classes": classes,
        "confusion_matrix": report.confusion,
    ]
    let encoded = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: encoded, as: UTF8.self))
}

/// Returns the number, or null for NaN and infinity, which JSON cannot represent.
private func jsonNumber(_ value: Double) -> Any {
    value.isFinite ? value : NSNull()
}
