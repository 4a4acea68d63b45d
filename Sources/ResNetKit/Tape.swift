/// A reverse-mode, define-by-run autodiff tape.
///
/// Layers record each differentiable operation as it runs, with a closure that maps the
/// gradient of the operation's output to the gradients of its inputs. `gradients(of:seed:for:)`
/// replays the records in reverse and sums the gradients of a tensor used more than once (the
/// identity branch of a residual block). It drops each record once it has run, so the tensors
/// it saved are freed as early as possible. Inference runs without a tape and records nothing.
public final class Tape {
    /// Maps `dy` and, per input, whether its gradient is needed, to one gradient per input
    /// (nil where not needed).
    public typealias Backward = (_ dy: Tensor, _ needsGradient: [Bool]) throws -> [Tensor?]

    private struct Record {
        var output: Tensor
        var inputs: [Tensor]
        var needsGradient: [Bool]
        var backward: Backward
    }

    private let backend: Backend
    private var records: [Record?] = []
    private var tracked: Set<ObjectIdentifier> = []

    public init(backend: Backend) {
        self.backend = backend
    }

    /// The number of operations recorded and not yet replayed.
    public var count: Int { records.lazy.filter { $0 != nil }.count }

    /// Marks `tensor` (a parameter, usually) as one whose gradient is wanted.
    public func watch(_ tensor: Tensor) {
        tracked.insert(ObjectIdentifier(tensor))
    }

    /// Records an operation that produced `output` from `inputs`. Inputs that neither are
    /// watched nor depend on a watched tensor get no gradient.
    public func record(_ output: Tensor, inputs: [Tensor], backward: @escaping Backward) {
        let needsGradient = inputs.map { tracked.contains(ObjectIdentifier($0)) }
        guard needsGradient.contains(true) else { return }

        tracked.insert(ObjectIdentifier(output))
        records.append(Record(output: output, inputs: inputs, needsGradient: needsGradient, backward: backward))
    }

    /// Propagates `seed`, the gradient of the loss with respect to `output`, back through every
    /// record and returns the gradients of `targets` in order (nil for a target the output does
    /// not depend on). The tape is empty afterwards.
    public func gradients(of output: Tensor, seed: Tensor, for targets: [Tensor]) throws -> [Tensor?] {
        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(output): seed]

        for index in records.indices.reversed() {
            guard let record = records[index] else { continue }
            records[index] = nil
            guard let dy = pending.removeValue(forKey: ObjectIdentifier(record.output)) else { continue }

            let inputGradients = try record.backward(dy, record.needsGradient)
            for (position, input) in record.inputs.enumerated() where record.needsGradient[position] {
                guard let gradient = inputGradients[position] else { continue }
                let key = ObjectIdentifier(input)
                if let earlier = pending[key] {
                    pending[key] = try backend.add(earlier, gradient)
                } else {
                    pending[key] = gradient
                }
            }
        }

        records.removeAll()
        return targets.map { pending[ObjectIdentifier($0)] }
    }
}
