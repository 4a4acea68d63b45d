import Foundation
import ResNetKit

/// The data that `--data` names: generated from the seed, or read from files.
enum DataSource: Equatable {
    /// The tutorial's random inputs and labels.
    case synthetic
    /// Learnable class-dependent gratings.
    case gratings
    /// The tutorial's regression data: y = x1 + x2 + noise from two uniform features.
    case regression
    /// MNIST-style IDX files in a directory.
    case idx(directory: String)
    /// A NumPy archive with Keras's `mnist.npz` layout.
    case npz(file: String)

    /// Parses `synthetic`, `gratings`, `idx:DIR` or `npz:FILE`.
    init(parsing text: String) throws(UsageError) {
        let expected = "expected synthetic, gratings, regression, idx:DIR (a directory of MNIST IDX files) or npz:FILE (a NumPy archive)"
        switch text {
        case "synthetic":
            self = .synthetic
            return
        case "gratings":
            self = .gratings
            return
        case "regression":
            self = .regression
            return
        default:
            break
        }
        for (prefix, kind) in [("idx:", "directory"), ("npz:", "file")] where text.hasPrefix(prefix) {
            // The shell expands `~` only at the start of a word, not after `npz:`.
            let path = (String(text.dropFirst(prefix.count)) as NSString).expandingTildeInPath
            guard !path.isEmpty else {
                throw UsageError("invalid value '\(text)' for --data: the \(kind) after '\(prefix)' is missing; \(expected)")
            }
            self = prefix == "idx:" ? .idx(directory: path) : .npz(file: path)
            return
        }

        var message = "invalid value '\(text)' for --data: \(expected)"
        if let suggestion = nearestName(to: text, among: ["synthetic", "gratings", "regression"]) {
            message += "; did you mean '\(suggestion)'?"
        }
        throw UsageError(message)
    }

    /// Whether the samples come from files, which then fix the input shape, class count and
    /// sample count.
    var isFile: Bool {
        switch self {
        case .synthetic, .gratings, .regression: return false
        case .idx, .npz: return true
        }
    }

    var description: String {
        switch self {
        case .synthetic: return "synthetic"
        case .gratings: return "gratings"
        case .regression: return "regression"
        case .idx(let directory): return "idx:\(directory)"
        case .npz(let file): return "npz:\(file)"
        }
    }
}

// MARK: - Options

/// `--data`, for commands that load data with `loadData(_:)`.
let dataOption = Option(
    "data", placeholder: "synthetic|gratings|regression|idx:DIR|npz:FILE",
    help: "synthetic: uniform random pixels and labels, as the tutorial; gratings: a learnable pattern per class; "
        + "regression: the tutorial's y = x1 + x2 + noise, for --model mlp; "
        + "idx:DIR: MNIST-style IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        + "t10k-labels-idx1-ubyte, each optionally .gz) in DIR; npz:FILE: a NumPy archive with x_train, y_train, x_test "
        + "and y_test, as Keras's mnist.npz. File data sets the input shape and the class count, and its test set "
        + "validates unless --validation-split is given",
    default: "synthetic")

/// The options besides `--data`, `--input`, `--samples`, `--validation-samples`, `--classes`
/// and `--seed` that `loadData(_:)` reads. A command that calls it must declare them all.
let dataSourceOptions: [Option] = [
    Option(
        "validation-split", placeholder: "F",
        help: "validate on the last fraction F of the training samples instead, 0 <= F < 1, as Keras's validation_split"),
    Option(
        "layout", choices: ImageLayout.allCases.map(\.rawValue),
        help: "position of the channel axis in rank-4 npz images; detected from the shape when absent"),
    Option(
        "npz-keys", placeholder: "XTRAIN,YTRAIN,XTEST,YTEST",
        help: "names of the training images and labels and the test images and labels in an npz file",
        default: "x_train,y_train,x_test,y_test"),
]

// MARK: - Loading

/// Training and validation samples with the input shape and class count they imply.
struct LoadedData {
    var train: InMemoryDataset
    var validation: InMemoryDataset?
    /// The image shape, or nil for flat features.
    var input: ImageShape?
    var classes: Int
    /// One line for the configuration: the source, the sample counts, the classes and, for
    /// files, the conversion.
    var description: String
}

/// Generates or reads the data that `--data` chooses, shaped by `--input`, `--samples`,
/// `--validation-samples`, `--validation-split`, `--classes`, `--seed`, `--layout` and
/// `--npz-keys`.
///
/// Generated data takes its shape, class count and sample counts from the options. File data
/// takes them from the files: `--input` must match the images when given, `--classes` may
/// only raise the class count, and `--samples` and `--validation-samples` keep the first N
/// samples of each set. Invalid files end in a `UsageError` that names the file.
func loadData(_ arguments: ParsedArguments) throws -> LoadedData {
    let source = try DataSource(parsing: arguments.string("data"))
    let split = try validationSplit(arguments)
    try checkNPZOptions(arguments, source: source)

    switch source {
    case .synthetic, .gratings:
        return try generateData(source, arguments: arguments, split: split)
    case .regression:
        return try generateRegressionData(arguments, split: split)
    case .idx(let directory):
        let classes = arguments.contains("classes") ? try arguments.integer("classes", in: 2...100_000) : nil
        let sets = try readFiles { try DatasetFiles.loadIDX(directory: directory, classes: classes) }
        return try selectSamples(sets, source: source, arguments: arguments, split: split)
    case .npz(let file):
        let classes = arguments.contains("classes") ? try arguments.integer("classes", in: 2...100_000) : nil
        let keys = try npzKeys(arguments.string("npz-keys"))
        let layout = arguments.contains("layout") ? try arguments.choice("layout", as: ImageLayout.self) : nil
        let sets = try readFiles { try DatasetFiles.loadNPZ(path: file, keys: keys, layout: layout, classes: classes) }
        return try selectSamples(sets, source: source, arguments: arguments, split: split)
    }
}

/// Rejects `--layout` and `--npz-keys` unless the data is an npz file.
func checkNPZOptions(_ arguments: ParsedArguments, source: DataSource) throws(UsageError) {
    if case .npz = source { return }
    for name in ["layout", "npz-keys"] where arguments.contains(name) {
        throw UsageError("--\(name) applies only to --data npz:FILE, not to --data \(source.description); remove it")
    }
}

/// Returns the `--validation-split` fraction, or nil when it is absent.
private func validationSplit(_ arguments: ParsedArguments) throws(UsageError) -> Double? {
    guard arguments.contains("validation-split") else { return nil }
    if arguments.contains("validation-samples") {
        throw UsageError(
            "--validation-split and --validation-samples both choose the validation samples; give only one of them")
    }
    return try arguments.double("validation-split", in: NumberBounds(lower: .inclusive(0), upper: .exclusive(1)))
}

/// Parses the value of `--npz-keys`.
func npzKeys(_ text: String) throws(UsageError) -> NPZKeys {
    let names = text.split(separator: ",", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespaces)
    }
    guard names.count == 4, names.allSatisfy({ !$0.isEmpty }) else {
        throw UsageError(
            "invalid value '\(text)' for --npz-keys: expected four comma-separated array names for the training images, "
                + "training labels, test images and test labels, such as x_train,y_train,x_test,y_test")
    }
    return NPZKeys(trainImages: names[0], trainLabels: names[1], testImages: names[2], testLabels: names[3])
}

/// Runs `read`, turning a data file error into a usage error, so that the tool exits with
/// status 2 and one line naming the file.
private func readFiles(_ read: () throws -> FileDatasets) throws -> FileDatasets {
    do {
        return try read()
    } catch let error as DataFileError {
        throw UsageError(error.description)
    }
}

private func generateData(_ source: DataSource, arguments: ParsedArguments, split: Double?) throws -> LoadedData {
    let input = try arguments.imageShape("input")
    let samples = try arguments.integer("samples", in: 1...10_000_000)
    let classes = try arguments.integer("classes", in: 2...100_000)
    let seed = UInt64(try arguments.integer("seed", in: 0...Int.max))
    let shape = sampleShape(input)

    func generate(_ count: Int, seed: UInt64) throws -> InMemoryDataset {
        source == .gratings
            ? try SyntheticData.gratings(samples: count, sampleShape: shape, classes: classes, seed: seed)
            : try SyntheticData.uniform(samples: count, sampleShape: shape, classes: classes, seed: seed)
    }

    var train = try generate(samples, seed: seed)
    let validation: InMemoryDataset?
    if let split {
        (train, validation) = try splitOff(split, of: train, origin: "the \(samples) generated samples")
    } else {
        let validationSamples = try arguments.integer("validation-samples", in: 0...10_000_000)
        validation = validationSamples == 0 ? nil : try generate(validationSamples, seed: seed &+ 1)
    }
    return LoadedData(
        train: train, validation: validation, input: input, classes: classes,
        description: "\(source.description), \(train.count) training and \(validation?.count ?? 0) validation samples, \(classes) classes")
}

private func generateRegressionData(_ arguments: ParsedArguments, split: Double?) throws -> LoadedData {
    let samples = try arguments.integer("samples", in: 1...10_000_000)
    let seed = UInt64(try arguments.integer("seed", in: 0...Int.max))

    var train = try SyntheticData.regression(samples: samples, seed: seed)
    let validation: InMemoryDataset?
    if let split {
        (train, validation) = try splitOff(split, of: train, origin: "the \(samples) generated samples")
    } else {
        let validationSamples = try arguments.integer("validation-samples", in: 0...10_000_000)
        validation = validationSamples == 0 ? nil : try SyntheticData.regression(samples: validationSamples, seed: seed &+ 1)
    }
    return LoadedData(
        train: train, validation: validation, input: nil, classes: 0,
        description: "regression, y = x1 + x2 + noise of standard deviation 0.1, \(train.count) training and "
            + "\(validation?.count ?? 0) validation samples")
}

/// Applies `--input`, `--samples`, `--validation-samples` and `--validation-split` to the
/// data sets read from files.
private func selectSamples(
    _ sets: FileDatasets, source: DataSource, arguments: ParsedArguments, split: Double?
) throws -> LoadedData {
    let shape = sets.train.sampleShape
    let input = ImageShape(height: shape[1], width: shape[2], channels: shape[0])
    if arguments.contains("input") {
        let requested = try arguments.imageShape("input")
        guard requested == input else {
            throw UsageError(
                "--input \(requested) conflicts with the \(input) images of --data \(source.description); "
                    + "leave --input out for file data, whose images set the input shape")
        }
    }
    guard sets.classCount >= 2 else {
        throw UsageError(
            "the labels of --data \(source.description) use only class 0, and training needs at least 2 classes; "
                + "check the label arrays or pass --classes N")
    }

    var train = sets.train
    if arguments.contains("samples") {
        let samples = try arguments.integer("samples", in: 1...10_000_000)
        guard samples <= train.count else {
            throw UsageError(
                "--samples \(samples) exceeds the \(train.count) training samples of --data \(source.description); "
                    + "give at most \(train.count), or leave --samples out to use them all")
        }
        train = try train.samples(0..<samples)
    }

    var validation: InMemoryDataset?
    let validationOrigin: String
    if let split {
        (train, validation) = try splitOff(split, of: train, origin: "the \(train.count) training samples")
        validationOrigin = "the last \(split) of the training samples"
    } else {
        validation = sets.test
        validationOrigin = "the test set"
        if arguments.contains("validation-samples") {
            let count = try arguments.integer("validation-samples", in: 0...10_000_000)
            guard count <= sets.test.count else {
                throw UsageError(
                    "--validation-samples \(count) exceeds the \(sets.test.count) test samples of --data \(source.description); "
                        + "give at most \(sets.test.count), or leave it out to use them all")
            }
            validation = count == 0 ? nil : try sets.test.samples(0..<count)
        }
    }

    let scaling = sets.isScaled ? "scaled to [0, 1]" : "unscaled"
    let layout = sets.layout.map { ", \($0.rawValue) in the file" } ?? ""
    let validationText = validation.map { "\($0.count) validation samples (\(validationOrigin))" } ?? "no validation samples"
    return LoadedData(
        train: train, validation: validation, input: input, classes: sets.classCount,
        description: "\(source.description), \(train.count) training and \(validationText), \(sets.classCount) classes, "
            + "\(sets.imageType) images \(scaling)\(layout)")
}

/// Splits the last `fraction` of `train` off as validation samples, as Keras's
/// `validation_split` does, and rejects a split that leaves either part empty.
private func splitOff(_ fraction: Double, of train: InMemoryDataset, origin: String) throws
    -> (InMemoryDataset, InMemoryDataset?)
{
    guard fraction > 0 else { return (train, nil) }
    let parts = try train.splitForValidation(fraction: fraction)
    guard parts.train.count > 0, parts.validation.count > 0 else {
        throw UsageError(
            "--validation-split \(fraction) of \(origin) leaves \(parts.train.count) training and \(parts.validation.count) "
                + "validation samples; choose a fraction that leaves at least one of each")
    }
    return (parts.train, parts.validation)
}
