#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ResNetKit

let saveOption = Option(
    "save", placeholder: "FILE",
    help: "after the last epoch, write the model's parameters to this safetensors checkpoint, for resnet evaluate")
let overwriteOption = Option(flag: "overwrite", help: "let --save replace an existing file")

/// Checks before training that `--save` can be written: its directory exists and accepts a
/// new file, and the file itself does not exist unless `--overwrite` is given. Returns the
/// checkpoint's absolute URL, or nil without `--save`.
func checkSaveTarget(_ arguments: ParsedArguments) throws(UsageError) -> URL? {
    let overwrite = arguments.flag("overwrite")
    guard arguments.contains("save") else {
        if overwrite {
            throw UsageError("--overwrite applies only to --save FILE; add --save or remove --overwrite")
        }
        return nil
    }
    let text = try arguments.string("save")
    let url = URL(fileURLWithPath: text).standardizedFileURL
    let directory = url.deletingLastPathComponent().path

    var isDirectory: ObjCBool = false
    if text.hasSuffix("/") || (FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue) {
        throw UsageError("--save '\(text)' names a directory; give a file name, such as \(url.path)/model.safetensors")
    }
    if FileManager.default.fileExists(atPath: url.path), !overwrite {
        throw UsageError(
            "--save '\(text)': the file exists; choose another file name, or add --overwrite to replace it")
    }
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw UsageError("--save '\(text)': directory \(directory) does not exist; create it or choose another path")
    }

    // Creating and removing a file is the only reliable test that the directory takes new
    // files, because it covers permissions and read-only mounts alike. A full disk still shows
    // up only when the checkpoint is written.
    let probe = "\(directory)/.resnet-save-check.\(getpid())"
    let descriptor = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
        let reason = String(cString: strerror(errno))
        throw UsageError("--save '\(text)': cannot create files in \(directory) (\(reason)); choose a writable directory")
    }
    close(descriptor)
    unlink(probe)
    return url
}

/// Metadata keys of the training run that `train --save` records and `evaluate` reads.
enum TrainingRecord {
    static let data = "training.data"
    /// `--npz-keys` and `--layout`, when the run gave them.
    static let npzKeys = "training.npz_keys"
    static let layout = "training.layout"
    static let samples = "training.samples"
    static let validationSamples = "training.validation_samples"
    /// The seed of the validation data, which differs from the run's seed.
    static let validationSeed = "training.validation_seed"
    static let seed = "training.seed"
    static let epochs = "training.epochs"
    static let batchSize = "training.batch_size"
    static let optimizer = "training.optimizer"
    static let learningRate = "training.learning_rate"
    static let backend = "training.backend"
    /// The number of processes of a distributed run; absent for one process.
    static let ranks = "training.ranks"
    static let loss = "training.loss"
    static let accuracy = "training.accuracy"
    static let validationLoss = "training.val_loss"
    static let validationAccuracy = "training.val_accuracy"
    /// The per-channel statistics the inputs were normalized by, as JSON; absent when the
    /// inputs were used as they are.
    static let normalization = "data.normalization"
}

/// Returns the input normalization a checkpoint records, or nil when training used none.
func recordedNormalization(_ checkpoint: Checkpoint) throws(UsageError) -> Normalization? {
    guard let text = checkpoint.entries[TrainingRecord.normalization] else { return nil }
    guard let normalization = try? JSONDecoder().decode(Normalization.self, from: Data(text.utf8)),
        normalization.mean.count == checkpoint.inputShape[0]
    else {
        throw UsageError(
            "--checkpoint \(checkpoint.path): the metadata entry \(TrainingRecord.normalization) is not valid "
                + "per-channel statistics for \(checkpoint.inputShape[0]) channels; the file is damaged, so train the model again")
    }
    return normalization
}

/// Returns the metadata that describes a finished training run: its settings and the last
/// epoch's metrics.
func trainingRecord(
    _ settings: TrainSettings, optimization: OptimizationSettings, normalization: Normalization?,
    validationSeed: UInt64, backend: Backend, ranks: Int? = nil, last: EpochMetrics?
) -> [String: String] {
    var record = [
        TrainingRecord.data: settings.data.description,
        TrainingRecord.samples: String(settings.samples),
        TrainingRecord.validationSamples: String(settings.validationSamples),
        TrainingRecord.validationSeed: String(validationSeed),
        TrainingRecord.seed: String(settings.seed),
        TrainingRecord.epochs: String(settings.epochs),
        TrainingRecord.batchSize: String(settings.batchSize),
        TrainingRecord.optimizer: optimization.optimizerDescription,
        TrainingRecord.learningRate: String(optimization.learningRate),
        TrainingRecord.backend: backend.name,
    ]
    record[TrainingRecord.npzKeys] = settings.npzKeys
    record[TrainingRecord.layout] = settings.layout
    record[TrainingRecord.ranks] = ranks.map(String.init)
    if let normalization, let json = try? JSONEncoder().encode(normalization) {
        record[TrainingRecord.normalization] = String(decoding: json, as: UTF8.self)
    }
    if let last {
        record[TrainingRecord.loss] = String(last.loss)
        record[TrainingRecord.accuracy] = last.accuracy.map { String($0) }
        record[TrainingRecord.validationLoss] = last.validationLoss.map { String($0) }
        record[TrainingRecord.validationAccuracy] = last.validationAccuracy.map { String($0) }
    }
    return record
}

/// Saves the trained model to `url` and prints where.
///
/// The target was checked before training. If another process created it since and
/// `--overwrite` is not given, that file stays as it is. The model then goes to a new name
/// beside it, and the command fails with a message naming both files, so neither the other
/// file nor the training is lost.
func saveTrainedModel(_ model: Model, to url: URL, overwrite: Bool, record: [String: String]) throws {
    do {
        try Checkpoint.save(model, to: url, entries: record, replacingExisting: overwrite)
    } catch let error as FileWriteError where error.kind == .exists {
        let stamp = Int(Date().timeIntervalSince1970)
        let fallback = url.deletingPathExtension().path + "-\(stamp)." + (url.pathExtension.isEmpty ? "safetensors" : url.pathExtension)
        try Checkpoint.save(model, to: URL(fileURLWithPath: fallback), entries: record, replacingExisting: false)
        throw FileWriteError(
            path: url.path, kind: .exists,
            message: "another process created this file during training, so it was left unchanged; the model was "
                + "saved to \(fallback) instead")
    }
    let bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
    print("saved: \(url.path) (\(groupedThousands(bytes)) bytes)")
}
