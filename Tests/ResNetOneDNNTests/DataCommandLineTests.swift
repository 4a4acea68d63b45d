import Foundation
import XCTest

/// `resnet train --data` on NPZ files written here, byte by byte.
extension CommandLineTests {
    func testTrainsOneEpochOnNPZFile() throws {
        let path = try writeTemporaryFile("tiny.npz", tinyArchive(labels: [0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1]))
        defer { try? FileManager.default.removeItem(atPath: path) }

        let result = try run([
            "train", "--data", "npz:\(path)", "--model", "resnet20", "--epochs", "1", "--batch-size", "8", "--threads", "2",
        ])
        XCTAssertEqual(result.status, 0, result.errors)
        let lines = result.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("input: 8x8x1"), result.output)
        XCTAssertTrue(
            lines.contains { $0.hasPrefix("data: npz:\(path), 16 training and 4 validation samples (the test set), 2 classes") },
            result.output)
        let epochs = lines.filter { $0.hasPrefix("epoch 1/1 ") }
        XCTAssertEqual(epochs.count, 1, result.output)
        XCTAssertTrue(epochs.first?.contains("val_accuracy=") ?? false, result.output)

        let split = try run([
            "train", "--data", "npz:\(path)", "--model", "resnet20", "--epochs", "1", "--batch-size", "8",
            "--validation-split", "0.25", "--classes", "3",
        ])
        XCTAssertEqual(split.status, 0, split.errors)
        XCTAssertTrue(
            split.output.contains("12 training and 4 validation samples (the last 0.25 of the training samples), 3 classes"),
            split.output)
    }

    func testEvaluateUsesRecordedNPZKeys() throws {
        let keys = "images,labels,test_images,test_labels"
        let path = try writeTemporaryFile(
            "renamed.npz", tinyArchive(labels: [0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1], keys: keys))
        let checkpoint = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString).safetensors").path
        defer {
            for file in [path, checkpoint] {
                try? FileManager.default.removeItem(atPath: file)
            }
        }

        let training = try run([
            "train", "--data", "npz:\(path)", "--npz-keys", keys, "--model", "resnet20", "--epochs", "1",
            "--batch-size", "8", "--threads", "2", "--save", checkpoint,
        ])
        XCTAssertEqual(training.status, 0, training.errors)
        let epoch = try XCTUnwrap(training.output.split(separator: "\n").last { $0.hasPrefix("epoch 1/1 ") }, training.output)
        let validationLoss = try XCTUnwrap(epoch.split(separator: " ").first { $0.hasPrefix("val_loss=") }).dropFirst(9)

        // Without --data, and with the same file named again, evaluate reads the run's arrays.
        for extra in [[], ["--data", "npz:\(path)"]] {
            let evaluation = try run(["evaluate", "--checkpoint", checkpoint, "--threads", "2"] + extra)
            XCTAssertEqual(evaluation.status, 0, "\(extra): \(evaluation.errors)")
            XCTAssertTrue(evaluation.output.contains("loss=\(validationLoss) "), "\(extra): \(evaluation.output)")
            XCTAssertTrue(evaluation.output.contains(" samples=4"), evaluation.output)
        }

        // Keys given on the command line replace the recorded ones, and options for npz files
        // are rejected for other data.
        let cases: [([String], [String])] = [
            (["--npz-keys", "x_train,y_train,x_test,y_test"], ["x_train", path]),
            (["--npz-keys", "a,b"], ["--npz-keys", "four comma-separated"]),
            (["--data", "gratings", "--layout", "channels-last"], ["--layout", "npz:FILE"]),
        ]
        for (extra, fragments) in cases {
            let result = try run(["evaluate", "--checkpoint", checkpoint] + extra)
            XCTAssertEqual(result.status, 2, "\(extra): \(result.errors)")
            for fragment in fragments {
                XCTAssertTrue(result.errors.contains(fragment), "\(extra) should name \(fragment): \(result.errors)")
            }
        }
    }

    func testBadDataExitsWithUsageError() throws {
        let badLabels = try writeTemporaryFile("bad-labels.npz", tinyArchive(labels: [0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 7]))
        defer { try? FileManager.default.removeItem(atPath: badLabels) }

        let cases: [([String], [String])] = [
            (["train", "--data", "mnist"], ["--data", "'mnist'", "idx:DIR"]),
            (["train", "--data", "npz:/nonexistent/mnist.npz"], ["/nonexistent/mnist.npz", "does not exist"]),
            (["train", "--data", "idx:/nonexistent"], ["/nonexistent", "is not a directory"]),
            (["train", "--data", "npz:\(badLabels)", "--classes", "5"], [badLabels, "label 7", "class count is 5"]),
            (["train", "--data", "npz:\(badLabels)", "--input", "32x32x3"], ["--input 32x32x3", "8x8x1"]),
            (["train", "--data", "npz:\(badLabels)", "--samples", "17"], ["--samples 17", "16 training samples"]),
            (["train", "--data", "gratings", "--layout", "channels-last"], ["--layout", "npz:FILE"]),
        ]
        for (arguments, fragments) in cases {
            let result = try run(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.errors)")
            XCTAssertTrue(result.errors.hasPrefix("error: "), "\(arguments): \(result.errors)")
            XCTAssertEqual(result.errors.split(separator: "\n").count, 1, "one line: \(result.errors)")
            for fragment in fragments {
                XCTAssertTrue(result.errors.contains(fragment), "\(arguments) should name \(fragment): \(result.errors)")
            }
        }
    }

    func testHelpDescribesDataFlags() throws {
        let result = try run(["train", "--help"])
        XCTAssertEqual(result.status, 0)
        for text in ["idx:DIR", "npz:FILE", "--validation-split F", "--layout channels-last|channels-first", "--npz-keys"] {
            XCTAssertTrue(result.output.contains(text), "\(text) missing from help")
        }
        // The help wraps lines, so compare with the words joined by single spaces.
        let words = result.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for text in [
            "file data takes them from its images", "for file data, the largest label plus one",
            "for file data, the first N of the training set",
        ] {
            XCTAssertTrue(words.contains(text), "'\(text)' missing from help")
        }
    }

    // MARK: - Files

    private func writeTemporaryFile(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Builds a Keras-style archive of 8x8 uint8 images, brighter for class 1: one training
    /// image per entry of `labels`, and 4 test images, under the array names `keys`.
    private func tinyArchive(labels: [UInt8], keys: String = "x_train,y_train,x_test,y_test") -> [UInt8] {
        let testLabels: [UInt8] = [0, 1, 1, 0]
        func images(_ labels: [UInt8]) -> [UInt8] {
            labels.flatMap { label in (0..<64).map { UInt8(truncatingIfNeeded: $0 + (label == 1 ? 150 : 20)) } }
        }
        let names = keys.split(separator: ",").map { String($0) + ".npy" }
        return storedZip([
            (names[0], npy("|u1", [labels.count, 8, 8], images(labels))),
            (names[1], npy("|u1", [labels.count], labels)),
            (names[2], npy("|u1", [4, 8, 8], images(testLabels))),
            (names[3], npy("|u1", [4], testLabels)),
        ])
    }

    /// Builds an NPY version 1.0 file, with the header padded so the data starts at 64 bytes.
    private func npy(_ descr: String, _ shape: [Int], _ payload: [UInt8]) -> [UInt8] {
        let axes = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(axes), }".utf8)
        header += [UInt8](repeating: 0x20, count: 63 - (10 + header.count) % 64) + [0x0a]
        return [0x93] + Array("NUMPY".utf8) + [1, 0] + littleEndian(UInt16(header.count)) + header + payload
    }

    /// Builds a zip archive of stored members with their CRC-32s.
    private func storedZip(_ members: [(name: String, contents: [UInt8])]) -> [UInt8] {
        var archive: [UInt8] = []
        var directory: [UInt8] = []
        for (name, contents) in members {
            let nameBytes = Array(name.utf8)
            let fields = littleEndian(UInt16(20)) + littleEndian(UInt16(0)) + littleEndian(UInt16(0))
                + littleEndian(UInt32(0)) + littleEndian(crc32(contents)) + littleEndian(UInt32(contents.count))
                + littleEndian(UInt32(contents.count)) + littleEndian(UInt16(nameBytes.count)) + littleEndian(UInt16(0))
            directory += littleEndian(UInt32(0x0201_4b50)) + littleEndian(UInt16(20)) + fields
                + [UInt8](repeating: 0, count: 10) + littleEndian(UInt32(archive.count)) + nameBytes
            archive += littleEndian(UInt32(0x0403_4b50)) + fields + nameBytes + contents
        }
        let end = littleEndian(UInt32(0x0605_4b50)) + littleEndian(UInt32(0)) + littleEndian(UInt16(members.count))
            + littleEndian(UInt16(members.count)) + littleEndian(UInt32(directory.count))
            + littleEndian(UInt32(archive.count)) + littleEndian(UInt16(0))
        return archive + directory + end
    }

    private func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian, Array.init)
    }

    /// Computes CRC-32 with the reflected polynomial 0xEDB88320, as zip defines it.
    private func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 {
                crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1
            }
        }
        return ~crc
    }
}
