import Foundation

extension Duration {
    /// The duration in seconds, with attosecond precision reduced to a `Double`.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// The duration with one decimal, such as `12.3s`.
    var formattedSeconds: String {
        String(format: "%.1fs", seconds)
    }

    /// The duration rounded to whole seconds, in the compact form of progress bars: `45s`,
    /// `3m12s`, or `1h02m` from one hour on. A negative duration gives `--`.
    var formattedCompactly: String {
        let value = seconds
        guard value.isFinite, value >= 0, value < Double(Int.max) else { return "--" }

        let total = Int(value.rounded())
        let hours = total / 3600
        let minutes = total % 3600 / 60
        let remainingSeconds = total % 60
        if hours > 0 {
            return String(format: "%dh%02dm", hours, minutes)
        }
        if minutes > 0 {
            return String(format: "%dm%02ds", minutes, remainingSeconds)
        }
        return "\(remainingSeconds)s"
    }
}

/// Formats a throughput with one decimal, such as `812.4 images/s`, or `-- images/s` when the
/// duration is not positive.
func formatThroughput(images: Int, in duration: Duration) -> String {
    let seconds = duration.seconds
    guard seconds > 0 else { return "-- images/s" }
    return String(format: "%.1f images/s", Double(images) / seconds)
}

/// Formats a loss or an accuracy with four decimals, such as `2.3041`.
func formatMetric(_ value: Double) -> String {
    String(format: "%.4f", value)
}

/// The mean of a stream of values, such as an epoch's loss so far, weighted by sample count so
/// that a smaller last batch counts less.
struct RunningMean: Sendable {
    private(set) var sum = 0.0
    private(set) var weight = 0

    /// Adds `value`, the mean over `count` samples.
    mutating func add(_ value: Double, count: Int = 1) {
        sum += value * Double(count)
        weight += count
    }

    /// The mean so far, or zero before the first value.
    var value: Double {
        weight == 0 ? 0 : sum / Double(weight)
    }
}
