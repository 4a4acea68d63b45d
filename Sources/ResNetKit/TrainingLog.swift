import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Passes each event of `Trainer.fit` to several observers, in order.
public final class ObserverList: TrainingObserver {
    public let observers: [TrainingObserver]

    public init(_ observers: [TrainingObserver]) {
        self.observers = observers
    }

    public func epochWillBegin(epoch: Int, epochs: Int, steps: Int) {
        for observer in observers {
            observer.epochWillBegin(epoch: epoch, epochs: epochs, steps: steps)
        }
    }

    public func stepDidEnd(step: Int, steps: Int, loss: Double, accuracy: Double?) {
        for observer in observers {
            observer.stepDidEnd(step: step, steps: steps, loss: loss, accuracy: accuracy)
        }
    }

    public func epochDidEnd(_ metrics: EpochMetrics, epochs: Int) {
        for observer in observers {
            observer.epochDidEnd(metrics, epochs: epochs)
        }
    }
}

/// Writes the training history as JSON Lines: one object per epoch, and one every
/// `stepInterval` steps when that is set.
///
/// Epoch lines have the keys `kind` ("epoch"), `epoch`, `step`, `loss`, `accuracy`,
/// `val_loss`, `val_accuracy`, `learning_rate`, `time` (the epoch's wall time in seconds,
/// validation included) and `images_per_second` (training steps only). Step lines have `kind`
/// ("step"), `epoch`, `step`, `loss` and `accuracy` (the epoch's running means so far, as the
/// progress bar shows them), `learning_rate` (the rate of that step) and `time` (seconds since
/// the epoch began). `step` is the global step count over the run. A missing value, such as
/// `val_loss` without validation data, and a non-finite one are `null`.
///
/// The file is created or truncated when the log is created, so an unwritable path fails before
/// training. Each line goes to the file in one write call as soon as it is complete, so a run
/// that stops early leaves whole lines for the epochs and steps it finished.
public final class TrainingLog: TrainingObserver {
    public let path: String
    public let stepInterval: Int?
    /// The first error writing the file, after which later lines are dropped.
    public private(set) var writeError: Error?
    /// Called once, with the first write error, while training goes on.
    public var onWriteError: ((Error) -> Void)?

    private let descriptor: Int32
    private weak var optimizer: Optimizer?
    private var epoch = 0
    private var stepsPerEpoch = 0
    private var epochStart = DispatchTime.now()

    /// Creates or truncates the file at `path`, or adds to its end when `appending`, as a
    /// resumed run does. `optimizer` supplies the learning rate of step lines.
    public init(path: String, stepInterval: Int? = nil, optimizer: Optimizer? = nil, appending: Bool = false) throws {
        precondition(stepInterval.map { $0 > 0 } ?? true, "stepInterval must be positive")
        let mode = appending ? O_APPEND : O_TRUNC
        let descriptor = open(path, O_WRONLY | O_CREAT | mode | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw OutputFileError(path: path, reason: String(cString: strerror(errno)))
        }
        self.path = path
        self.stepInterval = stepInterval
        self.optimizer = optimizer
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    public func epochWillBegin(epoch: Int, epochs: Int, steps: Int) {
        self.epoch = epoch
        stepsPerEpoch = steps
        epochStart = DispatchTime.now()
    }

    public func stepDidEnd(step: Int, steps: Int, loss: Double, accuracy: Double?) {
        guard let stepInterval else { return }
        let globalStep = (epoch - 1) * stepsPerEpoch + step
        guard globalStep % stepInterval == 0 else { return }
        write([
            ("kind", .text("step")),
            ("epoch", .integer(epoch)),
            ("step", .integer(globalStep)),
            ("loss", .number(loss)),
            ("accuracy", .number(accuracy)),
            ("learning_rate", .number(optimizer?.learningRate)),
            ("time", .number(seconds(since: epochStart))),
        ])
    }

    public func epochDidEnd(_ metrics: EpochMetrics, epochs: Int) {
        write([
            ("kind", .text("epoch")),
            ("epoch", .integer(metrics.epoch)),
            ("step", .integer(metrics.epoch * stepsPerEpoch)),
            ("loss", .number(metrics.loss)),
            ("accuracy", .number(metrics.accuracy)),
            ("val_loss", .number(metrics.validationLoss)),
            ("val_accuracy", .number(metrics.validationAccuracy)),
            ("learning_rate", .number(metrics.learningRate)),
            ("time", .number(metrics.seconds)),
            ("images_per_second", .number(metrics.imagesPerSecond)),
        ])
    }

    enum Value {
        case text(String)
        case integer(Int)
        case number(Double?)

        var json: String {
            switch self {
            case .text(let text):
                // Keys and kinds are fixed ASCII words, so quoting needs no escapes.
                return "\"\(text)\""
            case .integer(let value):
                return String(value)
            case .number(let value):
                guard let value, value.isFinite else { return "null" }
                // Swift prints the shortest form that reads back as the same Double, such as
                // 0.001, 2.302585092994046 or 1e-05, each a valid JSON number.
                return "\(value)"
            }
        }
    }

    /// Returns one JSON object, keys in the given order, ending with a newline.
    static func line(_ fields: [(String, Value)]) -> String {
        "{" + fields.map { "\"\($0.0)\":\($0.1.json)" }.joined(separator: ",") + "}\n"
    }

    private func write(_ fields: [(String, Value)]) {
        guard writeError == nil else { return }
        do {
            try OutputFile.writeAll(Array(Self.line(fields).utf8), to: descriptor, path: path)
        } catch {
            writeError = error
            onWriteError?(error)
        }
    }
}

/// A training output, such as a log or a plot, that cannot be created or written.
public struct OutputFileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "cannot write \(path): \(reason)" }
}

/// File operations for training outputs that must never be seen half written.
enum OutputFile {
    /// Throws unless a file can be created in `path`'s directory and `path`, after following
    /// symbolic links, is a regular file or does not exist yet.
    ///
    /// Replacing a directory, a device such as `/dev/null` or a FIFO by renaming over it would
    /// remove it, so those are rejected.
    static func checkWritable(_ path: String) throws {
        let target = resolved(path)
        try checkReplaceable(target, path: path)
        let temporary = temporaryPath(for: target)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw OutputFileError(path: path, reason: String(cString: strerror(errno)))
        }
        close(descriptor)
        unlink(temporary)
    }

    /// Writes `data` to a temporary file beside `path`, then renames it to `path`, so that
    /// readers see either the old file or the whole new one.
    static func writeAtomically(_ data: Data, to path: String) throws {
        let target = resolved(path)
        try checkReplaceable(target, path: path)
        let temporary = temporaryPath(for: target)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw OutputFileError(path: path, reason: String(cString: strerror(errno)))
        }
        do {
            try writeAll(Array(data), to: descriptor, path: path)
        } catch {
            close(descriptor)
            unlink(temporary)
            throw error
        }
        guard close(descriptor) == 0, rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw OutputFileError(path: path, reason: reason)
        }
    }

    /// Writes all of `bytes` to the open file `descriptor`, retrying short and interrupted
    /// writes, and throws with the system's reason, such as "No space left on device".
    static func writeAll(_ bytes: [UInt8], to descriptor: Int32, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw OutputFileError(path: path, reason: String(cString: strerror(errno)))
            }
            offset += written
        }
    }

    /// Throws when `target` exists and is not a regular file, naming the `path` as given.
    private static func checkReplaceable(_ target: String, path: String) throws {
        var status = stat()
        guard stat(target, &status) == 0 else { return }
        let type = status.st_mode & S_IFMT
        if type != S_IFREG {
            throw OutputFileError(path: path, reason: type == S_IFDIR ? "it is a directory" : "it is not a regular file")
        }
    }

    /// Returns `path` with symbolic links followed, so that a link to the output keeps pointing at
    /// the new file.
    static func resolved(_ path: String) -> String {
        URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }

    /// Returns a hidden name in `path`'s directory that contains the process id, such as
    /// `runs/.plot.svg.tmp-4242`.
    static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let name = ".\(url.lastPathComponent).tmp-\(getpid())"
        return url.deletingLastPathComponent().appendingPathComponent(name).path
    }
}
