import Foundation

/// Draws a training history as an SVG image: loss on the left and accuracy on the right, each
/// against the epoch, with training as a solid line and validation as a dashed one.
///
/// Each series is one `<polyline>` with a point per epoch, plus a circle per point so that a
/// one-epoch run still shows its values. Non-finite values are left out of the lines. A series
/// with no values, such as validation without validation data, draws nothing and has no legend
/// entry.
public enum TrainingPlot {
    static let width = 900.0
    static let height = 420.0
    static let trainingColor = "rgb(31,119,180)"
    static let validationColor = "rgb(255,127,14)"

    /// Returns the SVG document for `history` on an epoch axis from 0 to `epochs`, the run's
    /// planned length, so that the axis stays put while the run goes on.
    public static func svg(_ history: [EpochMetrics], epochs: Int) -> String {
        let epochAxis = PlotAxis.integers(upTo: max(epochs, history.last?.epoch ?? 0, 1))
        let losses = history.flatMap { [$0.loss, $0.validationLoss] }.compactMap { $0 }.filter(\.isFinite)
        let lossAxis = PlotAxis.nice(lower: min(losses.min() ?? 0, 0), upper: losses.max() ?? 1)
        let hasAccuracy = history.isEmpty || history.contains { $0.accuracy != nil }

        var lines = [
            #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(format(width))" height="\#(format(height))" "#
                + #"viewBox="0 0 \#(format(width)) \#(format(height))" font-family="sans-serif" font-size="12">"#,
            "<title>Training history: loss and accuracy per epoch</title>",
            #"<rect x="0" y="0" width="\#(format(width))" height="\#(format(height))" fill="white"/>"#,
        ]
        let left = PlotPanel(originX: 0, title: "loss", xAxis: epochAxis, yAxis: lossAxis)
        lines += left.draw(
            training: history.map { ($0.epoch, $0.loss) },
            validation: history.compactMap { metrics in metrics.validationLoss.map { (metrics.epoch, $0) } })

        let right = PlotPanel(originX: width / 2, title: "accuracy", xAxis: epochAxis, yAxis: .nice(lower: 0, upper: 1))
        if hasAccuracy {
            lines += right.draw(
                training: history.compactMap { metrics in metrics.accuracy.map { (metrics.epoch, $0) } },
                validation: history.compactMap { metrics in metrics.validationAccuracy.map { (metrics.epoch, $0) } })
        } else {
            lines += right.draw(training: [], validation: [])
            lines.append(
                #"<text x="\#(format(right.plotLeft + right.plotWidth / 2))" y="\#(format(right.plotTop + right.plotHeight / 2))" "#
                    + #"text-anchor="middle" fill="rgb(102,102,102)">no accuracy: the loss is not a classification loss</text>"#)
        }
        lines.append("</svg>")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Formats a coordinate with at most one decimal, as SVG reads it.
    static func format(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(format: "%.1f", rounded)
    }
}

/// An axis range with evenly spaced ticks at round values: 1, 2 or 5 times a power of ten.
struct PlotAxis {
    var lower: Double
    var upper: Double
    var ticks: [Double]
    /// Decimals that tick labels need to tell the ticks apart.
    var decimals: Int

    /// Returns an axis that covers `lower...upper` with about five ticks.
    static func nice(lower: Double, upper: Double) -> PlotAxis {
        let upper = upper > lower ? upper : lower + 1
        let step = roundStep(for: (upper - lower) / 5)
        return make(lower: (lower / step).rounded(.down) * step, upper: (upper / step).rounded(.up) * step, step: step)
    }

    /// Returns an axis from 0 to exactly `upper`, with about six ticks at whole numbers.
    static func integers(upTo upper: Int) -> PlotAxis {
        let step = max(roundStep(for: Double(upper) / 6), 1)
        var axis = make(lower: 0, upper: (Double(upper) / step).rounded(.down) * step, step: step)
        axis.upper = Double(upper)
        return axis
    }

    private static func roundStep(for rawStep: Double) -> Double {
        let magnitude = pow(10, (log10(rawStep)).rounded(.down))
        let residual = rawStep / magnitude
        if residual <= 1 { return magnitude }
        if residual <= 2 { return 2 * magnitude }
        if residual <= 5 { return 5 * magnitude }
        return 10 * magnitude
    }

    private static func make(lower: Double, upper: Double, step: Double) -> PlotAxis {
        let count = Int(((upper - lower) / step).rounded())
        let ticks = (0...count).map { lower + Double($0) * step }
        let decimals = max(0, -Int(log10(step).rounded(.down)))
        return PlotAxis(lower: lower, upper: lower + Double(count) * step, ticks: ticks, decimals: decimals)
    }

    func label(_ value: Double) -> String {
        String(format: "%.\(decimals)f", value)
    }
}

/// One panel of the plot: a title, a framed plot area with ticks and grid lines, axis labels and
/// a legend, in the half of the image that starts at `originX`.
struct PlotPanel {
    var originX: Double
    var title: String
    var xAxis: PlotAxis
    var yAxis: PlotAxis

    var plotLeft: Double { originX + 70 }
    var plotTop: Double { 45 }
    var plotWidth: Double { TrainingPlot.width / 2 - 95 }
    var plotHeight: Double { 270 }
    var plotBottom: Double { plotTop + plotHeight }
    /// The gap between the frame and the ends of the axes, so that no point sits on the frame.
    var inset: Double { 10 }

    func x(_ value: Double) -> Double {
        plotLeft + inset + (value - xAxis.lower) / (xAxis.upper - xAxis.lower) * (plotWidth - 2 * inset)
    }

    func y(_ value: Double) -> Double {
        plotBottom - inset - (value - yAxis.lower) / (yAxis.upper - yAxis.lower) * (plotHeight - 2 * inset)
    }

    /// Returns the panel's SVG elements with the two series, each given as (epoch, value) pairs.
    func draw(training: [(Int, Double)], validation: [(Int, Double)]) -> [String] {
        let f = TrainingPlot.format
        var lines = [
            #"<text x="\#(f(plotLeft + plotWidth / 2))" y="25" text-anchor="middle" font-size="15" font-weight="bold">\#(title)</text>"#
        ]

        for tick in yAxis.ticks {
            lines.append(
                #"<line x1="\#(f(plotLeft))" y1="\#(f(y(tick)))" x2="\#(f(plotLeft + plotWidth))" y2="\#(f(y(tick)))" stroke="rgb(228,228,228)"/>"#)
            lines.append(
                #"<text x="\#(f(plotLeft - 8))" y="\#(f(y(tick) + 4))" text-anchor="end">\#(yAxis.label(tick))</text>"#)
        }
        for tick in xAxis.ticks {
            lines.append(
                #"<line x1="\#(f(x(tick)))" y1="\#(f(plotBottom))" x2="\#(f(x(tick)))" y2="\#(f(plotBottom + 5))" stroke="rgb(51,51,51)"/>"#)
            lines.append(
                #"<text x="\#(f(x(tick)))" y="\#(f(plotBottom + 20))" text-anchor="middle">\#(xAxis.label(tick))</text>"#)
        }
        lines.append(
            #"<rect x="\#(f(plotLeft))" y="\#(f(plotTop))" width="\#(f(plotWidth))" height="\#(f(plotHeight))" fill="none" stroke="rgb(51,51,51)"/>"#)
        lines.append(
            #"<text x="\#(f(plotLeft + plotWidth / 2))" y="\#(f(plotBottom + 40))" text-anchor="middle">epoch</text>"#)
        lines.append(
            #"<text x="\#(f(originX + 18))" y="\#(f(plotTop + plotHeight / 2))" text-anchor="middle" "#
                + #"transform="rotate(-90 \#(f(originX + 18)) \#(f(plotTop + plotHeight / 2)))">\#(title)</text>"#)

        var legend: [(String, String, String?)] = []
        if let series = polyline(training, color: TrainingPlot.trainingColor, dash: nil) {
            lines += series
            legend.append(("training", TrainingPlot.trainingColor, nil))
        }
        if let series = polyline(validation, color: TrainingPlot.validationColor, dash: "6 4") {
            lines += series
            legend.append(("validation", TrainingPlot.validationColor, "6 4"))
        }
        lines += drawLegend(legend)
        return lines
    }

    /// Returns a polyline with a circle at each finite point, or nil when there is none.
    private func polyline(_ points: [(Int, Double)], color: String, dash: String?) -> [String]? {
        let f = TrainingPlot.format
        let finite = points.filter { $0.1.isFinite }
        guard !finite.isEmpty else { return nil }

        let coordinates = finite.map { "\(f(x(Double($0.0)))),\(f(y($0.1)))" }.joined(separator: " ")
        let dashAttribute = dash.map { #" stroke-dasharray="\#($0)""# } ?? ""
        var lines = [
            #"<polyline points="\#(coordinates)" fill="none" stroke="\#(color)" stroke-width="2"\#(dashAttribute)/>"#
        ]
        for (epoch, value) in finite {
            lines.append(#"<circle cx="\#(f(x(Double(epoch))))" cy="\#(f(y(value)))" r="3" fill="\#(color)"/>"#)
        }
        return lines
    }

    /// Returns legend entries in a row below the epoch label: a line sample and a name each.
    private func drawLegend(_ entries: [(name: String, color: String, dash: String?)]) -> [String] {
        let f = TrainingPlot.format
        let entryWidth = 110.0
        var x = plotLeft + (plotWidth - entryWidth * Double(entries.count)) / 2
        let y = plotBottom + 70
        var lines: [String] = []
        for entry in entries {
            let dashAttribute = entry.dash.map { #" stroke-dasharray="\#($0)""# } ?? ""
            lines.append(
                #"<line x1="\#(f(x))" y1="\#(f(y - 4))" x2="\#(f(x + 30))" y2="\#(f(y - 4))" stroke="\#(entry.color)" stroke-width="2"\#(dashAttribute)/>"#)
            lines.append(#"<text x="\#(f(x + 36))" y="\#(f(y))">\#(entry.name)</text>"#)
            x += entryWidth
        }
        return lines
    }
}

/// Rewrites an SVG plot of the history after each epoch, each time through a temporary file and
/// a rename, so the file is always a whole plot.
public final class TrainingPlotWriter: TrainingObserver {
    public let path: String
    public private(set) var history: [EpochMetrics] = []
    /// The error of the last write, or nil once a write succeeds. Each epoch tries again.
    public private(set) var writeError: Error?
    /// Called with the first error after a successful write or none, while training goes on.
    public var onWriteError: ((Error) -> Void)?
    private var epochs = 0

    /// Checks that `path` can be written, without writing it yet. A resumed run passes the
    /// epochs it trained before in `history`.
    public init(path: String, history: [EpochMetrics] = []) throws {
        try OutputFile.checkWritable(path)
        self.path = path
        self.history = history
    }

    public func epochWillBegin(epoch: Int, epochs: Int, steps: Int) {
        self.epochs = epochs
    }

    public func stepDidEnd(step: Int, steps: Int, loss: Double, accuracy: Double?) {}

    public func epochDidEnd(_ metrics: EpochMetrics, epochs: Int) {
        history.append(metrics)
        do {
            try OutputFile.writeAtomically(Data(TrainingPlot.svg(history, epochs: epochs).utf8), to: path)
            writeError = nil
        } catch {
            if writeError == nil {
                onWriteError?(error)
            }
            writeError = error
        }
    }
}
