import Foundation
import ResNetKit

/// The options of `resnet train` that write the training history to files.
let outputOptions = [
    Option(
        "log", placeholder: "FILE",
        help: "write one JSON object per line per epoch (loss, accuracy, val_loss, val_accuracy, learning rate, "
            + "time, img/s) to FILE, replacing it"),
    Option("log-every", placeholder: "N", help: "also log a line every N steps (needs --log)"),
    Option(
        "plot", placeholder: "FILE.svg",
        help: "draw loss and accuracy per epoch as an SVG image at FILE.svg, rewritten after each epoch"),
]

/// The log and plot paths that the command line requests.
struct OutputSettings {
    var logPath: String?
    var logInterval: Int?
    var plotPath: String?

    init(_ arguments: ParsedArguments) throws(UsageError) {
        logPath = arguments.contains("log") ? try arguments.string("log") : nil
        plotPath = arguments.contains("plot") ? try arguments.string("plot") : nil
        if arguments.contains("log-every") {
            guard logPath != nil else {
                throw UsageError("--log-every needs --log FILE to write the lines to")
            }
            logInterval = try arguments.integer("log-every", in: 1...Int.max)
        }
        if let logPath, let plotPath,
            URL(fileURLWithPath: logPath).standardizedFileURL == URL(fileURLWithPath: plotPath).standardizedFileURL
        {
            throw UsageError("--log and --plot are both '\(logPath)'; give them different files")
        }
    }

    /// The outputs as configuration rows, none when neither is requested.
    var configurationRows: [(String, String)] {
        var rows: [(String, String)] = []
        if let logPath {
            rows.append(("log", logPath + (logInterval.map { ", a line per epoch and every \($0) steps" } ?? ", a line per epoch")))
        }
        if let plotPath {
            rows.append(("plot", plotPath))
        }
        return rows
    }
}

/// The open log and plot of a run, passed to `Trainer.fit` as observers.
final class TrainingOutputs {
    let log: TrainingLog?
    let plot: TrainingPlotWriter?

    /// Opens the log and checks that the plot can be written, so that a bad path fails before
    /// training with exit status 2. Write errors during training print a warning at once.
    ///
    /// A resumed run adds to the log and draws the plot from `history`, the epochs before it.
    init(_ settings: OutputSettings, optimizer: Optimizer, resumedHistory history: [EpochMetrics]? = nil) throws(UsageError) {
        do {
            log = try settings.logPath.map {
                try TrainingLog(path: $0, stepInterval: settings.logInterval, optimizer: optimizer, appending: history != nil)
            }
        } catch {
            throw Self.openError(error, option: "log", path: settings.logPath)
        }
        do {
            plot = try settings.plotPath.map { try TrainingPlotWriter(path: $0, history: history ?? []) }
        } catch {
            throw Self.openError(error, option: "plot", path: settings.plotPath)
        }
        log?.onWriteError = { Self.warn("\($0); the log stops here, training goes on") }
        plot?.onWriteError = { Self.warn("\($0); training goes on, and the plot is retried after each epoch") }
    }

    var observers: [TrainingObserver] {
        [log as TrainingObserver?, plot].compactMap { $0 }
    }

    /// Returns the error of an output that is missing lines or out of date after training.
    var failure: String? {
        if let error = log?.writeError {
            return "the log is incomplete: \(error)"
        }
        if let error = plot?.writeError {
            return "the plot is out of date: \(error)"
        }
        return nil
    }

    private static func openError(_ error: Error, option: String, path: String?) -> UsageError {
        let reason = (error as? OutputFileError)?.reason ?? "\(error)"
        return UsageError(
            "cannot write --\(option) '\(path ?? "")': \(reason); give a file in an existing, writable directory")
    }

    private static func warn(_ message: String) {
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }
}
