import Foundation
import ResNetKit
import XCTest

extension CommandLineTests {
    private func makeDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("resnet-resume-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Returns the arguments of a job of 6 epochs of 32 steps, long enough to be interrupted after
    /// its first epoch.
    private func jobArguments(save: URL) -> [String] {
        [
            "train", "--model", "resnet20", "--data", "gratings", "--input", "16x16x1", "--samples", "512",
            "--validation-samples", "64", "--epochs", "6", "--batch-size", "16", "--threads", "1",
            "--optimizer", "sgd", "--schedule", "one-cycle", "--learning-rate", "0.05", "--save", save.path,
        ]
    }

    /// Starts the tool with `arguments`, sends SIGINT once its output contains `marker`, and
    /// returns the exit status and output.
    private func runInterrupted(_ arguments: [String], after marker: String, in directory: URL) throws -> Run {
        let outputURL = directory.appendingPathComponent("interrupted.txt")
        FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let process = Process()
        process.executableURL = Self.toolURL
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        process.standardError = FileHandle.nullDevice
        try process.run()

        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < deadline {
            if let text = try? String(contentsOf: outputURL, encoding: .utf8), text.contains(marker) {
                break
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.interrupt()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, output: try String(contentsOf: outputURL, encoding: .utf8), errors: "")
    }

    func testInterruptedAndResumedRunEndsWithSameWeights() throws {
        let directory = try makeDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let full = directory.appendingPathComponent("full.safetensors")
        let part = directory.appendingPathComponent("part.safetensors")

        let uninterrupted = try run(jobArguments(save: full))
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.errors)

        let interrupted = try runInterrupted(jobArguments(save: part), after: "epoch 1/6", in: directory)
        XCTAssertEqual(interrupted.status, 130, interrupted.output)
        let resumeLine = try XCTUnwrap(
            interrupted.output.split(separator: "\n").first { $0.hasPrefix("resume with: resnet train --resume ") },
            interrupted.output)
        let saved = String(resumeLine.dropFirst("resume with: resnet train --resume ".count))
        XCTAssertTrue(saved.hasPrefix(directory.appendingPathComponent("part-interrupted-").path), saved)
        XCTAssertFalse(FileManager.default.fileExists(atPath: part.path), "--save is written only at the end")

        let resumed = try run(["train", "--resume", saved])
        XCTAssertEqual(resumed.status, 0, resumed.errors)
        XCTAssertTrue(resumed.output.contains("epoch 6/6 "), resumed.output)

        // Same weights, batch-norm statistics included, bit for bit.
        let expected = try SafeTensorsFile(contentsOf: full)
        let actual = try SafeTensorsFile(contentsOf: part)
        XCTAssertEqual(expected.entries.map(\.name), actual.entries.map(\.name))
        for entry in expected.entries {
            XCTAssertEqual(try expected.floats(named: entry.name), try actual.floats(named: entry.name), entry.name)
        }

        // The last epoch's line is the same in both runs, apart from its times.
        func lastEpoch(_ text: String) -> String? {
            text.split(separator: "\n").last { $0.hasPrefix("epoch 6/6 ") }.map { $0.components(separatedBy: " time=")[0] }
        }
        XCTAssertEqual(lastEpoch(resumed.output), lastEpoch(uninterrupted.output))
    }

    func testResumeRejectsOtherOptionsAndFinishedCheckpoints() throws {
        let directory = try makeDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let full = directory.appendingPathComponent("full.safetensors")
        XCTAssertEqual(try run(jobArguments(save: full).map { $0 == "6" ? "1" : $0 }).status, 0)

        let finished = try run(["train", "--resume", full.path])
        XCTAssertEqual(finished.status, 2)
        XCTAssertTrue(finished.errors.contains("no interrupted run"), finished.errors)

        let extra = try run(["train", "--resume", full.path, "--epochs", "3"])
        XCTAssertEqual(extra.status, 2)
        XCTAssertTrue(extra.errors.contains("--epochs cannot be given with --resume"), extra.errors)

        let missing = try run(["train", "--resume", directory.appendingPathComponent("none.safetensors").path])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.errors.hasPrefix("error: --resume "), missing.errors)
    }

    func testEpochCheckpointsResumeToSameWeights() throws {
        let directory = try makeDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let full = directory.appendingPathComponent("full.safetensors")

        let uninterrupted = try run(jobArguments(save: full) + ["--save-every", "2"])
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.errors)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertEqual(names, ["full-epoch-2.safetensors", "full-epoch-4.safetensors", "full.safetensors"])
        XCTAssertTrue(uninterrupted.output.contains("saved epoch 4 to \(directory.path)/full-epoch-4.safetensors"), uninterrupted.output)

        // As after a crash in epoch 5: the final checkpoint is not there yet, and the run
        // continues from the one saved after epoch 4.
        let finished = directory.appendingPathComponent("finished.safetensors")
        try FileManager.default.moveItem(at: full, to: finished)
        let resumed = try run(["train", "--resume", directory.appendingPathComponent("full-epoch-4.safetensors").path])
        XCTAssertEqual(resumed.status, 0, resumed.errors)
        XCTAssertTrue(resumed.output.contains("at epoch 5, step 0"), resumed.output)
        XCTAssertFalse(resumed.output.contains("epoch 4/6 "), resumed.output)

        let expected = try SafeTensorsFile(contentsOf: finished)
        let actual = try SafeTensorsFile(contentsOf: full)
        XCTAssertEqual(expected.entries.map(\.name), actual.entries.map(\.name))
        for entry in expected.entries {
            XCTAssertEqual(try expected.floats(named: entry.name), try actual.floats(named: entry.name), entry.name)
        }

        let unsaved = try run(["train", "--save-every", "2"])
        XCTAssertEqual(unsaved.status, 2)
        XCTAssertTrue(unsaved.errors.contains("--save-every needs --save FILE"), unsaved.errors)
    }
}
