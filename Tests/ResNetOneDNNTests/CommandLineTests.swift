import Foundation
import XCTest

/// The `resnet` tool run as a user runs it: a child process, its output and its exit status.
final class CommandLineTests: XCTestCase {
    struct Run {
        var status: Int32
        var output: String
        var errors: String
    }

    /// The tool sits beside the test bundle in the build folder.
    private var toolURL: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("resnet")
    }

    func run(_ arguments: [String]) throws -> Run {
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
            "--learning-rate", "--seed", "--threads", "--backend",
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
}
