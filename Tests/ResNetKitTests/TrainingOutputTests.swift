import Foundation
import XCTest
import ResNetKit

#if canImport(FoundationXML)
import FoundationXML
#endif

/// The JSON Lines log and the SVG plot, read back with Foundation's own parsers.
final class TrainingOutputTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("resnet-outputs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: directory)
    }

    /// Trains a dense probe on 6 samples in batches of 2 (3 steps per epoch) for `epochs` epochs.
    private func train(
        epochs: Int, validation: Bool, schedule: LearningRateSchedule? = nil, observers: (Optimizer) throws -> [TrainingObserver]
    ) throws -> [EpochMetrics] {
        let backend = ReferenceBackend<Float>(threads: 1)
        let model = try Model(
            name: "probe", network: Sequential(layers: [Flatten(), Dense(units: 3)]), inputShape: TensorShape(1, 2, 2),
            backend: backend, seed: 1)
        let optimizer = SGD(learningRate: 0.1, momentum: 0.9)
        let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: optimizer)
        trainer.schedule = schedule
        let shape = TensorShape(1, 2, 2)
        let data = try SyntheticData.gratings(samples: 6, sampleShape: shape, classes: 3, seed: 2)
        let held = validation ? try SyntheticData.gratings(samples: 4, sampleShape: shape, classes: 3, seed: 3) : nil
        return try trainer.fit(
            data, validation: held, epochs: epochs, batchSize: 2, seed: 1, observer: ObserverList(try observers(optimizer)))
    }

    private func readLines(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"), "the last line is complete")
        return try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try XCTUnwrap(object as? [String: Any], "not an object: \(line)")
        }
    }

    func testLogLinesHoldEpochValues() throws {
        let path = directory.appendingPathComponent("run.jsonl").path
        try Data("old contents that must go\n".utf8).write(to: URL(fileURLWithPath: path))
        let schedule = LearningRateSchedule(.step(epochs: 1, gamma: 0.5), baseRate: 0.1, stepsPerEpoch: 3, epochs: 2)
        let history = try train(epochs: 2, validation: true, schedule: schedule) { optimizer in
            [try TrainingLog(path: path, stepInterval: 2, optimizer: optimizer)]
        }

        let lines = try readLines(path)
        // Global steps 1 to 6: step lines at 2, 4 and 6, epoch lines after steps 3 and 6.
        XCTAssertEqual(lines.map { $0["kind"] as? String }, ["step", "epoch", "step", "step", "epoch"])
        XCTAssertEqual(lines.map { $0["step"] as? Int }, [2, 3, 4, 6, 6])
        XCTAssertEqual(lines.map { $0["epoch"] as? Int }, [1, 1, 2, 2, 2])

        // JSONSerialization on Linux can read a number one unit in the last place off, so the
        // values are compared to a relative 1e-14.
        let epochLines = lines.filter { $0["kind"] as? String == "epoch" }
        for (line, metrics) in zip(epochLines, history) {
            let pairs: [(String, Double?)] = [
                ("loss", metrics.loss), ("accuracy", metrics.accuracy), ("val_loss", metrics.validationLoss),
                ("val_accuracy", metrics.validationAccuracy), ("time", metrics.seconds),
                ("images_per_second", metrics.imagesPerSecond),
            ]
            for (key, expected) in pairs {
                let expected = try XCTUnwrap(expected, key)
                let logged = try XCTUnwrap(line[key] as? Double, "\(key) in \(line)")
                XCTAssertEqual(logged, expected, accuracy: abs(expected) * 1e-14, key)
            }
        }
        // Epoch 1 runs at 0.1 and epoch 2 at 0.05, so step 2 logs 0.1 and steps 4 and 6 log 0.05.
        XCTAssertEqual(lines.map { $0["learning_rate"] as? Double }, [0.1, 0.1, 0.05, 0.05, 0.05])
        XCTAssertEqual(history.map(\.samples), [6, 6])
    }

    func testLogWritesNullWithoutValidation() throws {
        let path = directory.appendingPathComponent("run.jsonl").path
        _ = try train(epochs: 1, validation: false) { optimizer in [try TrainingLog(path: path, optimizer: optimizer)] }
        let lines = try readLines(path)
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0]["val_loss"] is NSNull, "\(lines[0])")
        XCTAssertTrue(lines[0]["val_accuracy"] is NSNull, "\(lines[0])")
    }

    func testLogRejectsMissingDirectory() {
        let path = directory.appendingPathComponent("missing/run.jsonl").path
        XCTAssertThrowsError(try TrainingLog(path: path)) { error in
            XCTAssertTrue("\(error)".contains("No such file or directory"), "\(error)")
        }
    }

    func testPlotSeriesHavePointPerEpoch() throws {
        let history = try train(epochs: 3, validation: true) { _ in [] }
        let document = try parseSVG(TrainingPlot.svg(history, epochs: 5))

        XCTAssertEqual(document.polylines.count, 4, "training and validation in each of two panels")
        for points in document.polylines {
            XCTAssertEqual(points.count, 3, "\(points)")
            XCTAssertEqual(points.map(\.x), points.map(\.x).sorted(), "points run left to right by epoch")
        }
        XCTAssertEqual(document.circles, 12)

        // The second panel plots accuracy on a 0 to 1 axis, so the point of the higher accuracy
        // sits higher, that is at the smaller y.
        let accuracies = history.map { $0.accuracy ?? 0 }
        let accuracyPoints = document.polylines[2]
        for i in 0..<2 where accuracies[i] != accuracies[i + 1] {
            XCTAssertEqual(accuracies[i] < accuracies[i + 1], accuracyPoints[i].y > accuracyPoints[i + 1].y)
        }
        for label in ["loss", "accuracy", "epoch", "training", "validation", "0", "5", "1.0"] {
            XCTAssertTrue(document.texts.contains(label), "\(label) missing from \(document.texts)")
        }
    }

    func testPlotWithoutValidationHasTwoPolylines() throws {
        let history = try train(epochs: 1, validation: false) { _ in [] }
        let document = try parseSVG(TrainingPlot.svg(history, epochs: 1))
        XCTAssertEqual(document.polylines.map(\.count), [1, 1])
        XCTAssertFalse(document.texts.contains("validation"))
    }

    func testPlotWriterReplacesFileEachEpoch() throws {
        let path = directory.appendingPathComponent("plot.svg").path
        try Data("not a plot".utf8).write(to: URL(fileURLWithPath: path))
        var writer: TrainingPlotWriter?
        _ = try train(epochs: 2, validation: true) { _ in
            writer = try TrainingPlotWriter(path: path)
            return [writer!]
        }
        XCTAssertNil(writer?.writeError)
        let document = try parseSVG(try String(contentsOfFile: path, encoding: .utf8))
        XCTAssertEqual(document.polylines.map(\.count), [2, 2, 2, 2])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["plot.svg"], "no temporary file left")
    }

    func testPlotWriterFollowsSymbolicLink() throws {
        let target = directory.appendingPathComponent("target.svg").path
        let link = directory.appendingPathComponent("link.svg").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: target))
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)

        _ = try train(epochs: 1, validation: false) { _ in [try TrainingPlotWriter(path: link)] }
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), target, "the link is kept")
        XCTAssertEqual(try parseSVG(try String(contentsOfFile: target, encoding: .utf8)).polylines.count, 2)
    }

    func testPlotWriterRejectsDirectory() {
        XCTAssertThrowsError(try TrainingPlotWriter(path: directory.path)) { error in
            XCTAssertTrue("\(error)".contains("directory"), "\(error)")
        }
        XCTAssertThrowsError(try TrainingPlotWriter(path: directory.appendingPathComponent("missing/plot.svg").path))
    }
}

/// The parts of an SVG document that the plot tests check.
struct SVGSummary {
    var polylines: [[(x: Double, y: Double)]] = []
    var circles = 0
    var texts: [String] = []
}

/// Parses `text` with XMLParser, failing on malformed XML or an `<svg>` root in another namespace.
func parseSVG(_ text: String) throws -> SVGSummary {
    final class Collector: NSObject, XMLParserDelegate {
        var summary = SVGSummary()
        var root: (name: String, namespace: String?)?
        var text: String?

        func parser(
            _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            if root == nil {
                root = (elementName, attributes["xmlns"])
            }
            switch elementName {
            case "polyline":
                let pairs = (attributes["points"] ?? "").split(separator: " ").map { pair in
                    let numbers = pair.split(separator: ",").compactMap { Double($0) }
                    return (x: numbers.first ?? .nan, y: numbers.last ?? .nan)
                }
                summary.polylines.append(pairs)
            case "circle":
                summary.circles += 1
            case "text":
                text = ""
            default:
                break
            }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            text? += string
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
            if elementName == "text", let text {
                summary.texts.append(text)
                self.text = nil
            }
        }
    }

    let parser = XMLParser(data: Data(text.utf8))
    let collector = Collector()
    parser.delegate = collector
    guard parser.parse() else {
        throw parser.parserError ?? CocoaError(.coderReadCorrupt)
    }
    XCTAssertEqual(collector.root?.name, "svg")
    XCTAssertEqual(collector.root?.namespace, "http://www.w3.org/2000/svg")
    return collector.summary
}
