import ResNetKit
import XCTest

final class NonFiniteLossTests: XCTestCase {
    func testNaNInputStopsFitAtItsStep() throws {
        // 8 samples of 1x4x4 in batches of 2, without shuffling effects: every sample is NaN-free
        // except sample 5, so the step that takes it must fail, and the weights stay finite.
        let shape = TensorShape(1, 4, 4)
        var inputs = (0..<8 * 16).map { Float($0 % 7) / 7 }
        inputs[5 * 16 + 3] = .nan
        let data = try InMemoryDataset(
            sampleShape: shape, inputs: inputs, labels: (0..<8).map { $0 % 2 }, classCount: 2)
        let network = Sequential {
            Conv2D(filters: 2, kernelSize: 3, padding: .same)
            ReLU()
            GlobalAveragePool2D()
            Dense(units: 2)
        }
        let backend = ReferenceBackend<Float>()
        let model = try Model(name: "tiny", network: network, inputShape: shape, backend: backend, seed: 1)
        let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: Adam(learningRate: 0.01))

        // The step holding sample 5 in epoch 1's shuffled order.
        var order = Array(0..<8)
        var generator = ResNetKit.SeededGenerator(seed: 3, stream: 1)
        order.shuffle(using: &generator)
        let expectedStep = order.firstIndex(of: 5)! / 2 + 1

        XCTAssertThrowsError(try trainer.fit(data, validation: nil, epochs: 2, batchSize: 2, seed: 3)) { error in
            guard case .nonFiniteLoss(let epoch, let step, let loss)? = error as? TrainingError else {
                return XCTFail("expected a non-finite loss, got \(error)")
            }
            XCTAssertEqual(epoch, 1)
            XCTAssertEqual(step, expectedStep)
            XCTAssertTrue(loss.isNaN)
            XCTAssertTrue("\(error)".contains("epoch 1, step \(expectedStep)"), "\(error)")
        }
        for parameter in model.parameters {
            XCTAssertTrue(try backend.values(of: parameter.value).allSatisfy(\.isFinite), parameter.name)
        }
    }
}
