import Foundation
import XCTest
@testable import ResNetKit

/// Ranks as threads of one process, summing through shared memory in rank order, so that data
/// parallel training can be checked without MPI.
private final class SharedSums: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var contributions: [[Double]?]
    private var result: [Double] = []
    private var taken = 0

    init(size: Int) {
        self.size = size
        contributions = Array(repeating: nil, count: size)
    }

    func sum(rank: Int, _ values: [Double]) -> [Double] {
        condition.lock()
        defer { condition.unlock() }

        // Wait until the previous sum has been taken by every rank.
        while contributions[rank] != nil || taken > 0 {
            condition.wait()
        }
        contributions[rank] = values
        if contributions.allSatisfy({ $0 != nil }) {
            let parts = contributions.map { $0! }
            precondition(Set(parts.map(\.count)).count == 1, "ranks summed buffers of different lengths")
            result = (0..<values.count).map { index in parts.reduce(0) { $0 + $1[index] } }
            condition.broadcast()
        }
        while contributions.contains(where: { $0 == nil }) {
            condition.wait()
        }

        let summed = result
        taken += 1
        if taken == size {
            taken = 0
            contributions = Array(repeating: nil, count: size)
            condition.broadcast()
        }
        return summed
    }
}

private final class ThreadRank: ReplicaGroup {
    let rank: Int
    let shared: SharedSums
    var size: Int { shared.size }

    init(rank: Int, shared: SharedSums) {
        self.rank = rank
        self.shared = shared
    }

    func sum(_ values: UnsafeMutableBufferPointer<Float>, purpose: String) throws {
        let summed = shared.sum(rank: rank, values.map(Double.init))
        for index in values.indices {
            values[index] = Float(summed[index])
        }
    }

    func sum(_ values: UnsafeMutableBufferPointer<Double>, purpose: String) throws {
        let summed = shared.sum(rank: rank, Array(values))
        for index in values.indices {
            values[index] = summed[index]
        }
    }
}

/// The results of the ranks' threads, each written by its own thread before the join.
private final class RankResults<Result>: @unchecked Sendable {
    var values: [Result?]

    init(size: Int) {
        values = Array(repeating: nil, count: size)
    }
}

/// Runs `body` for each rank on its own thread and returns the results by rank.
private func onRanks<Result>(_ size: Int, _ body: @escaping (ThreadRank) -> Result) -> [Result] {
    let shared = SharedSums(size: size)
    let results = RankResults<Result>(size: size)
    let lock = NSLock()
    let finished = DispatchGroup()
    for rank in 0..<size {
        finished.enter()
        let thread = Thread {
            let result = body(ThreadRank(rank: rank, shared: shared))
            lock.withLock { results.values[rank] = result }
            finished.leave()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    finished.wait()
    return results.values.map { $0! }
}

private func weights(of model: Model) throws -> [[Float]] {
    try model.parameters.map { try model.backend.values(of: $0.value) }
}

private func regressionTrainer(seed: UInt64 = 5) throws -> Trainer {
    let backend = ReferenceBackend<Float>(threads: 1)
    let model = try ResidualMLP(width: 16, blocks: 1).makeModel(features: 2, outputs: 1, backend: backend, seed: seed)
    return Trainer(model: model, loss: .meanSquaredError, optimizer: SGD(learningRate: 0.05, momentum: 0.9))
}

private func convolutionTrainer() throws -> Trainer {
    let network = Sequential {
        Conv2D(filters: 4, kernelSize: 3, padding: .same)
        BatchNorm()
        ReLU()
        GlobalAveragePool2D()
        Dense(units: 3)
    }
    let backend = ReferenceBackend<Float>(threads: 1)
    let model = try Model(name: "small", network: network, inputShape: TensorShape(3, 8, 8), backend: backend, seed: 2)
    return Trainer(model: model, loss: .crossEntropy, optimizer: Adam(learningRate: 0.01))
}

final class DataParallelTests: XCTestCase {
    func testShareSplitsInRankOrder() {
        let shares = onRanks(3) { $0.share(of: 7) }
        XCTAssertEqual(shares, [0..<2, 2..<4, 4..<7])
        XCTAssertEqual(onRanks(2) { $0.share(of: 1) }, [0..<0, 0..<1])
    }

    func testGatherReturnsEveryRanksValues() throws {
        let gathered = onRanks(3) { rank in try? rank.gather([Double(rank.rank), -1.5 * Double(rank.rank)], purpose: "test") }
        for result in gathered {
            XCTAssertEqual(result, [[0, -0], [1, -1.5], [2, -3]])
        }
    }

    func testMergedRegressionTotalsEqualWhole() {
        // Targets 1, 2, 3, 4 split as (1) and (2, 3, 4): the merge must give SST 5 and the
        // summed SSE, as one pass over all four does.
        var first = RegressionTotals()
        first.add(targets: [1], outputs: 1, sumOfSquaredErrors: 0.5)
        var second = RegressionTotals()
        second.add(targets: [2, 3, 4], outputs: 1, sumOfSquaredErrors: 0.5)
        var merged = RegressionTotals()
        merged.merge(components: first.components(outputs: 1))
        merged.merge(components: RegressionTotals().components(outputs: 1))
        merged.merge(components: second.components(outputs: 1))
        XCTAssertEqual(merged.samples, 4)
        XCTAssertEqual(merged.totalSumOfSquares, 5, accuracy: 1e-12)
        XCTAssertEqual(merged.r2 ?? .nan, 0.8, accuracy: 1e-12)
    }

    func testTwoRanksTrainAsOneProcess() throws {
        // 161 samples in batches of 32: five full steps, then one sample, which rank 1 takes
        // while rank 0's share is empty. Without batch norm, the summed gradient is the mean
        // over the whole batch, so both ranks must end where one process does.
        let train = try SyntheticData.regression(samples: 161, seed: 8)
        let validation = try SyntheticData.regression(samples: 41, seed: 9)
        let alone = try regressionTrainer()
        let expected = try alone.fit(train, validation: validation, epochs: 2, batchSize: 32, seed: 4)

        let runs = onRanks(2) { rank -> (history: [EpochMetrics], weights: [[Float]])? in
            guard let trainer = try? regressionTrainer() else { return nil }
            trainer.replicas = rank
            guard let history = try? trainer.fit(train, validation: validation, epochs: 2, batchSize: 32, seed: 4) else {
                return nil
            }
            return (history, (try? weights(of: trainer.model)) ?? [])
        }
        let reference = try weights(of: alone.model)
        for (rank, run) in runs.enumerated() {
            let run = try XCTUnwrap(run, "rank \(rank) failed")
            XCTAssertEqual(run.history.count, 2)
            for (got, want) in zip(run.history, expected) {
                XCTAssertEqual(got.samples, want.samples)
                XCTAssertEqual(got.loss, want.loss, accuracy: 1e-6 * want.loss)
                XCTAssertEqual(got.validationLoss ?? .nan, want.validationLoss ?? 0, accuracy: 1e-6 * (want.validationLoss ?? 0))
                XCTAssertEqual(got.r2 ?? .nan, want.r2 ?? 0, accuracy: 1e-6)
                XCTAssertEqual(got.validationR2 ?? .nan, want.validationR2 ?? 0, accuracy: 1e-6)
            }
            XCTAssertEqual(run.weights.count, reference.count)
            for (index, (got, want)) in zip(run.weights, reference).enumerated() {
                let largest = zip(got, want).map { abs($0 - $1) }.max() ?? .nan
                XCTAssertLessThan(largest, 1e-5, "tensor \(index) of rank \(rank)")
            }
        }
        XCTAssertEqual(runs[0]?.weights, runs[1]?.weights, "the ranks hold identical weights")
    }

    func testBatchNormRanksKeepIdenticalWeights() throws {
        // Without validation, each rank's running statistics follow its own shares; with it,
        // every rank takes rank 0's before validating.
        let data = try SyntheticData.gratings(samples: 48, sampleShape: TensorShape(3, 8, 8), classes: 3, seed: 3)
        let validation = try SyntheticData.gratings(samples: 9, sampleShape: TensorShape(3, 8, 8), classes: 3, seed: 4)
        for validates in [false, true] {
            let runs = onRanks(2) { rank -> (weights: [[Float]], statistics: [[Float]])? in
                guard let trainer = try? convolutionTrainer() else { return nil }
                trainer.replicas = rank
                trainer.checksReplicasEveryStep = true
                let fitted = try? trainer.fit(data, validation: validates ? validation : nil, epochs: 2, batchSize: 8, seed: 6)
                guard fitted != nil else { return nil }
                let model = trainer.model
                let statistics = model.parameters.filter { !$0.isTrainable }
                return (
                    (try? model.trainableParameters.map { try model.backend.values(of: $0.value) }) ?? [],
                    (try? statistics.map { try model.backend.values(of: $0.value) }) ?? []
                )
            }
            let first = try XCTUnwrap(runs[0], "rank 0 failed")
            let second = try XCTUnwrap(runs[1], "rank 1 failed")
            XCTAssertEqual(first.weights, second.weights)
            XCTAssertFalse(first.statistics.isEmpty)
            if validates {
                XCTAssertEqual(first.statistics, second.statistics, "every rank validates with rank 0's statistics")
            } else {
                XCTAssertNotEqual(first.statistics, second.statistics, "each rank keeps statistics of its own shares")
            }
        }
    }

    func testDifferingWeightsAreReported() throws {
        let data = try SyntheticData.regression(samples: 64, seed: 8)
        let errors = onRanks(2) { rank -> Error? in
            guard let trainer = try? regressionTrainer(seed: rank.rank == 0 ? 5 : 6) else { return nil }
            trainer.replicas = rank
            trainer.checksReplicasEveryStep = true
            do {
                try trainer.fit(data, validation: nil, epochs: 1, batchSize: 16, seed: 4)
                return nil
            } catch {
                return error
            }
        }
        for error in errors {
            guard case .weightsDiffer(let ranks, let epoch, let step)? = error as? ReplicaError else {
                XCTFail("expected differing weights, got \(String(describing: error))")
                continue
            }
            XCTAssertEqual(ranks, [1])
            XCTAssertEqual(epoch, 1)
            XCTAssertEqual(step, 1)
        }
    }

    func testStopOnOneRankStopsAll() throws {
        let data = try SyntheticData.regression(samples: 128, seed: 8)
        let points = onRanks(2) { rank -> ResumePoint? in
            guard let trainer = try? regressionTrainer() else { return nil }
            trainer.replicas = rank
            var steps = 0
            trainer.shouldStop = {
                steps += 1
                return rank.rank == 1 && steps == 3
            }
            _ = try? trainer.fit(data, validation: nil, epochs: 2, batchSize: 16, seed: 4)
            return trainer.stoppedAt
        }
        for point in points {
            XCTAssertEqual(point?.epoch, 1)
            XCTAssertEqual(point?.step, 3)
            XCTAssertEqual(point?.seen, 48, "the sums cover both ranks' samples")
        }
    }

    func testNaNOnOneRankStopsAll() throws {
        // Sample 5 is NaN. Rank 1 takes the second half of each batch of 4, so the step that
        // contains sample 5 fails on one rank and both must report it.
        let shape = TensorShape(2)
        var inputs = (0..<16 * 2).map { Float($0 % 5) / 5 }
        inputs[5 * 2] = .nan
        let data = try InMemoryDataset(sampleShape: shape, inputs: inputs, values: (0..<16).map { Float($0) / 16 }, outputs: 1)
        var order = Array(0..<16)
        var generator = ResNetKit.SeededGenerator(seed: 4, stream: 1)
        order.shuffle(using: &generator)
        let expectedStep = order.firstIndex(of: 5)! / 4 + 1

        let errors = onRanks(2) { rank -> Error? in
            guard let trainer = try? regressionTrainer() else { return nil }
            trainer.replicas = rank
            do {
                try trainer.fit(data, validation: nil, epochs: 1, batchSize: 4, seed: 4)
                return nil
            } catch {
                return error
            }
        }
        for error in errors {
            guard case .nonFiniteLoss(let epoch, let step, _)? = error as? TrainingError else {
                XCTFail("expected a non-finite loss, got \(String(describing: error))")
                continue
            }
            XCTAssertEqual(epoch, 1)
            XCTAssertEqual(step, expectedStep)
        }
    }

    func testUnevenBatchIsRejected() throws {
        let data = try SyntheticData.regression(samples: 30, seed: 8)
        let errors = onRanks(2) { rank -> String? in
            guard let trainer = try? regressionTrainer() else { return nil }
            trainer.replicas = rank
            do {
                try trainer.fit(data, validation: nil, epochs: 1, batchSize: 15, seed: 4)
                return nil
            } catch {
                return "\(error)"
            }
        }
        for message in errors {
            XCTAssertTrue(message?.contains("batch size 15 does not split evenly among 2 ranks") ?? false, message ?? "no error")
        }
    }
}
