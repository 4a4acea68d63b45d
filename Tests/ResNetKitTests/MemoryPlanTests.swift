import ResNetKit
import XCTest

final class MemoryPlanTests: XCTestCase {
    /// conv 3x3 to 2 channels on 1x4x4 ('same'), ReLU, global average pooling, dense to 3.
    private func makeModel() throws -> Model {
        let network = Sequential {
            Conv2D(filters: 2, kernelSize: 3, padding: .same)
            ReLU()
            GlobalAveragePool2D()
            Dense(units: 3)
        }
        return try Model(
            name: "tiny", network: network, inputShape: TensorShape(1, 4, 4), backend: ReferenceBackend<Float>(), seed: 1)
    }

    func testTermsByHand() throws {
        let plan = MemoryPlan(model: try makeModel(), batch: 5, stateTensorsPerParameter: 2, dataBytes: 1000)

        // Parameters: conv 2*1*3*3 + 2 bias, dense 2*3 + 3 bias.
        XCTAssertEqual(plan.parameters, 29 * 4)
        XCTAssertEqual(plan.gradients, 29 * 4)
        XCTAssertEqual(plan.optimizerState, 2 * 29 * 4)
        // Outputs per image: conv 32, ReLU 32, pooling 2, dense 3; input 16.
        XCTAssertEqual(plan.activations, (32 + 32 + 2 + 3 + 16) * 5 * 4)
        XCTAssertEqual(plan.workspace, (32 + 32) * 5 * 4)
        XCTAssertEqual(plan.data, 1000)
        XCTAssertEqual(plan.total, 116 + 116 + 232 + 1700 + 1280 + 1000)
    }

    func testLargestBatchFitsTheLimit() throws {
        let model = try makeModel()
        // Fixed part: 4 * 29 * 4 bytes plus 1000 of data; each sample adds (85 + 64) * 4 bytes.
        let fixed = 4 * 29 * 4 + 1000
        let perSample = (85 + 64) * 4

        let limit = fixed + 7 * perSample + perSample / 2
        XCTAssertEqual(
            MemoryPlan.largestBatch(model: model, upTo: 64, stateTensorsPerParameter: 2, dataBytes: 1000, limit: limit), 7)
        XCTAssertEqual(
            MemoryPlan.largestBatch(model: model, upTo: 5, stateTensorsPerParameter: 2, dataBytes: 1000, limit: limit), 5)
        XCTAssertNil(
            MemoryPlan.largestBatch(model: model, upTo: 64, stateTensorsPerParameter: 2, dataBytes: 1000, limit: fixed + 10))
    }
}
