import Foundation

/// Training progress on standard output, in the form Keras and PyTorch users know.
///
/// On a terminal, each epoch shows one line that is redrawn in place:
///
///     Epoch 3/10  [=========>...................]  17/32  ETA 12s  loss=2.3041 accuracy=0.1012
///
/// and `endEpoch(line:)` replaces it with the epoch's summary. Anywhere else, such as a pipe or a
/// log file, the output has no carriage returns or escape codes: only the summary lines, and a
/// plain step line every `plainStepInterval` steps when that is set.
struct TrainingProgress {
    let isTerminal: Bool
    let plainStepInterval: Int?

    /// The shortest time between two redraws of the bar, so that fast steps do not flood the terminal.
    var minimumRedrawInterval: Duration = .milliseconds(100)

    /// The bar's width in characters when the terminal is wide enough.
    var barWidth = 30

    private let clock = ContinuousClock()
    private var epoch = 0
    private var epochs = 0
    private var steps = 0
    private var epochStart: ContinuousClock.Instant
    private var lastRedraw: ContinuousClock.Instant?
    private var isBarVisible = false

    /// Creates a display for a terminal or for plain output. `plainStepInterval` applies only to
    /// plain output, where nil prints no step lines.
    init(isTerminal: Bool = isatty(STDOUT_FILENO) == 1, plainStepInterval: Int? = nil) {
        precondition(plainStepInterval.map { $0 > 0 } ?? true, "plainStepInterval must be positive")
        self.isTerminal = isTerminal
        self.plainStepInterval = plainStepInterval
        self.epochStart = clock.now
    }

    /// Starts the clock for epoch `epoch` of `epochs`, both counted from 1, which has `steps`
    /// optimizer steps, and on a terminal draws the empty bar.
    mutating func beginEpoch(epoch: Int, of epochs: Int, steps: Int) {
        self.epoch = epoch
        self.epochs = epochs
        self.steps = steps
        epochStart = clock.now
        lastRedraw = nil
        if isTerminal {
            redraw(step: 0, metrics: nil)
        }
    }

    /// Reports that step `step` of the epoch, counted from 1, has finished.
    ///
    /// `loss` and `accuracy` are shown as given, so pass the epoch's running means (see
    /// `RunningMean`) to match Keras. On a terminal the bar is redrawn at most once per
    /// `minimumRedrawInterval`, except that the first and last steps are always drawn.
    mutating func step(_ step: Int, loss: Double, accuracy: Double) {
        let now = clock.now
        if isTerminal {
            let isDue = lastRedraw.map { now - $0 >= minimumRedrawInterval } ?? true
            guard isDue || step == 1 || step >= steps else { return }
            lastRedraw = now
            redraw(step: step, metrics: (remainingTime(afterStep: step, now: now), format(loss: loss, accuracy: accuracy)))
            return
        }

        // The last step gets no line, because the epoch's summary follows it.
        guard let plainStepInterval, step % plainStepInterval == 0, step < steps else { return }
        let remaining = remainingTime(afterStep: step, now: now).formattedCompactly
        write("\(epochLabel)  step \(counter(step))  ETA \(remaining)  \(format(loss: loss, accuracy: accuracy))\n")
    }

    /// Ends the epoch, replacing the bar on a terminal with `line`, which is the epoch's summary.
    mutating func endEpoch(line: String) {
        if isTerminal {
            write("\r\(line)\(clearToEndOfLine)\n")
        } else {
            write(line + "\n")
        }
        isBarVisible = false
    }

    /// Prints a line of its own, such as a checkpoint notice, in the middle of an epoch. On a
    /// terminal the bar moves below it at the next step.
    mutating func printLine(_ text: String) {
        guard isTerminal, isBarVisible else {
            write(text + "\n")
            return
        }
        write("\r\(text)\(clearToEndOfLine)\n")
        isBarVisible = false
        lastRedraw = nil
    }

    /// The time since the epoch began, for the summary line.
    var epochElapsed: Duration {
        clock.now - epochStart
    }

    // MARK: - Drawing

    /// Formats the running metrics; a NaN accuracy, which regression passes, is left out.
    private func format(loss: Double, accuracy: Double) -> String {
        accuracy.isNaN ? "loss=\(formatMetric(loss))" : "loss=\(formatMetric(loss)) accuracy=\(formatMetric(accuracy))"
    }

    private var epochLabel: String {
        "Epoch \(epoch)/\(epochs)"
    }

    /// `17/32`, with the step right-aligned so that the line does not shift as digits are added.
    private func counter(_ step: Int) -> String {
        let total = String(steps)
        let current = String(step)
        return String(repeating: " ", count: max(total.count - current.count, 0)) + current + "/" + total
    }

    /// Estimates the rest of the epoch from the mean step time so far.
    private func remainingTime(afterStep step: Int, now: ContinuousClock.Instant) -> Duration {
        guard step > 0 else { return .zero }
        let meanStepTime = (now - epochStart) / step
        return meanStepTime * max(steps - step, 0)
    }

    private mutating func redraw(step: Int, metrics: (remaining: Duration, text: String)?) {
        var tail = "  \(counter(step))"
        if let metrics {
            tail += "  ETA \(metrics.remaining.formattedCompactly)  \(metrics.text)"
        }
        let head = epochLabel + "  "

        // Leave the last column free, because some terminals wrap as soon as it is written, and
        // `\r` would then return to the start of the new row.
        let columns = terminalColumns().map { $0 - 1 } ?? Int.max
        let roomForBar = columns - head.count - tail.count - 2
        var line = head
        if roomForBar >= 10 {
            line += "[" + bar(step: step, width: min(barWidth, roomForBar)) + "]"
        } else {
            line = epochLabel
        }
        line += tail
        if line.count > columns {
            line = String(line.prefix(max(columns, 0)))
        }

        write("\r\(line)\(clearToEndOfLine)")
        isBarVisible = true
    }

    /// `=========>.........`: the finished part, an arrow at the current position, and dots.
    private func bar(step: Int, width: Int) -> String {
        guard steps > 0 else { return String(repeating: ".", count: width) }
        let filled = min(step, steps) * width / steps
        if filled >= width {
            return String(repeating: "=", count: width)
        }
        if filled == 0 {
            return String(repeating: ".", count: width)
        }
        return String(repeating: "=", count: filled - 1) + ">" + String(repeating: ".", count: width - filled)
    }
}

/// ANSI "erase in line" from the cursor to the end of the line.
private let clearToEndOfLine = "\u{1B}[K"

/// Returns the width of the terminal on standard output, or nil when it is not a terminal or
/// reports no width.
private func terminalColumns() -> Int? {
    var size = winsize()
    guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
    return Int(size.ws_col)
}

/// Writes `text` to standard output through `print`, which keeps it in order with other
/// `print` output, and flushes it so that the progress appears at once.
private func write(_ text: String) {
    print(text, terminator: "")
    // `fflush(nil)` flushes every output stream. Naming `stdout` instead is rejected by Swift 6
    // strict concurrency, because Glibc declares it as a mutable global.
    fflush(nil)
}
