import Foundation
import ResNetKit
import XCTest

/// `resnet train --save` and `resnet evaluate`, run as a user runs them.
final class CheckpointCommandLineTests: XCTestCase {
    private var directory: URL!

    /// A one-epoch gratings job small enough to train in about a second.
    private let tinyJob = [
        "train", "--data", "gratings", "--input", "16x16x1", "--classes", "3", "--samples", "48",
        "--validation-samples", "24", "--epochs", "1", "--batch-size", "8", "--threads", "2",
    ]

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func run(_ arguments: [String]) throws -> CommandLineTests.Run {
        try CommandLineTests.run(arguments)
    }

    /// Returns the value after `key=` in `line`, up to the next space.
    private func field(_ key: String, in line: String) -> String? {
        line.split(separator: " ").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    func testEvaluateReproducesLastValidation() throws {
        let checkpoint = directory.appendingPathComponent("tiny.safetensors").path
        let training = try run(tinyJob + ["--save", checkpoint])
        XCTAssertEqual(training.status, 0, training.errors)
        XCTAssertTrue(training.output.contains("saved: \(checkpoint)"), training.output)
        let epoch = try XCTUnwrap(training.output.split(separator: "\n").last { $0.hasPrefix("epoch 1/1") }.map(String.init))
        let validationLoss = try XCTUnwrap(field("val_loss", in: epoch))
        let validationAccuracy = try XCTUnwrap(field("val_accuracy", in: epoch))

        // With no data options, evaluate remakes the run's validation set from the checkpoint.
        let evaluation = try run(["evaluate", "--checkpoint", checkpoint, "--threads", "2"])
        XCTAssertEqual(evaluation.status, 0, evaluation.errors)
        let lines = evaluation.output.split(separator: "\n").map(String.init)
        let result = try XCTUnwrap(lines.first { $0.hasPrefix("loss=") }, evaluation.output)
        XCTAssertEqual(field("loss", in: result), validationLoss, evaluation.output)
        XCTAssertEqual(field("accuracy", in: result), validationAccuracy, evaluation.output)
        XCTAssertEqual(field("samples", in: result), "24")
        XCTAssertTrue(lines.contains("data: gratings, 24 samples, seed 2"), evaluation.output)

        // The same data named explicitly, as JSON: the matrix and the per-class rows agree with it.
        let json = try run([
            "evaluate", "--checkpoint", checkpoint, "--data", "gratings", "--samples", "24", "--seed", "2",
            "--batch-size", "8", "--threads", "2", "--json",
        ])
        XCTAssertEqual(json.status, 0, json.errors)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        let accuracy = try XCTUnwrap(object["accuracy"] as? Double)
        XCTAssertEqual(String(format: "%.4f", accuracy), validationAccuracy)
        XCTAssertEqual(String(format: "%.4f", try XCTUnwrap(object["loss"] as? Double)), validationLoss)
        let matrix = try XCTUnwrap(object["confusion_matrix"] as? [[Int]])
        XCTAssertEqual(matrix.count, 3)
        XCTAssertTrue(matrix.allSatisfy { $0.count == 3 })
        XCTAssertEqual(matrix.joined().reduce(0, +), 24)
        XCTAssertEqual(Double(matrix[0][0] + matrix[1][1] + matrix[2][2]) / 24, accuracy, accuracy: 1e-12)
        let classes = try XCTUnwrap(object["classes"] as? [[String: Any]])
        for (label, row) in classes.enumerated() {
            XCTAssertEqual(row["samples"] as? Int, matrix[label].reduce(0, +))
            XCTAssertEqual(row["correct"] as? Int, matrix[label][label])
        }

        // The text table prints the same matrix, one aligned row per true class.
        let header = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("true\\predicted") })
        let rows = lines[(header + 1)...(header + 3)].map { $0.split(separator: " ").map { Int($0)! } }
        XCTAssertEqual(rows.map { Array($0.dropFirst()) }, matrix)
        XCTAssertEqual(Set(lines[header...(header + 3)].map(\.count)).count, 1, "rows are aligned")
    }

    func testSaveRefusesExistingFileBeforeTraining() throws {
        let url = directory.appendingPathComponent("existing.safetensors")
        let original = Data("a checkpoint the user wants to keep".utf8)
        try original.write(to: url)

        let result = try run(tinyJob + ["--save", url.path])
        XCTAssertEqual(result.status, 2, result.errors)
        XCTAssertTrue(result.errors.hasPrefix("error: --save"), result.errors)
        XCTAssertTrue(result.errors.contains(url.path), result.errors)
        XCTAssertTrue(result.errors.contains("--overwrite"), result.errors)
        XCTAssertEqual(result.errors.split(separator: "\n").count, 1, result.errors)
        XCTAssertFalse(result.output.contains("epoch"), "nothing is trained: \(result.output)")
        XCTAssertEqual(try Data(contentsOf: url), original)

        let missingDirectory = try run(tinyJob + ["--save", directory.appendingPathComponent("none/x.safetensors").path])
        XCTAssertEqual(missingDirectory.status, 2)
        XCTAssertTrue(missingDirectory.errors.contains("does not exist"), missingDirectory.errors)
    }

    func testEvaluateRejectsDamagedCheckpoint() throws {
        let url = directory.appendingPathComponent("tiny.safetensors")
        let model = try Architecture.tutorial.makeModel(
            classes: 3, inputShape: TensorShape(1, 16, 16), backend: ReferenceBackend<Float>(threads: 1), seed: 1)
        try Checkpoint.save(model, to: url)
        var bytes = [UInt8](try Data(contentsOf: url))
        bytes[bytes.count - 5] ^= 0x80
        let damaged = directory.appendingPathComponent("damaged.safetensors")
        try Data(bytes).write(to: damaged)
        let truncated = directory.appendingPathComponent("truncated.safetensors")
        try Data(bytes.prefix(6)).write(to: truncated)

        for (file, mentions) in [(damaged, "CRC-32"), (truncated, "too short"), (directory.appendingPathComponent("absent"), "not found")] {
            let result = try run(["evaluate", "--checkpoint", file.path])
            XCTAssertEqual(result.status, 2, result.errors)
            XCTAssertTrue(result.errors.hasPrefix("error: --checkpoint \(file.path): "), result.errors)
            XCTAssertTrue(result.errors.contains(mentions), result.errors)
            XCTAssertEqual(result.errors.split(separator: "\n").count, 1, result.errors)
            XCTAssertEqual(result.output, "", "no partial report")
        }
    }
}
