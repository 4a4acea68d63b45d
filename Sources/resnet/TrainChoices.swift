import ResNetKit

/// A network `resnet train --model` can build: an image architecture or the residual MLP.
enum ModelChoice: RawRepresentable, CaseIterable, Equatable {
    case image(Architecture)
    case residualMLP

    static var allCases: [ModelChoice] { Architecture.allCases.map { .image($0) } + [.residualMLP] }

    init?(rawValue: String) {
        if rawValue == ResidualMLP.name {
            self = .residualMLP
        } else if let architecture = Architecture(rawValue: rawValue) {
            self = .image(architecture)
        } else {
            return nil
        }
    }

    var rawValue: String {
        switch self {
        case .image(let architecture): architecture.rawValue
        case .residualMLP: ResidualMLP.name
        }
    }

    var summary: String {
        switch self {
        case .image(let architecture): architecture.summary
        case .residualMLP: ResidualMLP().summary
        }
    }

    /// Whether the network takes flat feature vectors rather than CxHxW images.
    var takesFeatures: Bool { self == .residualMLP }
}

extension DataSource {
    /// Whether the samples are flat feature vectors rather than CxHxW images.
    var hasFeatures: Bool {
        switch self {
        case .synthetic, .gratings, .idx, .npz: false
        case .regression: true
        }
    }

    /// Whether the targets are real values, trained with mean squared error, rather than labels.
    var isRegression: Bool {
        switch self {
        case .synthetic, .gratings, .idx, .npz: false
        case .regression: true
        }
    }

    /// Whether `--normalize auto` normalizes the inputs. The generated data sets keep the
    /// values the tutorial and earlier runs used.
    var normalizesByDefault: Bool {
        switch self {
        case .synthetic, .gratings, .regression: false
        case .idx, .npz: true
        }
    }
}

/// The setting of `resnet train --normalize`.
enum NormalizeChoice: String, CaseIterable {
    /// Normalize file data, leave generated data as it is.
    case auto
    case on
    case off
}

/// Rejects a model and data set that do not fit together, or options that do not apply to the
/// data, naming both sides and the fix.
func checkCompatibility(model: ModelChoice, data: DataSource, arguments: ParsedArguments) throws(UsageError) {
    if model.takesFeatures != data.hasFeatures {
        let dataKind = data.hasFeatures ? "flat feature vectors" : "images"
        let modelKind = model.takesFeatures ? "flat feature vectors" : "images"
        let fix = model.takesFeatures
            ? "use an image model such as --model resnet20 with --data \(data.description), or --data regression with --model \(model.rawValue)"
            : "use --model \(ResidualMLP.name) with --data \(data.description), or --data synthetic or gratings with --model \(model.rawValue)"
        throw UsageError(
            "--model \(model.rawValue) takes \(modelKind), but --data \(data.description) has \(dataKind); \(fix)")
    }
    guard data.hasFeatures else { return }

    let features = SyntheticData.regressionFeatures
    for (option, reason) in [
        ("input", "sets an image shape"), ("augment", "crops and flips images"),
        ("augment-padding", "sets the crop of image augmentation"),
    ] where arguments.contains(option) {
        throw UsageError(
            "--\(option) \(reason), but --data \(data.description) has \(features) features per sample; remove --\(option)")
    }
    if data.isRegression, arguments.contains("classes") {
        throw UsageError(
            "--classes sets the number of classes, but --data \(data.description) has real-valued targets; remove --classes")
    }
}

/// Reads `--augment` and `--augment-padding`: nil when neither is given.
func parseAugmentation(_ arguments: ParsedArguments, input: ImageShape) throws(UsageError) -> Augmentation? {
    guard arguments.flag("augment") || arguments.contains("augment-padding") else { return nil }
    let side = min(input.height, input.width)
    guard arguments.contains("augment-padding") else {
        return Augmentation(padding: Augmentation.defaultPadding(height: input.height, width: input.width))
    }
    let padding = try arguments.integer("augment-padding", in: 0...Int.max)
    guard padding < side else {
        throw UsageError(
            "invalid value '\(padding)' for --augment-padding: expected an integer from 0 to \(side - 1), "
                + "less than the smaller side of --input \(input), so that every crop keeps some of the image")
    }
    return Augmentation(padding: padding)
}

/// Describes the augmentation for the configuration lines.
func describe(_ augmentation: Augmentation?, data: DataSource) -> String {
    guard let augmentation else { return "off" }
    var text = augmentation.padding > 0
        ? "random crop from zero padding of \(augmentation.padding) pixels, random horizontal flip"
        : "random horizontal flip"
    if data == .gratings {
        // A grating's class is its orientation, which a mirror image changes.
        text += " (a flip turns a grating at angle a into one at 180 - a, the orientation of another class)"
    }
    return text
}

/// Describes per-channel statistics, showing at most 8 channels.
func describe(_ normalization: Normalization) -> String {
    func list(_ values: [Double]) -> String {
        let listed = values.prefix(8).map { String(format: "%.4f", $0) }.joined(separator: " ")
        return values.count > 8 ? "\(listed) ... (\(values.count) channels)" : listed
    }
    return "mean \(list(normalization.mean)), std \(list(normalization.standardDeviation)), from the training set"
}
