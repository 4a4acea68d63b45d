import Foundation
import XCTest
@testable import ResNetKit

final class AugmentationTests: XCTestCase {
    /// The 1x4x4 image with pixels 1 to 16, row by row.
    private let image: [Float] = (1...16).map(Float.init)

    private func crop(_ placement: Augmentation.Placement, padding: Int) -> [Float] {
        var output = [Float](repeating: -1, count: 16)
        image.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                Augmentation.apply(placement, padding: padding, to: source, shape: TensorShape(1, 4, 4), into: target)
            }
        }
        return output
    }

    func testCropAndFlipByHand() {
        // Padding 1 makes a 6x6 image with the original at rows and columns 1 to 4. The crop at
        // top 0, left 2 takes padded rows 0-3 and columns 2-5: a zero row, then original rows
        // 0-2 at columns 1-3 followed by a zero column.
        let shifted = crop(Augmentation.Placement(top: 0, left: 2, flipped: false), padding: 1)
        XCTAssertEqual(shifted, [
            0, 0, 0, 0,
            2, 3, 4, 0,
            6, 7, 8, 0,
            10, 11, 12, 0,
        ])

        // The flip mirrors each row of that crop.
        let flipped = crop(Augmentation.Placement(top: 0, left: 2, flipped: true), padding: 1)
        XCTAssertEqual(flipped, [
            0, 0, 0, 0,
            0, 4, 3, 2,
            0, 8, 7, 6,
            0, 12, 11, 10,
        ])

        // The centred crop is the image itself, and with a flip its mirror image.
        XCTAssertEqual(crop(Augmentation.Placement(top: 1, left: 1, flipped: false), padding: 1), image)
        XCTAssertEqual(crop(Augmentation.Placement(top: 1, left: 1, flipped: true), padding: 1), [
            4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13,
        ])

        // Padding 2, bottom-right corner of the padded 8x8: original rows and columns 2-3 land
        // at the top left, the rest is padding.
        XCTAssertEqual(crop(Augmentation.Placement(top: 4, left: 4, flipped: false), padding: 2), [
            11, 12, 0, 0,
            15, 16, 0, 0,
            0, 0, 0, 0,
            0, 0, 0, 0,
        ])
    }

    func testCropKeepsChannelsApart() {
        // Two channels of a 1x2 image: (1, 2) and (3, 4). Shifting left by one column moves
        // each channel's second pixel to its first, never across channels.
        let source: [Float] = [1, 2, 3, 4]
        var output = [Float](repeating: -1, count: 4)
        source.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { target in
                Augmentation.apply(
                    Augmentation.Placement(top: 1, left: 2, flipped: false), padding: 1, to: input,
                    shape: TensorShape(2, 1, 2), into: target)
            }
        }
        XCTAssertEqual(output, [2, 0, 4, 0])
    }

    func testPlacementsAreSeededAndCoverEveryOffset() {
        let augmentation = Augmentation(padding: 2)
        let first = augmentation.placements(count: 400, seed: 3, epoch: 1, step: 0)
        XCTAssertEqual(first, augmentation.placements(count: 400, seed: 3, epoch: 1, step: 0))
        XCTAssertNotEqual(first, augmentation.placements(count: 400, seed: 3, epoch: 1, step: 1))
        XCTAssertNotEqual(first, augmentation.placements(count: 400, seed: 3, epoch: 2, step: 0))

        XCTAssertEqual(Set(first.map(\.top)), Set(0...4))
        XCTAssertEqual(Set(first.map(\.left)), Set(0...4))
        // 400 fair coin flips land within 200 +- 3 * 10 about 99.7% of the time.
        let flips = first.filter(\.flipped).count
        XCTAssertTrue((170...230).contains(flips), "\(flips) of 400 flipped")

        let noFlip = Augmentation(padding: 2, horizontalFlip: false).placements(count: 50, seed: 3, epoch: 1, step: 0)
        XCTAssertFalse(noFlip.contains { $0.flipped })
    }

    func testDefaultPadding() {
        XCTAssertEqual(Augmentation.defaultPadding(height: 32, width: 32), 4)
        XCTAssertEqual(Augmentation.defaultPadding(height: 28, width: 28), 4)
        XCTAssertEqual(Augmentation.defaultPadding(height: 224, width: 300), 28)
        XCTAssertEqual(Augmentation.defaultPadding(height: 5, width: 5), 1)
        XCTAssertEqual(Augmentation.defaultPadding(height: 1, width: 9), 0)
    }

    func testFlatSamplesAreRejected() throws {
        let data = try SyntheticData.regression(samples: 8, seed: 1)
        let model = try ResidualMLP(width: 4, blocks: 1).makeModel(
            features: 2, outputs: 1, backend: ReferenceBackend<Float>(threads: 1), seed: 1)
        let trainer = Trainer(model: model, loss: .meanSquaredError, optimizer: Adam())
        trainer.augmentation = Augmentation(padding: 1)
        XCTAssertThrowsError(try trainer.fit(data, validation: nil, epochs: 1, batchSize: 4, seed: 1)) { error in
            XCTAssertTrue("\(error)".contains("CxHxW"), "\(error)")
        }
    }
}

final class BatchLoaderTests: XCTestCase {
    /// Returns every batch of an epoch, inputs and labels, copied out of the loader.
    private func epochBatches(_ plan: EpochPlan, prefetches: Bool) -> [([Float], [Int])] {
        let loader = BatchLoader(sampleShape: plan.dataset.sampleShape, batchSize: plan.batchSize, prefetches: prefetches)
        loader.begin(plan)
        return (0..<plan.stepCount).map { _ in
            let batch = loader.next()
            guard case .classes(let labels) = batch.targets else { return (Array(batch.inputs), []) }
            return (Array(batch.inputs), labels)
        }
    }

    func testPrefetchedBatchesEqualSynchronousOnes() throws {
        let data = try SyntheticData.uniform(samples: 23, sampleShape: TensorShape(2, 5, 6), classes: 4, seed: 8)
        var order = Array(0..<data.count)
        var generator = ResNetKit.SeededGenerator(seed: 2)
        order.shuffle(using: &generator)

        for augmentation in [nil, Augmentation(padding: 2)] {
            let plan = EpochPlan(
                dataset: data, order: order, batchSize: 5, augmentation: augmentation, seed: 7, epoch: 3)
            let synchronous = epochBatches(plan, prefetches: false)
            let prefetched = epochBatches(plan, prefetches: true)
            XCTAssertEqual(synchronous.count, 5, "23 samples in batches of 5")
            XCTAssertEqual(synchronous.last?.1.count, 3)
            for (step, (expected, actual)) in zip(synchronous, prefetched).enumerated() {
                XCTAssertEqual(actual.0, expected.0, "inputs of step \(step), augmentation \(String(describing: augmentation))")
                XCTAssertEqual(actual.1, expected.1, "labels of step \(step)")
            }
        }
    }

    func testUnaugmentedBatchesFollowTheOrder() throws {
        let data = try SyntheticData.uniform(samples: 6, sampleShape: TensorShape(1, 2, 2), classes: 3, seed: 1)
        let order = [4, 1, 5, 0, 2, 3]
        let plan = EpochPlan(dataset: data, order: order, batchSize: 4, augmentation: nil, seed: 1, epoch: 1)
        let batches = epochBatches(plan, prefetches: true)
        let labels = try XCTUnwrap(data.labels)
        XCTAssertEqual(batches.map(\.1), [[4, 1, 5, 0].map { labels[$0] }, [2, 3].map { labels[$0] }])
        XCTAssertEqual(batches[1].0, Array(data.inputs[8..<16]), "samples 2 and 3, 4 values each")
    }

    func testFitIsTheSameWithAndWithoutPrefetch() throws {
        let shape = TensorShape(1, 6, 6)
        let data = try SyntheticData.gratings(samples: 20, sampleShape: shape, classes: 3, seed: 4)
        func train(prefetches: Bool) throws -> ([EpochMetrics], [Float]) {
            let network = Sequential {
                Conv2D(filters: 3, kernelSize: 3, padding: .same)
                BatchNorm()
                ReLU()
                GlobalAveragePool2D()
                Dense(units: 3)
            }
            let model = try Model(name: "small", network: network, inputShape: shape, backend: ReferenceBackend<Float>(threads: 1), seed: 2)
            let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: Adam(learningRate: 0.01))
            trainer.augmentation = Augmentation(padding: 1)
            trainer.prefetchesBatches = prefetches
            let history = try trainer.fit(data, validation: data, epochs: 3, batchSize: 8, seed: 6)
            return (history, try model.parameters.flatMap { try model.backend.values(of: $0.value) })
        }
        let synchronous = try train(prefetches: false)
        let prefetched = try train(prefetches: true)
        XCTAssertEqual(prefetched.0.map(\.loss), synchronous.0.map(\.loss))
        XCTAssertEqual(prefetched.0.map(\.validationLoss), synchronous.0.map(\.validationLoss))
        XCTAssertEqual(prefetched.1, synchronous.1, "weights after 3 epochs")
    }
}

final class InputNormalizationTests: XCTestCase {
    func testTrainingSetBecomesZeroMeanUnitStd() throws {
        // Three channels with different scales and offsets, and a constant fourth channel.
        let shape = TensorShape(4, 3, 5)
        var generator = ResNetKit.SeededGenerator(seed: 12)
        let count = 40
        var inputs: [Float] = []
        for _ in 0..<count {
            for (offset, scale) in [(0.0, 1.0), (100.0, 0.01), (-3.0, 20.0), (7.0, 0.0)] {
                inputs += (0..<15).map { _ in Float(offset + scale * generator.nextNormal()) }
            }
        }
        let data = try InMemoryDataset(sampleShape: shape, inputs: inputs, labels: [Int](repeating: 0, count: count), classCount: 2)
        let normalization = try data.channelNormalization()
        let normalized = try data.normalized(by: normalization)
        XCTAssertEqual(normalized.labels, data.labels)

        for channel in 0..<4 {
            var values: [Double] = []
            for sample in 0..<count {
                let start = sample * 60 + channel * 15
                values += normalized.inputs[start..<start + 15].map(Double.init)
            }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            XCTAssertEqual(mean, 0, accuracy: 1e-5, "channel \(channel)")
            if channel == 3 {
                XCTAssertEqual(normalization.standardDeviation[3], 1, "a constant channel is only centred")
                XCTAssertEqual(variance, 0, accuracy: 1e-12)
            } else {
                XCTAssertEqual(variance.squareRoot(), 1, accuracy: 1e-4, "channel \(channel)")
            }
        }
        XCTAssertEqual(normalization.mean[3], 7)
    }

    func testValidationUsesTrainingStatistics() throws {
        // One channel of values 1 and 3: mean 2, population standard deviation 1.
        let train = try InMemoryDataset(sampleShape: TensorShape(1, 1, 2), inputs: [1, 3, 1, 3], labels: [0, 1], classCount: 2)
        let normalization = try train.channelNormalization()
        XCTAssertEqual(normalization, Normalization(mean: [2], standardDeviation: [1]))

        let validation = try InMemoryDataset(sampleShape: TensorShape(1, 1, 2), inputs: [5, 2], labels: [1], classCount: 2)
        XCTAssertEqual(try validation.normalized(by: normalization).inputs, [3, 0])

        let regression = try InMemoryDataset(sampleShape: TensorShape(2), inputs: [0, 10, 4, 30], values: [1, 2], outputs: 1)
        let features = try regression.channelNormalization()
        XCTAssertEqual(features, Normalization(mean: [2, 20], standardDeviation: [2, 10]))
        let normalized = try regression.normalized(by: features)
        XCTAssertEqual(normalized.inputs, [-1, -1, 1, 1])
        XCTAssertEqual(normalized.values, [1, 2], "targets stay as they are")
    }

    func testMismatchedChannelsThrow() throws {
        let data = try SyntheticData.uniform(samples: 2, sampleShape: TensorShape(3, 2, 2), classes: 2, seed: 1)
        XCTAssertThrowsError(try data.normalized(by: Normalization(mean: [0], standardDeviation: [1])))
    }

    func testPlainRepresentationRoundTrips() throws {
        let normalization = Normalization(mean: [0.25, 0.5], standardDeviation: [2, 4])
        let json = try JSONEncoder().encode(normalization)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: json) as? [String: [Double]])
        XCTAssertEqual(object["mean"], [0.25, 0.5])
        XCTAssertEqual(object["standardDeviation"], [2, 4])
        XCTAssertEqual(try JSONDecoder().decode(Normalization.self, from: json), normalization)
    }
}
