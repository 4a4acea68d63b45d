import Foundation
import ResNetKit
import XCTest

extension CommandLineTests {
    /// Kills the tool with SIGKILL while it writes a checkpoint over an existing one
    /// (`--overwrite`): the existing file must stay whole and loadable.
    func testKillDuringCheckpointWriteKeepsPreviousFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("resnet-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("model.safetensors")

        // ResNet-101's 44.5 million parameters make a 178 MB file, whose write takes long
        // enough to be caught in the act.
        let arguments = [
            "train", "--model", "resnet101", "--data", "gratings", "--input", "8x8x1", "--classes", "2", "--samples", "2",
            "--validation-samples", "0", "--epochs", "1", "--batch-size", "2", "--threads", "2", "--save", target.path,
        ]
        let first = try run(arguments)
        XCTAssertEqual(first.status, 0, first.errors)
        let before = try Data(contentsOf: target)

        let process = Process()
        process.executableURL = Self.toolURL
        process.arguments = arguments + ["--overwrite", "--seed", "7"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()

        // Wait for the temporary file, then kill the writer mid-write.
        var caught = false
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < deadline {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            if names.contains(where: { $0.hasPrefix(".model.safetensors.") && $0.hasSuffix(".tmp") }) {
                kill(process.processIdentifier, SIGKILL)
                caught = true
                break
            }
            usleep(500)
        }
        process.waitUntilExit()
        XCTAssertTrue(caught, "the write ended before it could be interrupted; the test needs a larger model")
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)

        XCTAssertEqual(try Data(contentsOf: target), before, "the previous checkpoint is unchanged")
        let checkpoint = try Checkpoint(contentsOf: target)
        XCTAssertEqual(checkpoint.architecture, "resnet101")
        _ = try checkpoint.makeModel(backend: ReferenceBackend<Float>())
    }
}
