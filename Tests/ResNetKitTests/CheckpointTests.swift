import Foundation
import XCTest
@testable import ResNetKit

/// Checkpoints on the reference backend: saving and restoring every parameter exactly, and
/// rejecting damaged or mismatched files without touching the target model.
final class CheckpointTests: XCTestCase {
    private var directory: URL!
    private let inputShape = TensorShape(1, 12, 12)

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func makeModel(seed: UInt64, backend: Backend = ReferenceBackend<Float>(threads: 1)) throws -> Model {
        try Architecture.tutorial.makeModel(classes: 3, inputShape: inputShape, backend: backend, seed: seed)
    }

    /// Replaces every parameter with random values, so that batch-norm statistics, biases and
    /// shifts are not their initial constants; variances stay positive.
    private func randomize(_ model: Model, seed: UInt64) throws {
        var generator = SeededGenerator(seed: seed)
        for parameter in model.parameters {
            let range: ClosedRange<Float> = parameter.role == .runningVariance ? 0.5...2 : -0.5...0.5
            let values = (0..<parameter.shape.elementCount).map { _ in Float.random(in: range, using: &generator) }
            parameter.value = try model.backend.makeTensor(values, shape: parameter.shape)
        }
    }

    private func snapshot(_ model: Model) throws -> [[Float]] {
        try model.parameters.map { try model.backend.values(of: $0.value) }
    }

    private func batch(_ model: Model, count: Int, seed: UInt64) throws -> Tensor {
        var generator = SeededGenerator(seed: seed)
        let shape = TensorShape([count] + model.inputShape.dims)
        let values = (0..<shape.elementCount).map { _ in Float.random(in: 0...1, using: &generator) }
        return try model.backend.makeTensor(values, shape: shape)
    }

    // MARK: - Round trip

    func testRoundTripRestoresParametersAndPredictions() throws {
        let source = try makeModel(seed: 1)
        try randomize(source, seed: 5)
        let url = directory.appendingPathComponent("model.safetensors")
        try Checkpoint.save(source, to: url, entries: ["training.data": "gratings"])

        let target = try makeModel(seed: 2)
        let x = try batch(source, count: 3, seed: 9)
        let expected = try source.predict(x)
        XCTAssertNotEqual(try target.predict(x), expected, "a model from another seed predicts differently before loading")

        let checkpoint = try Checkpoint(contentsOf: url)
        XCTAssertEqual(checkpoint.architecture, "tutorial")
        XCTAssertEqual(checkpoint.inputShape, inputShape)
        XCTAssertEqual(checkpoint.classCount, 3)
        XCTAssertEqual(checkpoint.batchNorm, BatchNormSettings(momentum: 0.99, epsilon: 0.001, biasedVariance: true))
        XCTAssertEqual(checkpoint.entries, ["training.data": "gratings"])
        try checkpoint.restore(into: target)

        XCTAssertEqual(try snapshot(target), try snapshot(source))
        XCTAssertEqual(try target.predict(x), expected)

        let rebuilt = try checkpoint.makeModel(backend: ReferenceBackend<Float>(threads: 1))
        XCTAssertEqual(try rebuilt.predict(x), expected)
    }

    func testSavedFileHoldsCanonicalParameterBytes() throws {
        let model = try makeModel(seed: 3)
        try randomize(model, seed: 4)
        let url = directory.appendingPathComponent("bytes.safetensors")
        try Checkpoint.save(model, to: url)

        // Read the header with JSONSerialization, not with the reader under test.
        let bytes = [UInt8](try Data(contentsOf: url))
        let length = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<8 + length])) as? [String: Any])
        let metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
        XCTAssertEqual(metadata["format"], "swift-resnet-checkpoint")
        XCTAssertEqual(metadata["format_version"], "1")
        XCTAssertEqual(metadata["architecture"], "tutorial")
        XCTAssertEqual(metadata["input_shape"], "[1, 12, 12]")
        XCTAssertEqual(metadata["classes"], "3")
        XCTAssertEqual(metadata["batch_norm_variance"], "biased")

        let data = Array(bytes[(8 + length)...])
        XCTAssertEqual(metadata["data_crc32"], String(format: "%08x", CRC32.checksum(Data(data))))
        let parameters = model.parameters
        XCTAssertEqual(Set(header.keys), Set(parameters.map(\.name) + ["__metadata__"]))
        XCTAssertEqual(data.count, 4 * model.parameterCount)

        for parameter in parameters {
            let entry = try XCTUnwrap(header[parameter.name] as? [String: Any], parameter.name)
            XCTAssertEqual(entry["dtype"] as? String, "F32")
            XCTAssertEqual(entry["shape"] as? [Int], parameter.shape.dims, parameter.name)
        }
        let kernel = try XCTUnwrap(header["residual_block_1.conv2d_1.kernel"] as? [String: Any])
        XCTAssertEqual(kernel["shape"] as? [Int], [64, 64, 3, 3], "OIHW")
        let offsets = try XCTUnwrap(kernel["data_offsets"] as? [Int])
        let stored = stride(from: offsets[0], to: offsets[1], by: 4).map { start in
            Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[start + $1]) << (8 * $1) })
        }
        let parameter = try XCTUnwrap(parameters.first { $0.name == "residual_block_1.conv2d_1.kernel" })
        XCTAssertEqual(stored, try model.backend.values(of: parameter.value))
    }

    func testStateTensorsAndEntriesAreKeptApart() throws {
        let model = try makeModel(seed: 1)
        let url = directory.appendingPathComponent("state.safetensors")
        let moment: [Float] = [0.25, -0.5, 1]
        try Checkpoint.save(model, to: url, stateTensors: [("optimizer.m.dense.bias", TensorShape(3), moment)])

        let checkpoint = try Checkpoint(contentsOf: url)
        XCTAssertEqual(checkpoint.stateTensorNames, ["optimizer.m.dense.bias"])
        XCTAssertEqual(try checkpoint.stateTensor(named: "optimizer.m.dense.bias").values, moment)
        try checkpoint.restore(into: try makeModel(seed: 2))

        let other = directory.appendingPathComponent("other.safetensors")
        XCTAssertThrowsError(try Checkpoint.save(model, to: other, stateTensors: [("m.dense.bias", TensorShape(3), moment)])) {
            XCTAssertEqual(($0 as? CheckpointError)?.kind, .invalidEntry)
        }
        XCTAssertThrowsError(try Checkpoint.save(model, to: other, entries: ["architecture": "resnet18"])) {
            XCTAssertEqual(($0 as? CheckpointError)?.kind, .invalidEntry)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: other.path), "a rejected save writes nothing")
    }

    func testSaveKeepsAnExistingFile() throws {
        let url = directory.appendingPathComponent("keep.safetensors")
        try Data("a user's file".utf8).write(to: url)
        XCTAssertThrowsError(try Checkpoint.save(try makeModel(seed: 1), to: url)) {
            XCTAssertEqual(($0 as? FileWriteError)?.kind, .exists)
        }
        XCTAssertEqual(try Data(contentsOf: url), Data("a user's file".utf8))
    }

    // MARK: - Damaged and mismatched files

    /// Rewrites the header of a saved file through JSONSerialization, keeping the data.
    private func rewriteHeader(_ bytes: [UInt8], _ change: (inout [String: Any]) -> Void) throws -> [UInt8] {
        let length = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        var header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<8 + length])) as? [String: Any])
        change(&header)
        var json = [UInt8](try JSONSerialization.data(withJSONObject: header))
        json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
        let newLength = (0..<8).map { UInt8(truncatingIfNeeded: json.count >> (8 * $0)) }
        return newLength + json + Array(bytes[(8 + length)...])
    }

    private func changeMetadata(_ key: String, to value: String?) -> (inout [String: Any]) -> Void {
        { header in
            var metadata = header["__metadata__"] as! [String: String]
            metadata[key] = value
            header["__metadata__"] = metadata
        }
    }

    private func changeTensor(_ name: String, _ change: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
        { header in
            var entry = header[name] as! [String: Any]
            change(&entry)
            header[name] = entry
        }
    }

    func testDamagedOrMismatchedFilesLeaveModelUnchanged() throws {
        let source = try makeModel(seed: 1)
        try randomize(source, seed: 6)
        let url = directory.appendingPathComponent("good.safetensors")
        try Checkpoint.save(source, to: url)
        let good = [UInt8](try Data(contentsOf: url))
        let length = (0..<8).reduce(0) { $0 | Int(good[$1]) << (8 * $1) }

        var flipped = good
        flipped[8 + length + 1000] ^= 0x01
        var longHeader = good
        longHeader[5] = 0x01

        enum Expected {
            case file(SafeTensorsError.Kind)
            case checkpoint(CheckpointError.Kind)
        }
        let cases: [(String, [UInt8], Expected, String)] = [
            ("truncated", Array(good.dropLast(100)), .file(.invalidOffsets), "truncated"),
            ("header length too large", longHeader, .file(.truncated), "header length"),
            ("bad JSON", Array(good[0..<8]) + [UInt8(ascii: "X")] + Array(good[9...]), .file(.invalidHeader), "JSON"),
            ("offsets out of range",
             try rewriteHeader(good, changeTensor("dense.bias") { $0["data_offsets"] = [0, 1 << 30] }), .file(.invalidOffsets), "dense.bias"),
            ("checksum mismatch", flipped, .checkpoint(.checksumMismatch), "CRC-32"),
            ("wrong architecture", try rewriteHeader(good, changeMetadata("architecture", to: "resnet20")),
             .checkpoint(.architectureMismatch), "resnet20"),
            ("wrong input shape", try rewriteHeader(good, changeMetadata("input_shape", to: "[1, 16, 16]")),
             .checkpoint(.architectureMismatch), "1x16x16"),
            ("wrong shape", try rewriteHeader(good, changeTensor("conv2d.kernel") { $0["shape"] = [64, 7, 7, 1] }),
             .checkpoint(.shapeMismatch), "conv2d.kernel"),
            ("renamed parameter",
             try rewriteHeader(good) { header in header["dense.renamed"] = header.removeValue(forKey: "dense.bias") },
             .checkpoint(.missingParameter), "dense.bias"),
            ("not a checkpoint", try rewriteHeader(good, changeMetadata("format", to: nil)), .checkpoint(.notACheckpoint), "swift-resnet-checkpoint"),
            ("newer version", try rewriteHeader(good, changeMetadata("format_version", to: "2")), .checkpoint(.unsupportedVersion), "version 2"),
            ("other batch norm", try rewriteHeader(good, changeMetadata("batch_norm_epsilon", to: "1e-05")),
             .checkpoint(.architectureMismatch), "epsilon"),
        ]

        let target = try makeModel(seed: 2)
        let before = try snapshot(target)
        let tensorsBefore = target.parameters.map(\.value)
        for (name, bytes, expected, mentions) in cases {
            let damaged = directory.appendingPathComponent("\(name).safetensors")
            try Data(bytes).write(to: damaged)
            XCTAssertThrowsError(try Checkpoint(contentsOf: damaged).restore(into: target), name) { error in
                switch (expected, error) {
                case (.file(let kind), let error as SafeTensorsError):
                    XCTAssertEqual(error.kind, kind, "\(name): \(error)")
                case (.checkpoint(let kind), let error as CheckpointError):
                    XCTAssertEqual(error.kind, kind, "\(name): \(error)")
                default:
                    XCTFail("\(name): expected \(expected), got \(error)")
                }
                XCTAssertTrue("\(error)".hasPrefix(damaged.path + ": "), "\(name) names the file: \(error)")
                XCTAssertTrue("\(error)".contains(mentions), "\(name) mentions \(mentions): \(error)")
            }
            XCTAssertTrue(zip(target.parameters.map(\.value), tensorsBefore).allSatisfy { $0 === $1 }, "\(name): no tensor replaced")
        }
        XCTAssertEqual(try snapshot(target), before)
    }

    func testRestoreIntoOtherArchitectureFails() throws {
        let url = directory.appendingPathComponent("tutorial.safetensors")
        try Checkpoint.save(try makeModel(seed: 1), to: url)
        let checkpoint = try Checkpoint(contentsOf: url)

        let backend = ReferenceBackend<Float>(threads: 1)
        let otherClasses = try Architecture.tutorial.makeModel(classes: 4, inputShape: inputShape, backend: backend, seed: 1)
        XCTAssertThrowsError(try checkpoint.restore(into: otherClasses)) { error in
            XCTAssertEqual((error as? CheckpointError)?.kind, .architectureMismatch)
            XCTAssertTrue("\(error)".contains("3 classes"), "\(error)")
        }
        let resnet = try Architecture.resnet20.makeModel(classes: 3, inputShape: inputShape, backend: backend, seed: 1)
        XCTAssertThrowsError(try checkpoint.restore(into: resnet)) { error in
            XCTAssertEqual((error as? CheckpointError)?.kind, .architectureMismatch)
            XCTAssertTrue("\(error)".contains("tutorial"), "\(error)")
        }
    }

    // MARK: - Evaluation

    func testClassificationReportMatchesPredictions() throws {
        let model = try makeModel(seed: 1)
        try randomize(model, seed: 8)
        let data = try SyntheticData.gratings(samples: 14, sampleShape: inputShape, classes: 3, seed: 3)
        let report = try model.evaluateClassifier(data, batchSize: 4)

        // Independently: logits one sample at a time, cross-entropy by log-sum-exp in Double.
        var confusion = [[Int]](repeating: [0, 0, 0], count: 3)
        var loss = 0.0
        for index in 0..<data.count {
            let x = try model.backend.makeTensor(Array(data.inputs[index * 144..<(index + 1) * 144]), shape: TensorShape(1, 1, 12, 12))
            let logits = try model.backend.values(of: try model.forward(x)).map(Double.init)
            let label = data.labels![index]
            let predicted = logits.indices.max { logits[$0] < logits[$1] }!
            confusion[label][predicted] += 1
            let largest = logits.max()!
            loss += largest + log(logits.map { exp($0 - largest) }.reduce(0, +)) - logits[label]
        }
        XCTAssertEqual(report.confusion, confusion)
        XCTAssertEqual(report.loss, loss / Double(data.count), accuracy: 1e-6 * max(1, abs(report.loss)))
        XCTAssertEqual(report.sampleCount, 14)
        XCTAssertEqual(report.accuracy, Double((0..<3).reduce(0) { $0 + confusion[$1][$1] }) / 14)
        XCTAssertEqual(report.classSampleCounts, confusion.map { $0.reduce(0, +) })
        for label in 0..<3 {
            XCTAssertEqual(report.classAccuracies[label]!, Double(confusion[label][label]) / Double(confusion[label].reduce(0, +)))
        }
    }
}
