/// The processes of a data-parallel run, seen from one of them.
///
/// Each process, a rank, keeps a whole copy of the model and trains on its share of every
/// batch. Before each optimizer step the ranks sum their gradients, so every copy takes the same
/// step and the weights stay identical. `Trainer.fit` trains this way when `Trainer.replicas`
/// is set; ResNetMPI implements the group over MPI.
///
/// Every rank must call the methods in the same order with buffers of the same length, from
/// the thread that runs `fit`.
public protocol ReplicaGroup: AnyObject {
    /// This process's index, from 0.
    var rank: Int { get }
    /// The number of ranks.
    var size: Int { get }

    /// Replaces `values` on every rank with their element-wise sum over all ranks. `purpose`
    /// names what the sum is for, such as "gradients of epoch 2, step 5", for error messages.
    func sum(_ values: UnsafeMutableBufferPointer<Float>, purpose: String) throws
    func sum(_ values: UnsafeMutableBufferPointer<Double>, purpose: String) throws
}

extension ReplicaGroup {
    /// Returns every rank's `values`, indexed by rank. All ranks must pass the same count.
    public func gather(_ values: [Double], purpose: String) throws -> [[Double]] {
        // A sum in which each rank fills only its own slot and the rest are zeros: x + 0 is x
        // exactly, so every rank receives every other's values unchanged.
        var slots = [Double](repeating: 0, count: values.count * size)
        slots.replaceSubrange(rank * values.count..<(rank + 1) * values.count, with: values)
        try slots.withUnsafeMutableBufferPointer { try sum($0, purpose: purpose) }
        return (0..<size).map { Array(slots[$0 * values.count..<($0 + 1) * values.count]) }
    }

    /// Returns the part of `count` items, such as the samples of one batch, that this rank
    /// takes. The items are split in rank order into parts whose sizes differ by at most one.
    public func share(of count: Int) -> Range<Int> {
        (rank * count / size)..<((rank + 1) * count / size)
    }
}

public enum ReplicaError: Error, CustomStringConvertible {
    /// The ranks' weights differ after a step, which means they have run different steps.
    case weightsDiffer(ranks: [Int], epoch: Int, step: Int)
    /// The ranks' gradient buffers have different lengths, so their backends lay out tensors
    /// differently.
    case layoutsDiffer(counts: [Int])

    public var description: String {
        switch self {
        case .weightsDiffer(let ranks, let epoch, let step):
            let names = ranks.map(String.init).joined(separator: ", ")
            return "the weights of rank\(ranks.count == 1 ? "" : "s") \(names) differ from rank 0's after epoch \(epoch), "
                + "step \(step); the ranks ran different steps"
        case .layoutsDiffer(let counts):
            return "the ranks hold their gradients in buffers of different lengths (\(counts.map(String.init).joined(separator: ", ")) "
                + "values by rank); run every rank with the same backend on the same kind of CPU"
        }
    }
}

/// One step's loss, accuracy and sample count, and whether a stop was requested, summed over
/// the ranks.
struct StepTotals {
    var lossSum: Double
    var correct: Int
    var count: Int
    var stopRequested: Bool

    func summed(over group: ReplicaGroup, purpose: String) throws -> StepTotals {
        var values = [lossSum, Double(correct), Double(count), stopRequested ? 1 : 0]
        try values.withUnsafeMutableBufferPointer { try group.sum($0, purpose: purpose) }
        return StepTotals(lossSum: values[0], correct: Int(values[1]), count: Int(values[2]), stopRequested: values[3] > 0)
    }
}

/// Sums gradients across ranks through one flat buffer per step.
///
/// The gradients are copied, in the backend's own layout, into the buffer, each scaled by the
/// rank's share of the batch, summed, and copied back. Each rank's gradient is the mean over
/// its `n` samples of an `m`-sample batch, so the sum of `n / m` times each is the mean over
/// the whole batch, the gradient one process computes from all of it.
final class GradientExchange: ElementwiseUpdate {
    private var floats: [Float] = []
    private var doubles: [Double] = []
    private var offset = 0
    private var scale = 1.0
    private var packing = true
    private var holdsDoubles = false
    private var checkedCount: Int?

    func sum(_ gradients: [Tensor], backend: Backend, group: ReplicaGroup, weight: Double, purpose: String) throws {
        offset = 0
        packing = true
        scale = weight
        for gradient in gradients {
            try backend.update([gradient], with: self)
        }
        let count = offset

        if checkedCount != count {
            let counts = try group.gather([Double(count)], purpose: "gradient buffer lengths").map { Int($0[0]) }
            guard Set(counts).count == 1 else { throw ReplicaError.layoutsDiffer(counts: counts) }
            checkedCount = count
        }
        if holdsDoubles {
            try doubles.withUnsafeMutableBufferPointer {
                try group.sum(UnsafeMutableBufferPointer(rebasing: $0[0..<count]), purpose: purpose)
            }
        } else {
            try floats.withUnsafeMutableBufferPointer {
                try group.sum(UnsafeMutableBufferPointer(rebasing: $0[0..<count]), purpose: purpose)
            }
        }

        offset = 0
        packing = false
        for gradient in gradients {
            try backend.update([gradient], with: self)
        }
    }

    func apply(_ buffers: [UnsafeMutableBufferPointer<Float>]) {
        holdsDoubles = false
        copy(buffers[0], &floats, scale: Float(scale))
    }

    func apply(_ buffers: [UnsafeMutableBufferPointer<Double>]) {
        holdsDoubles = true
        copy(buffers[0], &doubles, scale: scale)
    }

    private func copy<Scalar: BinaryFloatingPoint>(
        _ tensor: UnsafeMutableBufferPointer<Scalar>, _ flat: inout [Scalar], scale: Scalar
    ) {
        let range = offset..<offset + tensor.count
        offset = range.upperBound
        if packing {
            if flat.count < range.upperBound {
                flat.append(contentsOf: repeatElement(0, count: range.upperBound - flat.count))
            }
            for index in 0..<tensor.count {
                flat[range.lowerBound + index] = tensor[index] * scale
            }
        } else {
            for index in 0..<tensor.count {
                tensor[index] = flat[range.lowerBound + index]
            }
        }
    }
}

/// Returns a 64-bit FNV-1a hash of the values of `parameters` in the canonical layout, split
/// into two halves that a Double represents exactly.
func weightChecksum(_ parameters: [Parameter], backend: Backend) throws -> [Double] {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for parameter in parameters {
        for value in try backend.values(of: parameter.value) {
            var bits = value.bitPattern
            for _ in 0..<4 {
                hash = (hash ^ UInt64(bits & 0xff)) &* 0x0000_0100_0000_01b3
                bits >>= 8
            }
        }
    }
    return [Double(hash >> 32), Double(hash & 0xffff_ffff)]
}
