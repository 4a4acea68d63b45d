import Foundation
import ResNetKit
import XCTest

extension CommandLineTests {
    /// Writes a version 1.0 NPY file of `uint8` values in C order.
    private func writeNPY(_ values: [UInt8], shape: [Int], to url: URL) throws {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (\(dims)), }"
        // Magic (6), version (2) and length (2) come first; the header ends in a newline at a
        // multiple of 64 bytes.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        bytes += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8) + values
        try Data(bytes).write(to: url)
    }

    func testPredictMatchesModelOnSavedCheckpoint() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("resnet-predict-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let checkpointURL = directory.appendingPathComponent("model.safetensors")
        let training = try run([
            "train", "--model", "resnet20", "--data", "gratings", "--input", "12x12x1", "--samples", "64",
            "--validation-samples", "0", "--epochs", "1", "--batch-size", "16", "--threads", "1", "--classes", "4",
            "--normalize", "on", "--save", checkpointURL.path,
        ])
        XCTAssertEqual(training.status, 0, training.errors)

        // Three 12x12 images with a pattern each, as N x H x W uint8.
        let pixels: [UInt8] = (0..<3 * 144).map { index in
            let value: Int = index * 37 + (index / 144) * 11
            return UInt8(value % 256)
        }
        let imagesURL = directory.appendingPathComponent("images.npy")
        try writeNPY(pixels, shape: [3, 12, 12], to: imagesURL)

        let result = try run([
            "predict", "--checkpoint", checkpointURL.path, "--input", imagesURL.path, "--top-k", "4", "--json",
            "--threads", "1",
        ])
        XCTAssertEqual(result.status, 0, result.errors)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        let predictions = try XCTUnwrap(object["predictions"] as? [[String: Any]])
        XCTAssertEqual(predictions.count, 3)

        // The same images through the checkpoint's model on the reference backend, scaled by
        // 1/255 and normalized with the statistics the checkpoint records.
        let checkpoint = try Checkpoint(contentsOf: checkpointURL)
        let model = try checkpoint.makeModel(backend: ReferenceBackend<Float>())
        let text = try XCTUnwrap(checkpoint.entries["data.normalization"])
        let normalization = try JSONDecoder().decode(Normalization.self, from: Data(text.utf8))
        let inputs = pixels.map { (Double($0) / 255 - normalization.mean[0]) / normalization.standardDeviation[0] }
        let expected = try model.predict(
            try model.backend.makeTensor(inputs.map { Float($0) }, shape: TensorShape(3, 1, 12, 12)))

        for (index, prediction) in predictions.enumerated() {
            let top = try XCTUnwrap(prediction["top"] as? [[String: Any]])
            XCTAssertEqual(top.count, 4)
            let classes = top.compactMap { $0["class"] as? Int }
            let probabilities = top.compactMap { $0["probability"] as? Double }
            XCTAssertEqual(Set(classes), Set(0..<4), "every class once")
            XCTAssertEqual(probabilities, probabilities.sorted(by: >), "most probable first")
            for (label, probability) in zip(classes, probabilities) {
                XCTAssertEqual(probability, Double(expected[index][label]), accuracy: 1e-4, "image \(index), class \(label)")
            }
        }
    }

    func testPredictRejectsMismatchedImages() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("resnet-predict-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let checkpointURL = directory.appendingPathComponent("model.safetensors")
        XCTAssertEqual(try run([
            "train", "--model", "resnet20", "--data", "gratings", "--input", "12x12x1", "--samples", "32",
            "--validation-samples", "0", "--epochs", "1", "--batch-size", "16", "--threads", "1",
            "--save", checkpointURL.path,
        ]).status, 0)

        let wrongSize = directory.appendingPathComponent("wrong.npy")
        try writeNPY([UInt8](repeating: 7, count: 2 * 100), shape: [2, 10, 10], to: wrongSize)
        let mismatch = try run(["predict", "--checkpoint", checkpointURL.path, "--input", wrongSize.path])
        XCTAssertEqual(mismatch.status, 2)
        XCTAssertTrue(mismatch.errors.contains("takes 1x12x12"), mismatch.errors)

        let truncated = directory.appendingPathComponent("truncated.npy")
        try writeNPY([UInt8](repeating: 7, count: 144), shape: [2, 12, 12], to: truncated)
        let short = try run(["predict", "--checkpoint", checkpointURL.path, "--input", truncated.path])
        XCTAssertEqual(short.status, 2)
        XCTAssertTrue(short.errors.hasPrefix("error: --input "), short.errors)

        let tooMany = try run(["predict", "--checkpoint", checkpointURL.path, "--input", wrongSize.path, "--top-k", "11"])
        XCTAssertEqual(tooMany.status, 2)
        XCTAssertTrue(tooMany.errors.contains("--top-k"), tooMany.errors)
    }
}
