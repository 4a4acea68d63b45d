import Foundation
import ResNetKit

let resumeOption = Option(
    "resume", placeholder: "FILE",
    help: "continue the run saved to FILE by an interrupted 'resnet train' or by --save-every, with the options recorded in it; "
        + "only --threads, --overwrite and the options of distributed training may be given beside it, so a run can "
        + "continue on another number of ranks or replace the --save file it records")

/// The options that `--resume` takes from the command line instead of the checkpoint: how the
/// run is spread over threads and processes, which changes at most the rounding of its sums.
private let placementOptions = ["threads", "distributed", "collective-timeout", "check-replicas"]

/// Metadata entries of a checkpoint written when training was interrupted.
enum ResumeKey {
    /// The options of the run after `train`, as a JSON array of strings.
    static let arguments = "resume.arguments"
    /// The place to continue from, as JSON of `ResumePoint`.
    static let point = "resume.point"
    /// The epochs finished before the interruption, as JSON of `[EpochMetrics]`.
    static let history = "resume.history"
    static let optimizerSteps = "resume.optimizer_steps"
}

/// A run to continue, read from a checkpoint that an interrupted `resnet train` wrote.
struct ResumedRun {
    let checkpoint: Checkpoint
    /// The run's options as first given, after `train`.
    let recordedArguments: [String]
    /// The options to continue with: the recorded ones, with `--threads` replaced when options.
    let arguments: ParsedArguments
    let point: ResumePoint
    let history: [EpochMetrics]
    let optimizerSteps: Int

    init(_ options: ParsedArguments) throws(UsageError) {
        let path = try options.string("resume")
        if let other = trainCommand.options.map(\.name).first(where: {
            $0 != "resume" && $0 != "overwrite" && !placementOptions.contains($0) && options.contains($0)
        }) {
            throw UsageError(
                "--\(other) cannot be given with --resume, which continues the run with the options recorded in "
                    + "\(path); remove --\(other)")
        }
        do {
            checkpoint = try Checkpoint(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw UsageError("--resume \(error)")
        }

        let entries = checkpoint.entries
        guard let argumentsText = entries[ResumeKey.arguments], let pointText = entries[ResumeKey.point],
            let historyText = entries[ResumeKey.history], let stepsText = entries[ResumeKey.optimizerSteps]
        else {
            throw UsageError(
                "--resume \(path) contains a model but no interrupted run (it was written by --save at the end of "
                    + "training); evaluate it with 'resnet evaluate --checkpoint \(path)', or train again")
        }
        let decoder = JSONDecoder()
        guard let recorded = try? decoder.decode([String].self, from: Data(argumentsText.utf8)),
            let point = try? decoder.decode(ResumePoint.self, from: Data(pointText.utf8)),
            let history = try? decoder.decode([EpochMetrics].self, from: Data(historyText.utf8)),
            let optimizerSteps = Int(stepsText), optimizerSteps >= 0
        else {
            throw UsageError("--resume \(path): the entries of the interrupted run are malformed; the file is damaged")
        }
        self.recordedArguments = recorded
        self.point = point
        self.history = history
        self.optimizerSteps = optimizerSteps

        var continued = recorded
        for name in placementOptions {
            let option = trainCommand.options.first { $0.name == name }!
            if option.isFlag {
                continued.removeAll { $0 == "--\(name)" }
                if options.flag(name) {
                    continued.append("--\(name)")
                }
            } else if name != "threads" || options.contains(name) {
                // The recorded thread count stays unless replaced, since it can change the
                // rounding of sums; the distributed options come from this command line alone.
                if let index = continued.firstIndex(of: "--\(name)"), index + 1 < continued.count {
                    continued.removeSubrange(index...index + 1)
                }
                continued.removeAll { $0.hasPrefix("--\(name)=") }
                if options.contains(name) {
                    continued += ["--\(name)", try options.string(name)]
                }
            }
        }
        if options.flag("overwrite"), !continued.contains("--overwrite") {
            continued.append("--overwrite")
        }
        do {
            arguments = try ParsedArguments(parsing: continued, for: trainCommand, program: options.program)
        } catch {
            throw UsageError("--resume \(path) records options that no longer parse: \(error)")
        }
    }

    /// Puts the saved weights, batch-norm statistics and optimizer state into `model` and
    /// `optimizer`.
    func restore(into model: Model, optimizer: Optimizer) throws {
        do {
            try checkpoint.restore(into: model)
        } catch let error as CheckpointError {
            throw UsageError("--resume \(error)")
        }
        var state: [(name: String, tensor: Tensor)] = []
        for name in checkpoint.stateTensorNames {
            let (shape, values) = try checkpoint.stateTensor(named: name)
            let tensor = try model.backend.makeTensor(values, shape: shape)
            state.append((String(name.dropFirst(Checkpoint.stateTensorPrefix.count)), tensor))
        }
        try optimizer.restoreState(state, stepCount: optimizerSteps)
    }
}

/// Writes the state of an interrupted run next to `--save`'s file, or in the working directory,
/// under a new name, and returns its path. An existing file is never replaced.
func saveInterruptedRun(
    model: Model, optimizer: Optimizer, point: ResumePoint, history: [EpochMetrics], arguments: [String],
    record: [String: String], save: URL?
) throws -> URL {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.dateFormat = "yyyyMMdd-HHmmss"
    return try saveResumableRun(
        model: model, optimizer: optimizer, point: point, history: history, arguments: arguments, record: record,
        save: save, label: "interrupted-" + formatter.string(from: Date()))
}

/// Writes a run that `--resume` can continue to `<stem>-<label>.safetensors` beside `save`, or
/// `resnet-<label>.safetensors` in the working directory, and returns its path. When that file
/// exists, a number is added to the name; an existing file is never replaced.
func saveResumableRun(
    model: Model, optimizer: Optimizer, point: ResumePoint, history: [EpochMetrics], arguments: [String],
    record: [String: String], save: URL?, label: String
) throws -> URL {
    let directory = save?.deletingLastPathComponent() ?? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    let stem = save?.deletingPathExtension().lastPathComponent ?? "resnet"

    let encoder = JSONEncoder()
    var entries = record
    entries[ResumeKey.arguments] = String(decoding: try encoder.encode(arguments), as: UTF8.self)
    entries[ResumeKey.point] = String(decoding: try encoder.encode(point), as: UTF8.self)
    entries[ResumeKey.history] = String(decoding: try encoder.encode(history), as: UTF8.self)
    entries[ResumeKey.optimizerSteps] = String(optimizer.stepCount)
    let state = try optimizer.stateTensors().map { name, tensor in
        (name: Checkpoint.stateTensorPrefix + name, shape: tensor.shape, values: try model.backend.values(of: tensor))
    }

    for attempt in 0..<100 {
        let suffix = attempt == 0 ? "" : "-\(attempt)"
        let url = directory.appendingPathComponent("\(stem)-\(label)\(suffix).safetensors")
        do {
            try Checkpoint.save(model, to: url, entries: entries, stateTensors: state, replacingExisting: false)
            return url
        } catch let error as FileWriteError where error.kind == .exists {
            continue
        }
    }
    throw UsageError("could not find a free file name for \(stem)-\(label).safetensors in \(directory.path)")
}

let saveEveryOption = Option(
    "save-every", placeholder: "N",
    help: "also save the run every N epochs, before the last, to FILE-epoch-E.safetensors beside --save FILE; "
        + "each can be continued with --resume, and none replaces an existing file")

/// An observer of `Trainer.fit` that saves the run every few epochs, so that a crash or a killed
/// process loses at most that much training.
final class EpochCheckpoints: TrainingObserver {
    private let interval: Int
    private let model: Model
    private let optimizer: Optimizer
    private let arguments: [String]
    private let record: [String: String]
    private let save: URL
    private var history: [EpochMetrics]

    /// `history` lists the epochs of the run before this process, when it was resumed.
    init(
        every interval: Int, model: Model, optimizer: Optimizer, arguments: [String], record: [String: String], save: URL,
        history: [EpochMetrics]
    ) {
        self.interval = interval
        self.model = model
        self.optimizer = optimizer
        self.arguments = arguments
        self.record = record
        self.save = save
        self.history = history
    }

    func epochWillBegin(epoch: Int, epochs: Int, steps: Int) {}

    func stepDidEnd(step: Int, steps: Int, loss: Double, accuracy: Double?) {}

    func epochDidEnd(_ metrics: EpochMetrics, epochs: Int) {
        history.append(metrics)
        guard metrics.epoch % interval == 0, metrics.epoch < epochs else { return }

        let width = String(epochs).count
        let label = "epoch-" + String(repeating: "0", count: width - String(metrics.epoch).count) + String(metrics.epoch)
        do {
            let url = try saveResumableRun(
                model: model, optimizer: optimizer, point: ResumePoint(epoch: metrics.epoch + 1, step: 0), history: history,
                arguments: arguments, record: record, save: save, label: label)
            print("saved epoch \(metrics.epoch) to \(url.path)")
        } catch {
            // A full disk should not end hours of training; the next epoch tries again.
            FileHandle.standardError.write(
                Data("warning: could not save epoch \(metrics.epoch): \(error); training goes on\n".utf8))
        }
    }
}
