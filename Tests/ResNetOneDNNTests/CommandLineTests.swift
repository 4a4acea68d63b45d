import Foundation
import ResNetOneDNN
import XCTest

/// The `resnet` tool run as a user runs it: a child process, its output and its exit status.
final class CommandLineTests: XCTestCase {
    struct Run {
        var status: Int32
        var output: String
        var errors: String
    }

    /// The tool sits beside the test bundle in the build folder.
    static var toolURL: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("resnet")
    }

    func run(_ arguments: [String]) throws -> Run {
        try Self.run(arguments)
    }

    /// Runs the tool with `arguments` and waits for it to end.
    static func run(_ arguments: [String]) throws -> Run {
        guard FileManager.default.isExecutableFile(atPath: toolURL.path) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [
                NSLocalizedDescriptionKey: "resnet not built at \(toolURL.path); run scripts/test.sh, which builds it"
            ])
        }
        let process = Process()
        process.executableURL = toolURL
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
            errors: String(decoding: errorData, as: UTF8.self))
    }

    func testSmallTutorialJobPrintsConfigurationAndEpochs() throws {
        let result = try run([
            "train", "--input", "32x32x3", "--samples", "40", "--validation-samples", "12", "--epochs", "2",
            "--batch-size", "16", "--threads", "2",
        ])
        XCTAssertEqual(result.status, 0, result.errors)
        let lines = result.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("model: tutorial") }, result.output)
        XCTAssertTrue(lines.contains { $0.hasPrefix("backend: oneDNN") && $0.contains("2 threads") }, result.output)
        XCTAssertTrue(lines.contains("batch_size: 16"), result.output)

        let epochs = lines.filter { $0.hasPrefix("epoch ") }
        XCTAssertEqual(epochs.count, 2, result.output)
        for (index, line) in epochs.enumerated() {
            XCTAssertTrue(line.hasPrefix("epoch \(index + 1)/2 "), line)
            for key in ["loss=", "accuracy=", "val_loss=", "val_accuracy=", "time=", "img/s="] {
                XCTAssertTrue(line.contains(key), "\(key) missing in: \(line)")
            }
        }
        XCTAssertTrue(lines.last?.hasPrefix("done: 2 epochs") ?? false, result.output)
        XCTAssertFalse(result.output.contains("\r"), "no progress bar when output is not a terminal")
    }

    func testBadArgumentsExitWithUsageError() throws {
        let cases: [([String], String)] = [
            (["train", "--batch-size", "0"], "--batch-size"),
            (["train", "--epoch", "3"], "--epochs"),
            (["bench", "--winograd"], "--no-winograd turns it off"),
            (["train", "--classes", "1"], "--classes"),
            (["train", "--input", "2x2x3"], "--input"),
            (["train", "--input", "224x224"], "--input"),
            (["train", "--backend", "gpu"], "--backend"),
            (["train", "--learning-rate", "-1"], "--learning-rate"),
            (["train", "--samples", "100000000", "--input", "224x224x3"], "--samples"),
            (["train", "--input", "16384x16384x3", "--samples", "1", "--batch-size", "1"], "--input"),
            (["bench", "--batch-size", "4096"], "--batch-size"),
            (["fly"], "fly"),
            (["compare", "--steps", "x"], "--steps"),
            (["train", "--model", "mlp", "--data", "regression", "--input", "32x32x3"], "--input"),
            (["train", "--model", "mlp", "--data", "regression", "--classes", "3"], "--classes"),
            (["train", "--model", "mlp", "--data", "regression", "--augment"], "--augment"),
            (["train", "--input", "32x32x3", "--augment-padding", "32"], "--augment-padding"),
            (["train", "--normalize", "yes"], "--normalize"),
        ]
        for (arguments, named) in cases {
            let result = try run(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.errors)")
            XCTAssertTrue(result.errors.hasPrefix("error: "), "\(arguments): \(result.errors)")
            XCTAssertTrue(result.errors.contains(named), "\(arguments) should name \(named): \(result.errors)")
            XCTAssertEqual(result.errors.split(separator: "\n").count, 1, "one line: \(result.errors)")
        }
    }

    func testHelpDescribesEveryTrainingFlag() throws {
        let result = try run(["train", "--help"])
        XCTAssertEqual(result.status, 0)
        for flag in [
            "--model", "--input", "--samples", "--validation-samples", "--classes", "--epochs", "--batch-size",
            "--learning-rate", "--seed", "--threads", "--backend", "--augment", "--augment-padding", "--normalize",
        ] {
            XCTAssertTrue(result.output.contains(flag), "\(flag) missing from help")
        }
        XCTAssertTrue(result.output.contains("(default: 32)"), result.output)

        let overview = try run(["--help"])
        XCTAssertEqual(overview.status, 0)
        for command in ["train", "compare", "bench"] {
            XCTAssertTrue(overview.output.contains(command), "\(command) missing from: \(overview.output)")
        }
    }

    func testVersionNamesToolAndOneDNN() throws {
        let result = try run(["--version"])
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertEqual(result.output, "resnet 0.1.0 (oneDNN \(OneDNNBackend.libraryVersion))\n")
        XCTAssertTrue(OneDNNBackend.libraryVersion.hasPrefix("2."), OneDNNBackend.libraryVersion)

        let misplaced = try run(["train", "--version"])
        XCTAssertEqual(misplaced.status, 2)
        XCTAssertTrue(misplaced.errors.contains("unknown option '--version'"), misplaced.errors)
    }

    func testCompareExitsZeroWhenBackendsAgree() throws {
        let result = try run(["compare", "--model", "tutorial", "--input", "20x20x3", "--batch-size", "2"])
        XCTAssertEqual(result.status, 0, result.output + result.errors)
        XCTAssertTrue(result.output.contains("result: passed"), result.output)
        XCTAssertTrue(result.output.contains("conv2d"), result.output)
        XCTAssertTrue(result.output.contains("residual_block_2.conv2d_1.kernel"), result.output)
    }

    func testSummaryListsLayersAndTotals() throws {
        let result = try run(["summary", "--model", "tutorial", "--input", "224x224x3", "--classes", "10"])
        XCTAssertEqual(result.status, 0, result.errors)
        // conv 7x7 3->64 with bias, batch norm (scale, shift, running mean and variance), six
        // 3x3 64->64 convolutions with bias, dense 64->10 with bias.
        let total = (64 * 3 * 49 + 64) + 4 * 64 + 6 * (64 * 64 * 9 + 64) + (10 * 64 + 10)
        XCTAssertTrue(result.output.contains("total parameters: 231,946"), result.output)
        XCTAssertEqual(total, 231_946)
        XCTAssertTrue(result.output.contains("trainable parameters: 231,818"), result.output)
        XCTAssertTrue(result.output.contains("1x64x74x74"), "max pool 3 of 224 gives 74: \(result.output)")
        XCTAssertEqual(result.output.split(separator: "\n").filter { $0.hasPrefix("residual_block") }.count, 12, "conv, ReLU, conv, add per block")
        XCTAssertTrue(result.output.contains("forward: 3.367 GFLOP per image"), result.output)
    }

    func testRegressionJobReportsR2() throws {
        let result = try run([
            "train", "--model", "mlp", "--data", "regression", "--epochs", "3", "--threads", "1",
        ])
        XCTAssertEqual(result.status, 0, result.errors)
        let lines = result.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("loss: mse"), result.output)
        XCTAssertTrue(lines.contains("input: 2 features"), result.output)
        XCTAssertTrue(lines.contains("normalization: off"), "generated data keeps its values: \(result.output)")

        let epochs = lines.filter { $0.hasPrefix("epoch ") }
        XCTAssertEqual(epochs.count, 3, result.output)
        for line in epochs {
            for key in ["loss=", " r2=", "val_loss=", "val_r2="] {
                XCTAssertTrue(line.contains(key), "\(key) missing in: \(line)")
            }
            XCTAssertFalse(line.contains("accuracy="), "regression has no accuracy: \(line)")
        }
        // y = x1 + x2 has variance 2/3 and the noise 0.01, so a model at the noise floor has
        // R² = 1 - 0.01 / (2/3 + 0.01), about 0.985; after 3 epochs of 32 steps it is close.
        let r2 = try XCTUnwrap(epochs.last?.split(separator: " ").first { $0.hasPrefix("val_r2=") }?.dropFirst(7))
        let value = try XCTUnwrap(Double(r2))
        XCTAssertGreaterThan(value, 0.95, "\(epochs.last ?? "")")
        XCTAssertLessThan(value, 0.99, "R² above the noise floor's would mean a wrong SST: \(epochs.last ?? "")")
    }

    func testIncompatibleModelAndDataNameBoth() throws {
        for (arguments, model, data) in [
            (["train", "--model", "resnet20", "--data", "regression"], "--model resnet20", "--data regression"),
            (["train", "--model", "mlp", "--data", "gratings"], "--model mlp", "--data gratings"),
            (["train", "--model", "mlp"], "--model mlp", "--data synthetic"),
        ] {
            let result = try run(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.errors)")
            XCTAssertTrue(result.errors.contains(model), "\(arguments) should name \(model): \(result.errors)")
            XCTAssertTrue(result.errors.contains(data), "\(arguments) should name \(data): \(result.errors)")
            XCTAssertEqual(result.errors.split(separator: "\n").count, 1, "one line: \(result.errors)")
        }
    }

    func testAugmentedNormalizedJobPrintsItsSettings() throws {
        let result = try run([
            "train", "--model", "resnet20", "--data", "gratings", "--input", "16x16x3", "--samples", "24",
            "--validation-samples", "8", "--epochs", "1", "--batch-size", "8", "--threads", "1", "--augment",
            "--normalize", "on",
        ])
        XCTAssertEqual(result.status, 0, result.errors)
        let lines = result.output.split(separator: "\n").map(String.init)
        // 16 / 8 = 2 pixels of padding.
        XCTAssertTrue(
            lines.contains { $0.hasPrefix("augmentation: random crop from zero padding of 2 pixels, random horizontal flip") },
            result.output)
        // Gratings are 0.5 + 0.4 sin(...) + noise in every channel: means near 0.5.
        let normalization = try XCTUnwrap(lines.first { $0.hasPrefix("normalization: mean ") }, result.output)
        XCTAssertTrue(normalization.contains("mean 0.49") || normalization.contains("mean 0.50"), normalization)
        XCTAssertEqual(lines.filter { $0.hasPrefix("epoch 1/1 ") }.count, 1, result.output)
    }

    func testSummaryOfResNet50MatchesTorchvision() throws {
        let result = try run(["summary", "--model", "resnet50", "--classes", "1000"])
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(result.output.contains("trainable parameters: 25,557,032"), result.output)
        XCTAssertTrue(result.output.contains("bottleneck_block_15.add"), "16 bottleneck blocks: \(result.output)")
    }

    func testSGDOneCycleWritesLogAndPlot() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("resnet-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("run.jsonl").path
        let plot = directory.appendingPathComponent("plot.svg").path

        let result = try run([
            "train", "--data", "gratings", "--input", "16x16x3", "--samples", "32", "--validation-samples", "16",
            "--epochs", "2", "--batch-size", "16", "--threads", "2", "--optimizer", "sgd", "--schedule", "one-cycle",
            "--log", log, "--log-every", "1", "--plot", plot,
        ])
        XCTAssertEqual(result.status, 0, result.errors)
        let lines = result.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("optimizer: sgd (learning rate 0.01, momentum 0.9)"), result.output)
        XCTAssertTrue(lines.contains { $0.hasPrefix("schedule: one-cycle over 4 steps") }, result.output)

        // 2 steps per epoch: step lines at steps 1 to 4 and an epoch line after steps 2 and 4.
        let records = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map { line in
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        XCTAssertEqual(records.map { $0["kind"] as? String }, ["step", "step", "epoch", "step", "step", "epoch"])
        XCTAssertEqual(records.map { $0["step"] as? Int }, [1, 2, 2, 3, 4, 4])
        // One-cycle over 4 steps from 0.01 / 25 = 4e-4 to 4e-4 / 1e4 = 4e-8.
        let rates = records.compactMap { $0["learning_rate"] as? Double }
        XCTAssertEqual(rates.first ?? 0, 4e-4, accuracy: 1e-12)
        XCTAssertEqual(rates.last ?? 0, 4e-8, accuracy: 1e-15)
        let epochs = records.filter { $0["kind"] as? String == "epoch" }
        for record in epochs {
            for key in ["loss", "accuracy", "val_loss", "val_accuracy", "time", "images_per_second"] {
                XCTAssertNotNil(record[key] as? Double, "\(key) in \(record)")
            }
        }

        let svg = try String(contentsOfFile: plot, encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg "), svg)
        XCTAssertTrue(svg.hasSuffix("</svg>\n"), svg)
        XCTAssertEqual(svg.components(separatedBy: "<polyline ").count - 1, 4, "two series in each of two panels")
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(), ["plot.svg", "run.jsonl"],
            "no temporary file left")
    }

    func testBadOptimizerOptionsExitTwo() throws {
        let small = ["train", "--input", "16x16x3", "--samples", "8", "--validation-samples", "0", "--epochs", "2"]
        let cases: [([String], [String])] = [
            (["--learning-rate", "nan"], ["--learning-rate", "'nan'", "not a number", "greater than 0"]),
            (["--learning-rate", "0"], ["--learning-rate", "greater than 0 and at most 10"]),
            (["--optimizer", "rmsprop"], ["--optimizer", "adam, adamw, sgd"]),
            (["--optimizer", "sgd", "--momentum", "1"], ["--momentum", "less than 1"]),
            (["--momentum", "0.5"], ["--momentum", "only to --optimizer sgd"]),
            (["--optimizer", "sgd", "--momentum", "0", "--nesterov"], ["--nesterov"]),
            (["--weight-decay", "-0.1"], ["--weight-decay", "from 0 to 1"]),
            (["--weight-decay", "inf"], ["--weight-decay", "infinite"]),
            (["--decay-all-parameters"], ["--decay-all-parameters", "--weight-decay"]),
            (["--schedule", "linear"], ["--schedule", "one-cycle"]),
            (["--warmup-epochs", "2"], ["--warmup-epochs", "'2'", "2 epochs"]),
            (["--warmup-epochs", "-1"], ["--warmup-epochs", "at least 0"]),
            (["--schedule", "one-cycle", "--warmup-epochs", "1"], ["--warmup-epochs", "one-cycle"]),
            (["--gamma", "0.5"], ["--gamma", "--schedule step"]),
            (["--schedule", "step", "--gamma", "1.5"], ["--gamma", "less than 1"]),
            (["--schedule", "step", "--step-size", "2"], ["--step-size", "'2'"]),
            (["--schedule", "cosine", "--min-learning-rate", "0.01"], ["--min-learning-rate", "0.001"]),
            (["--log-every", "5"], ["--log-every", "--log"]),
            (["--log", "/nonexistent-directory/run.jsonl"], ["--log", "/nonexistent-directory/run.jsonl", "No such file"]),
            (["--plot", FileManager.default.temporaryDirectory.path], ["--plot", "directory"]),
            (["--plot", "/dev/null"], ["--plot", "/dev/null", "not a regular file"]),
        ]
        for (arguments, named) in cases {
            let result = try run(small + arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.errors)")
            XCTAssertTrue(result.errors.hasPrefix("error: "), "\(arguments): \(result.errors)")
            for word in named {
                XCTAssertTrue(result.errors.contains(word), "\(arguments) should name \(word): \(result.errors)")
            }
            XCTAssertEqual(result.errors.split(separator: "\n").count, 1, "one line: \(result.errors)")
            XCTAssertTrue(result.output.isEmpty, "\(arguments) starts no training: \(result.output)")
        }
    }

    func testLogWriteFailureExitsOne() throws {
        // Every write to /dev/full fails with "No space left on device".
        let result = try run([
            "train", "--data", "gratings", "--input", "16x16x3", "--samples", "16", "--validation-samples", "0",
            "--epochs", "2", "--batch-size", "16", "--threads", "2", "--log", "/dev/full",
        ])
        XCTAssertEqual(result.status, 1, result.errors)
        XCTAssertEqual(result.output.split(separator: "\n").filter { $0.hasPrefix("epoch ") }.count, 2, "training goes on")
        let messages = result.errors.split(separator: "\n").map(String.init)
        XCTAssertEqual(messages.count, 2, result.errors)
        XCTAssertTrue(messages.first?.hasPrefix("warning: cannot write /dev/full: No space left on device") ?? false, result.errors)
        XCTAssertTrue(messages.last?.hasPrefix("error: the log is incomplete") ?? false, result.errors)
    }

    func testHelpDescribesOptimizerAndOutputFlags() throws {
        let result = try run(["train", "--help"])
        XCTAssertEqual(result.status, 0)
        for flag in [
            "--optimizer adam|adamw|sgd", "--momentum", "--nesterov", "--weight-decay", "--decay-all-parameters",
            "--schedule constant|step|cosine|one-cycle", "--warmup-epochs", "--step-size", "--gamma",
            "--min-learning-rate", "--log FILE", "--log-every", "--plot FILE.svg",
        ] {
            XCTAssertTrue(result.output.contains(flag), "\(flag) missing from help")
        }
        XCTAssertTrue(result.output.contains("0.001 for adam and adamw, 0.01 for sgd"), result.output)
    }
}
