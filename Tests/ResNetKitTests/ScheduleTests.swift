import Foundation
import XCTest
import ResNetKit

/// Learning-rate schedules at chosen steps, against the formulas written out in each test.
final class ScheduleTests: XCTestCase {
    func testConstantWithWarmupBoundaries() {
        // 10 steps per epoch, 5 epochs, 20 warm-up steps: step s < 20 gets 0.1 * (s + 1) / 20.
        let schedule = LearningRateSchedule(.constant, baseRate: 0.1, stepsPerEpoch: 10, epochs: 5, warmupSteps: 20)
        XCTAssertEqual(schedule.rate(atStep: 0), 0.005, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 9), 0.05, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 19), 0.1, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 20), 0.1, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 49), 0.1, accuracy: 1e-15)
    }

    func testStepDropsEveryNEpochsAfterWarmup() {
        // 4 steps per epoch, warm-up of one epoch, then times 0.1 every 2 epochs.
        let schedule = LearningRateSchedule(
            .step(epochs: 2, gamma: 0.1), baseRate: 1, stepsPerEpoch: 4, epochs: 7, warmupSteps: 4)
        XCTAssertEqual(schedule.rate(atStep: 0), 0.25, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 3), 1, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 4), 1, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 11), 1, accuracy: 1e-15, "last step of epoch 2 after warm-up")
        XCTAssertEqual(schedule.rate(atStep: 12), 0.1, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 20), 0.01, accuracy: 1e-15)
    }

    func testCosineEndsAtFloor() {
        // 100 steps, no warm-up: rate = 0.01 + 0.09 * (1 + cos(pi * s / 100)) / 2.
        let schedule = LearningRateSchedule(.cosine(minimum: 0.01), baseRate: 0.1, stepsPerEpoch: 10, epochs: 10)
        XCTAssertEqual(schedule.rate(atStep: 0), 0.1, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 50), 0.055, accuracy: 1e-15, "halfway is the mean of the two ends")
        XCTAssertEqual(schedule.rate(atStep: 25), 0.01 + 0.09 * (1 + 0.5.squareRoot()) / 2, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 99), 0.01 + 0.09 * (1 + cos(Double.pi * 0.99)) / 2, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 100), 0.01, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 500), 0.01, accuracy: 1e-15, "past the end stays at the floor")
    }

    func testCosineAfterWarmupStartsAtBase() {
        // 10 warm-up steps of 40: the cosine runs over the last 30.
        let schedule = LearningRateSchedule(.cosine(minimum: 0), baseRate: 0.2, stepsPerEpoch: 10, epochs: 4, warmupSteps: 10)
        XCTAssertEqual(schedule.rate(atStep: 9), 0.2, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 10), 0.2, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 25), 0.1, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 40), 0, accuracy: 1e-15)
    }

    func testOneCycleAsPyTorch() {
        // 100 steps, max 0.1: start 0.1 / 25 = 0.004, peak at step 0.3 * 100 - 1 = 29, end at
        // step 99 at 0.004 / 1e4 = 4e-7. Phase 1 at step s: 0.1 + (0.004 - 0.1) * (1 + cos(pi * s / 29)) / 2.
        let schedule = LearningRateSchedule(.oneCycle, baseRate: 0.1, stepsPerEpoch: 10, epochs: 10)
        XCTAssertEqual(schedule.rate(atStep: 0), 0.004, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 10), 0.1 - 0.096 * (1 + cos(Double.pi * 10 / 29)) / 2, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 29), 0.1, accuracy: 1e-15)
        XCTAssertLessThan(schedule.rate(atStep: 28), 0.1)
        XCTAssertLessThan(schedule.rate(atStep: 30), 0.1)
        // Phase 2 at step 64, halfway from 29 to 99: the mean of 0.1 and 4e-7.
        XCTAssertEqual(schedule.rate(atStep: 64), (0.1 + 4e-7) / 2, accuracy: 1e-15)
        XCTAssertEqual(schedule.rate(atStep: 99), 4e-7, accuracy: 1e-18)
    }

    func testRateDependsOnlyOnStep() {
        let schedule = LearningRateSchedule(.oneCycle, baseRate: 0.5, stepsPerEpoch: 7, epochs: 3)
        let forward = (0..<21).map { schedule.rate(atStep: $0) }
        let backward = (0..<21).reversed().map { schedule.rate(atStep: $0) }.reversed()
        XCTAssertEqual(forward, Array(backward))
    }

    func testTrainerSetsScheduledRateEachStep() throws {
        // 6 samples in batches of 2 give 3 steps per epoch; over 2 epochs the optimizer receives the
        // rates of steps 0 to 5, and the epoch metrics hold the rate of steps 2 and 5.
        let backend = ReferenceBackend<Float>(threads: 1)
        let model = try Model(
            name: "probe", network: Sequential(layers: [Flatten(), Dense(units: 2)]), inputShape: TensorShape(1, 2, 2),
            backend: backend, seed: 1)
        let recorder = RateRecorder()
        let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: recorder)
        let schedule = LearningRateSchedule(.cosine(minimum: 0), baseRate: 1, stepsPerEpoch: 3, epochs: 2, warmupSteps: 2)
        trainer.schedule = schedule
        let data = try SyntheticData.uniform(samples: 6, sampleShape: TensorShape(1, 2, 2), classes: 2, seed: 3)
        let history = try trainer.fit(data, validation: nil, epochs: 2, batchSize: 2, seed: 1)

        // Warm-up: 0.5, 1. Cosine over 4 steps: 1, (1 + cos(pi/4)) / 2, 0.5, (1 + cos(3pi/4)) / 2.
        let expected = [0.5, 1, 1, (1 + 0.5.squareRoot()) / 2, 0.5, (1 - 0.5.squareRoot()) / 2]
        XCTAssertEqual(recorder.rates.count, 6)
        for (rate, target) in zip(recorder.rates, expected) {
            XCTAssertEqual(rate, target, accuracy: 1e-12)
        }
        XCTAssertEqual(history.map(\.learningRate)[0], 1, accuracy: 1e-12)
        XCTAssertEqual(history.map(\.learningRate)[1], (1 - 0.5.squareRoot()) / 2, accuracy: 1e-12)
    }

    func testTrainerRejectsScheduleOfOtherLength() throws {
        let backend = ReferenceBackend<Float>(threads: 1)
        let model = try Model(
            name: "probe", network: Sequential(layers: [Flatten(), Dense(units: 2)]), inputShape: TensorShape(1, 2, 2),
            backend: backend, seed: 1)
        let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: RateRecorder())
        trainer.schedule = LearningRateSchedule(.constant, baseRate: 1, stepsPerEpoch: 4, epochs: 1)
        let data = try SyntheticData.uniform(samples: 6, sampleShape: TensorShape(1, 2, 2), classes: 2, seed: 3)
        XCTAssertThrowsError(try trainer.fit(data, validation: nil, epochs: 1, batchSize: 2, seed: 1))
    }
}

/// An optimizer that records the learning rate of each step and leaves the weights alone.
final class RateRecorder: Optimizer {
    var learningRate = 0.0
    private(set) var stepCount = 0
    private(set) var rates: [Double] = []

    func step(_ parameters: [Parameter], gradients: [Tensor], backend: Backend) throws {
        rates.append(learningRate)
        stepCount += 1
    }

    func stateTensors() -> [(name: String, tensor: Tensor)] { [] }

    func restoreState(_ tensors: [(name: String, tensor: Tensor)], stepCount: Int) throws {}
}
