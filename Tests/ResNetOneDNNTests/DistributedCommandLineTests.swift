import Foundation
import ResNetKit
import XCTest

/// `resnet train --distributed` started by MPICH's `mpiexec`, as a user starts it.
final class DistributedCommandLineTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.mpiexec.path) else {
            throw XCTSkip("\(Self.mpiexec.path) not found; scripts/install-dependencies.sh installs MPICH")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("resnet-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let directory {
            try? FileManager.default.removeItem(at: directory)
        }
    }

    private static let mpiexec = URL(fileURLWithPath: "/usr/bin/mpiexec")

    /// A run in progress, with its output going to files that the test reads while it runs.
    private struct Launch {
        let process: Process
        let output: URL
        let errors: URL

        var outputText: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        var errorText: String { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }

        /// Waits up to `seconds` for the output to contain `marker`, and returns whether it did.
        func waitFor(_ marker: String, seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if outputText.contains(marker) {
                    return true
                }
                guard process.isRunning else { return outputText.contains(marker) }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return false
        }

        /// Returns the process IDs of the ranks, read from the `ranks:` line of the configuration.
        func rankProcesses() -> [Int32] {
            guard let line = outputText.split(separator: "\n").first(where: { $0.hasPrefix("ranks: ") }) else { return [] }
            return line.components(separatedBy: "pid ").dropFirst().compactMap { Int32($0.prefix { $0.isNumber }) }
        }
    }

    private func launch(ranks: Int?, _ arguments: [String]) throws -> Launch {
        let name = UUID().uuidString
        let output = directory.appendingPathComponent("\(name).out")
        let errors = directory.appendingPathComponent("\(name).err")
        for file in [output, errors] {
            XCTAssertTrue(FileManager.default.createFile(atPath: file.path, contents: nil), file.path)
        }
        let process = Process()
        if let ranks {
            process.executableURL = Self.mpiexec
            process.arguments = ["-n", String(ranks), CommandLineTests.toolURL.path] + arguments
        } else {
            process.executableURL = CommandLineTests.toolURL
            process.arguments = arguments
        }
        process.currentDirectoryURL = directory
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        return Launch(process: process, output: output, errors: errors)
    }

    /// Runs to the end and returns the exit status, output and errors.
    private func run(ranks: Int?, _ arguments: [String]) throws -> CommandLineTests.Run {
        let launch = try launch(ranks: ranks, arguments)
        launch.process.waitUntilExit()
        return CommandLineTests.Run(status: launch.process.terminationStatus, output: launch.outputText, errors: launch.errorText)
    }

    /// Returns the arguments of a long classification job, for the tests that stop a rank.
    private func longJob(_ extra: [String] = []) -> [String] {
        [
            "train", "--model", "resnet20", "--data", "gratings", "--input", "16x16x1", "--samples", "4096",
            "--validation-samples", "0", "--epochs", "50", "--batch-size", "32", "--threads", "1", "--distributed",
        ] + extra
    }

    private func regressionJob(samples: Int, epochs: Int, save: String) -> [String] {
        [
            "train", "--model", "mlp", "--data", "regression", "--samples", String(samples), "--validation-samples", "64",
            "--epochs", String(epochs), "--batch-size", "32", "--threads", "1", "--save", save,
        ]
    }

    private func largestDifference(_ first: String, _ second: String) throws -> Float {
        let expected = try SafeTensorsFile(contentsOf: directory.appendingPathComponent(first))
        let actual = try SafeTensorsFile(contentsOf: directory.appendingPathComponent(second))
        XCTAssertEqual(expected.entries.map(\.name), actual.entries.map(\.name))
        var largest: Float = 0
        for entry in expected.entries {
            for (want, got) in zip(try expected.floats(named: entry.name), try actual.floats(named: entry.name)) {
                largest = max(largest, abs(want - got))
            }
        }
        return largest
    }

    func testTwoRanksWithoutBatchNormMatchOneProcess() throws {
        // 160 samples in batches of 32: 5 steps, each rank taking 16 samples of every batch. The
        // residual MLP has no batch norm, so the summed gradients equal one process's, and the
        // weights differ only by the rounding of the sums: at most 1e-6 here.
        let alone = try run(ranks: nil, regressionJob(samples: 160, epochs: 1, save: "alone.safetensors"))
        XCTAssertEqual(alone.status, 0, alone.errors)
        let pair = try run(ranks: 2, regressionJob(samples: 160, epochs: 1, save: "pair.safetensors") + ["--distributed"])
        XCTAssertEqual(pair.status, 0, pair.errors)

        XCTAssertTrue(pair.output.contains("distributed: 2 ranks over MPI, 16 samples per rank per step"), pair.output)
        XCTAssertEqual(pair.output.split(separator: "\n").filter { $0.hasPrefix("epoch 1/1 ") }.count, 1, "rank 0 alone prints")
        XCTAssertLessThan(try largestDifference("alone.safetensors", "pair.safetensors"), 1e-6)
        let saved = try Checkpoint(contentsOf: directory.appendingPathComponent("pair.safetensors"))
        XCTAssertEqual(saved.entries["training.ranks"], "2")
        XCTAssertNil(try Checkpoint(contentsOf: directory.appendingPathComponent("alone.safetensors")).entries["training.ranks"])
    }

    func testBatchNormRanksKeepIdenticalWeights() throws {
        let result = try run(ranks: 2, [
            "train", "--model", "resnet20", "--data", "gratings", "--input", "16x16x1", "--samples", "128",
            "--validation-samples", "32", "--epochs", "2", "--batch-size", "32", "--threads", "1", "--distributed",
            "--check-replicas",
        ])
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(
            result.output.contains("replicas: the weights of all 2 ranks were identical at each of 8 checks"), result.output)
        XCTAssertTrue(result.output.contains("epoch 2/2 "), result.output)
    }

    /// Waits until `job` has started training, a second into it, and returns its ranks'
    /// process IDs, asserting that there are two.
    private func trainingRanks(of job: Launch) -> [Int32] {
        XCTAssertTrue(job.waitFor("normalization:", seconds: 60), job.outputText + job.errorText)
        let ranks = job.rankProcesses()
        XCTAssertEqual(ranks.count, 2, job.outputText)
        Thread.sleep(forTimeInterval: 1)
        return ranks
    }

    func testKilledRankEndsTheRun() throws {
        let job = try launch(ranks: 2, longJob())
        defer { job.process.terminate() }
        let ranks = trainingRanks(of: job)
        guard ranks.count == 2 else { return }

        let killed = Date()
        kill(ranks[1], SIGKILL)
        job.process.waitUntilExit()
        XCTAssertNotEqual(job.process.terminationStatus, 0)
        XCTAssertLessThan(Date().timeIntervalSince(killed), 30, "the other rank stops within the timeout")
        // mpiexec's banner names the first rank it saw end, which may be rank 0, ended by
        // mpiexec itself a moment after rank 1 died.
        XCTAssertTrue(ranks.contains { job.outputText.contains("PID \($0) RUNNING AT") }, "mpiexec names a rank: " + job.outputText)
        XCTAssertFalse(job.outputText.contains("done:"))
    }

    func testStalledRankTimesOut() throws {
        let job = try launch(ranks: 2, longJob(["--collective-timeout", "3"]))
        defer { job.process.terminate() }
        let ranks = trainingRanks(of: job)
        guard ranks.count == 2 else { return }

        let stopped = Date()
        kill(ranks[1], SIGSTOP)
        defer { kill(ranks[1], SIGKILL) }
        job.process.waitUntilExit()
        let waited = Date().timeIntervalSince(stopped)
        XCTAssertNotEqual(job.process.terminationStatus, 0)
        XCTAssertGreaterThan(waited, 2.5)
        XCTAssertLessThan(waited, 30)
        XCTAssertTrue(job.errorText.contains("error: rank 0: waited 3 s for the other ranks at the sum of the "), job.errorText)
        XCTAssertTrue(job.errorText.contains("a rank has died, stalled or failed to start"), job.errorText)
    }

    func testInterruptedRunResumesOnAnyRankCount() throws {
        // About a second per epoch on two ranks, so SIGINT after the first epoch's line lands
        // during a later epoch.
        let job = try launch(ranks: 2, regressionJob(samples: 60_000, epochs: 6, save: "part.safetensors") + ["--distributed"])
        XCTAssertTrue(job.waitFor("epoch 1/6 ", seconds: 120), job.outputText + job.errorText)
        job.process.interrupt()
        job.process.waitUntilExit()
        // The ranks exit with 130, but MPICH's mpiexec, which forwarded the signal to them,
        // exits with 130 or 0 depending on timing.
        XCTAssertTrue([0, 130].contains(job.process.terminationStatus), job.outputText + job.errorText)
        XCTAssertTrue(job.outputText.contains("interrupted by SIGINT after step "), job.outputText)

        let prefix = "resume with: mpiexec -n 2 resnet train --resume "
        let line = try XCTUnwrap(job.outputText.split(separator: "\n").first { $0.hasPrefix(prefix) }, job.outputText)
        let saved = String(line.dropFirst(prefix.count).prefix { $0 != " " })
        XCTAssertTrue(FileManager.default.fileExists(atPath: saved), saved)

        // On two ranks again, the run ends bit for bit where an uninterrupted one does, because
        // a sum of two values does not depend on their order.
        let again = try run(ranks: 2, ["train", "--resume", saved, "--distributed"])
        XCTAssertEqual(again.status, 0, again.errors)
        let whole = try run(ranks: 2, regressionJob(samples: 60_000, epochs: 6, save: "whole.safetensors") + ["--distributed"])
        XCTAssertEqual(whole.status, 0, whole.errors)
        XCTAssertEqual(try largestDifference("whole.safetensors", "part.safetensors"), 0)

        // On one process the sums round differently, and over 11,000 Adam steps the weights
        // drift apart, but the run still ends at the noise floor, an MSE of 0.01.
        try FileManager.default.moveItem(
            at: directory.appendingPathComponent("part.safetensors"), to: directory.appendingPathComponent("two.safetensors"))
        let alone = try run(ranks: nil, ["train", "--resume", saved])
        XCTAssertEqual(alone.status, 0, alone.errors)
        let last = try XCTUnwrap(alone.output.split(separator: "\n").first { $0.hasPrefix("epoch 6/6 ") }, alone.output)
        let validationLoss = try XCTUnwrap(
            last.split(separator: " ").first { $0.hasPrefix("val_loss=") }.flatMap { Double($0.dropFirst("val_loss=".count)) })
        XCTAssertEqual(validationLoss, 0.01, accuracy: 0.002, String(last))
    }

    /// Starts one rank with `first` and another with `second`, as `mpiexec` does for ranks on
    /// machines whose files differ, and returns the exit status, the errors and the seconds taken.
    private func runPair(_ first: [String], _ second: [String]) throws -> (status: Int32, errors: String, seconds: Double) {
        let tool = CommandLineTests.toolURL.path
        let process = Process()
        process.executableURL = Self.mpiexec
        process.arguments = ["-n", "1", tool] + first + [":", "-n", "1", tool] + second
        process.currentDirectoryURL = directory
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        let started = Date()
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text, Date().timeIntervalSince(started))
    }

    func testRankFailingAtStartEndsTheRun() throws {
        // Rank 1 cannot read its --resume file. MPI starts before that is read, so the error
        // ends rank 0 through MPI_Abort instead of leaving it waiting for rank 1.
        let missing = directory.appendingPathComponent("missing.safetensors").path
        let result = try runPair(
            regressionJob(samples: 64, epochs: 1, save: "free.safetensors") + ["--distributed"],
            ["train", "--resume", missing, "--distributed"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertLessThan(result.seconds, 60)
        XCTAssertTrue(result.errors.contains("error: rank 1: --resume \(missing)"), result.errors)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("free.safetensors").path))
    }

    func testRanksWithDifferentDataAreRejected() throws {
        // The same job except for the seed, which draws other samples.
        let job = regressionJob(samples: 64, epochs: 1, save: "free.safetensors") + ["--distributed"]
        let result = try runPair(job, job + ["--seed", "2"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.errors.contains("the data differs between ranks (rank 0: 64 training and 64 validation samples; rank 1: 64 training"), result.errors)
    }

    func testOtherCommandsRefuseSeveralProcesses() throws {
        let result = try run(ranks: 2, ["summary", "--model", "resnet20", "--input", "32x32x3"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.errors.contains("mpiexec started 2 processes, but 'resnet summary' runs in one"), result.errors)
        XCTAssertFalse(result.output.contains("total parameters"), result.output)
    }

    func testInvalidDistributedOptions() throws {
        let uneven = try run(ranks: 2, ["train", "--distributed", "--batch-size", "33", "--samples", "64"])
        XCTAssertNotEqual(uneven.status, 0)
        // Every rank finds the error, and the first to report it ends the others, which may
        // then not get to print theirs.
        XCTAssertTrue(
            uneven.errors.contains("--batch-size 33 does not split evenly among 2 ranks; use a multiple of 2, such as 32 or 34"),
            uneven.errors)

        let undistributed = try run(ranks: 2, ["train", "--samples", "64"])
        XCTAssertNotEqual(undistributed.status, 0)
        XCTAssertTrue(undistributed.errors.contains("mpiexec started 2 processes, but without --distributed"), undistributed.errors)

        let stray = try run(ranks: nil, ["train", "--check-replicas"])
        XCTAssertEqual(stray.status, 2)
        XCTAssertTrue(stray.errors.contains("--check-replicas applies to distributed training"), stray.errors)

        let timeout = try run(ranks: nil, ["train", "--distributed", "--collective-timeout", "0"])
        XCTAssertEqual(timeout.status, 2)
        XCTAssertTrue(timeout.errors.contains("--collective-timeout"), timeout.errors)
    }
}
