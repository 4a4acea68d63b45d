import Foundation
import ResNetKit
import XCTest

@testable import ResNetOneDNN

/// Checkpoints of models whose kernels sit in oneDNN's blocked layouts: the file must hold
/// canonical values, and a model restored from it must predict exactly as the original.
final class CheckpointTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("onednn-checkpoint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testRoundTripOnBothBackendsPredictsIdentically() throws {
        let backends: [Backend] = [try OneDNNBackend(threads: 2), ReferenceBackend<Float>(threads: 2)]
        for backend in backends {
            let shape = TensorShape(3, 16, 16)
            let source = try Architecture.resnet20.makeModel(classes: 4, inputShape: shape, backend: backend, seed: 1)
            var seed: UInt64 = 100
            var canonical: [String: [Float]] = [:]
            for parameter in source.parameters {
                seed += 1
                let range: ClosedRange<Float> = parameter.role == .runningVariance ? 0.5...2 : -0.5...0.5
                let values = randomValues(parameter.shape.elementCount, in: range, seed: seed)
                canonical[parameter.name] = values
                parameter.value = try backend.makeTensor(values, shape: parameter.shape)
            }
            // Move the kernels into the backend's preferred layout, as training does.
            try source.prepare(batch: 4)

            let x = try backend.makeTensor(randomValues(4 * shape.elementCount, in: 0...1, seed: 7), shape: TensorShape([4] + shape.dims))
            let expected = try source.predict(x)
            let url = directory.appendingPathComponent("\(backend.name).safetensors")
            try Checkpoint.save(source, to: url)

            let file = try SafeTensorsFile(contentsOf: url)
            for name in ["conv2d.kernel", "residual_block_3.shortcut.conv2d.kernel", "dense.kernel"] {
                XCTAssertEqual(try file.floats(named: name), canonical[name], "\(backend.name): \(name) is stored in canonical order")
            }

            let target = try Architecture.resnet20.makeModel(classes: 4, inputShape: shape, backend: backend, seed: 2)
            XCTAssertNotEqual(try target.predict(x), expected, "\(backend.name): another seed predicts differently")
            try Checkpoint(contentsOf: url).restore(into: target)
            try target.prepare(batch: 4)
            XCTAssertEqual(try target.predict(x), expected, "\(backend.name): same values in the same layout")
        }
    }
}
