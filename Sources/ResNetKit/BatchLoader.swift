import Dispatch

/// The batches of one training epoch: which samples each step takes, gathered into one buffer
/// and augmented.
///
/// Step k's batch depends on the plan alone, not on when or on which thread it is prepared,
/// so a prefetched batch equals the one the synchronous path makes.
struct EpochPlan {
    let dataset: Dataset
    /// The epoch's shuffled sample indices; step k takes `batchSize` of them from k * batchSize.
    let order: [Int]
    let batchSize: Int
    let augmentation: Augmentation?
    let seed: UInt64
    let epoch: Int
    /// This process's rank and the rank count in a data-parallel run: each step's batch is
    /// split among the ranks, and the plan makes this rank's part of it.
    var replica: (rank: Int, size: Int) = (0, 1)

    var stepCount: Int { (order.count + batchSize - 1) / batchSize }

    /// Returns the samples of `step` for all ranks together.
    func batchIndices(ofStep step: Int) -> ArraySlice<Int> {
        order[step * batchSize..<min((step + 1) * batchSize, order.count)]
    }

    /// Returns the position of this rank's samples within `step`'s batch.
    func share(ofStep step: Int) -> Range<Int> {
        let count = batchIndices(ofStep: step).count
        return (replica.rank * count / replica.size)..<((replica.rank + 1) * count / replica.size)
    }

    /// This rank's samples of `step`.
    func indices(ofStep step: Int) -> ArraySlice<Int> {
        let batch = batchIndices(ofStep: step)
        let share = share(ofStep: step)
        return batch[(batch.startIndex + share.lowerBound)..<(batch.startIndex + share.upperBound)]
    }

    /// Writes the inputs of `step` into `buffer` and returns the batch's targets. `scratch`
    /// has room for one sample, the image before augmentation.
    func prepare(
        step: Int, into buffer: UnsafeMutableBufferPointer<Float>, scratch: UnsafeMutableBufferPointer<Float>
    ) -> Targets {
        let indices = indices(ofStep: step)
        guard let augmentation else {
            dataset.copyInputs(indices, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<indices.count * dataset.sampleShape.elementCount]))
            return dataset.targets(indices)
        }

        let shape = dataset.sampleShape
        let sampleSize = shape.elementCount
        // Placements are drawn for the whole batch, so a sample is cropped and flipped alike
        // whatever the rank count.
        let share = share(ofStep: step)
        let placements = augmentation.placements(
            count: batchIndices(ofStep: step).count, seed: seed, epoch: epoch, step: step)[share]
        let sample = UnsafeMutableBufferPointer(rebasing: scratch[0..<sampleSize])
        for (position, index) in indices.indices.enumerated() {
            dataset.copyInputs(indices[index...index], into: sample)
            let target = UnsafeMutableBufferPointer(rebasing: buffer[position * sampleSize..<(position + 1) * sampleSize])
            Augmentation.apply(
                placements[share.lowerBound + position], padding: augmentation.padding, to: UnsafeBufferPointer(sample), shape: shape,
                into: target)
        }
        return dataset.targets(indices)
    }
}

/// One prepared batch: its inputs, valid until the next call to `BatchLoader.next()`, and its
/// targets.
struct LoadedBatch {
    let inputs: UnsafeBufferPointer<Float>
    let shape: TensorShape
    let targets: Targets
}

/// Prepares the batches of an epoch, optionally on a background thread one step ahead.
///
/// With prefetching, two buffers alternate: while the training step runs on batch k from one,
/// a serial queue gathers and augments batch k + 1 into the other. The dataset is then read
/// from that queue, one call at a time, while the caller must not use it.
final class BatchLoader {
    private final class Slot {
        let buffer: UnsafeMutableBufferPointer<Float>
        let scratch: UnsafeMutableBufferPointer<Float>
        var step = -1
        var targets: Targets = .classes([])

        init(capacity: Int, sampleSize: Int) {
            buffer = .allocate(capacity: capacity)
            buffer.initialize(repeating: 0)
            scratch = .allocate(capacity: sampleSize)
            scratch.initialize(repeating: 0)
        }

        deinit {
            buffer.deallocate()
            scratch.deallocate()
        }
    }

    let prefetches: Bool
    private let slots: [Slot]
    private let queue = DispatchQueue(label: "resnet.batch-loader")
    private let pending = DispatchGroup()
    private var plan: EpochPlan?
    private var nextStep = 0

    init(sampleShape: TensorShape, batchSize: Int, prefetches: Bool) {
        self.prefetches = prefetches
        let sampleSize = sampleShape.elementCount
        slots = (0..<(prefetches ? 2 : 1)).map { _ in Slot(capacity: batchSize * sampleSize, sampleSize: sampleSize) }
    }

    deinit {
        pending.wait()
    }

    /// Starts an epoch at `step` (0 unless resuming in the middle of it); with prefetching, that
    /// step's batch is prepared in the background at once.
    func begin(_ plan: EpochPlan, at step: Int = 0) {
        pending.wait()
        self.plan = plan
        nextStep = step
        if prefetches, step < plan.stepCount {
            schedule(step: step)
        }
    }

    /// Returns the epoch's next batch, waiting for it if the background has not finished it,
    /// and starts preparing the one after.
    func next() -> LoadedBatch {
        guard let plan else { preconditionFailure("BatchLoader.next() called before begin(_:)") }
        let step = nextStep
        precondition(step < plan.stepCount, "epoch has \(plan.stepCount) steps, step \(step) requested")
        nextStep += 1

        let slot = slots[step % slots.count]
        if prefetches {
            pending.wait()
            precondition(slot.step == step, "prefetched step \(slot.step) where step \(step) was expected")
            if step + 1 < plan.stepCount {
                schedule(step: step + 1)
            }
        } else {
            slot.targets = plan.prepare(step: step, into: slot.buffer, scratch: slot.scratch)
            slot.step = step
        }

        let count = plan.indices(ofStep: step).count
        let shape = TensorShape([count] + plan.dataset.sampleShape.dims)
        return LoadedBatch(
            inputs: UnsafeBufferPointer(rebasing: slot.buffer[0..<shape.elementCount]), shape: shape,
            targets: slot.targets)
    }

    private func schedule(step: Int) {
        guard let plan else { return }
        let slot = slots[step % slots.count]
        pending.enter()
        queue.async { [pending] in
            slot.targets = plan.prepare(step: step, into: slot.buffer, scratch: slot.scratch)
            slot.step = step
            pending.leave()
        }
    }
}
