import Foundation
import XCTest

extension CommandLineTests {
    func testDryRunPrintsPlanWithoutTraining() throws {
        let result = try run([
            "train", "--model", "resnet20", "--data", "gratings", "--input", "32x32x3", "--samples", "256",
            "--validation-samples", "0", "--batch-size", "64", "--dry-run",
        ])
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(result.output.contains("memory plan (estimate, float32):"), result.output)
        for term in ["parameters", "gradients", "optimizer state", "activations", "workspace", "data", "total"] {
            XCTAssertTrue(result.output.contains("\n  \(term) "), "\(term) missing: \(result.output)")
        }
        // 256 samples of 3x32x32 float32.
        let dataLine = result.output.split(separator: "\n").first { $0.hasPrefix("  data ") }
        XCTAssertEqual(dataLine?.split(separator: " ").suffix(2).joined(separator: " "), "3.1 MB", result.output)
        XCTAssertFalse(result.output.contains("epoch 1/"), "a dry run trains nothing")
    }

    func testDryRunRejectsPlanAboveMemory() throws {
        let result = try run([
            "train", "--model", "resnet50", "--input", "224x224x3", "--samples", "8", "--validation-samples", "0",
            "--batch-size", "8192", "--dry-run",
        ])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.output.contains("memory plan (estimate, float32):"), "the plan is shown first")
        XCTAssertTrue(result.errors.contains("use --batch-size "), result.errors)
    }
}
