import Foundation
import ResNetKit
import ResNetOneDNN

enum BackendChoice: String, CaseIterable {
    case onednn, reference
}

/// Creates the backend a command asked for; `threads` nil means one per core.
func makeBackend(_ choice: BackendChoice, threads: Int?, winograd: Bool) throws -> Backend {
    switch choice {
    case .onednn:
        return try OneDNNBackend(threads: threads, winograd: winograd)
    case .reference:
        return ReferenceBackend<Float>(threads: threads)
    }
}

let threadsOption = Option(
    "threads", placeholder: "N", help: "threads for the backend's kernels (oneDNN's OpenMP pool or Dispatch)",
    default: "one per core")
let backendOption = Option(
    "backend", choices: BackendChoice.allCases.map(\.rawValue),
    help: "onednn runs oneDNN's kernels; reference runs the readable pure-Swift ones", default: "onednn")
let winogradOption = Option(
    flag: "winograd",
    help: "let oneDNN pick Winograd convolutions where it judges them faster (onednn backend only)")

func parseThreads(_ arguments: ParsedArguments) throws(UsageError) -> Int? {
    arguments.contains("threads") ? try arguments.integer("threads", in: 1...1024) : nil
}

/// Turns `--input HxWxC` into the canonical per-sample shape CxHxW.
func sampleShape(_ shape: ImageShape) -> TensorShape {
    TensorShape(shape.channels, shape.height, shape.width)
}

func printConfiguration(_ rows: [(String, String)]) {
    for (key, value) in rows {
        print("\(key): \(value)")
    }
}

func groupedThousands(_ value: Int) -> String {
    let digits = String(value)
    var result = ""
    for (index, character) in digits.enumerated() {
        if index > 0, (digits.count - index) % 3 == 0 { result.append(",") }
        result.append(character)
    }
    return result
}

/// Builds a model, turning a shape the network cannot take into a usage error about `--input`.
func buildModel(_ architecture: Architecture, classes: Int, input: ImageShape, backend: Backend, seed: UInt64) throws
    -> Model
{
    do {
        return try architecture.makeModel(classes: classes, inputShape: sampleShape(input), backend: backend, seed: seed)
    } catch let error as BackendError {
        throw UsageError(
            "--input \(input) does not fit model \(architecture.rawValue): \(error); use a larger --input")
    }
}

/// Rejects a batch size whose training step would need more memory than the machine has,
/// suggesting one that fits.
func checkMemory(_ model: Model, batch: Int) throws {
    let needed = Double(model.estimatedTrainingBytes(batch: batch))
    let available = 0.9 * Double(ProcessInfo.processInfo.physicalMemory)
    guard needed > available else { return }

    let perSample = Double(model.estimatedTrainingBytes(batch: 2) - model.estimatedTrainingBytes(batch: 1))
    let fitting = Int(available / max(perSample, 1))
    let advice = fitting >= 1 ? "use --batch-size \(min(fitting, batch - 1)) or less, or a smaller --input" : "use a smaller --input"
    throw UsageError(
        "--batch-size \(batch) with model \(model.name) at --input \(model.inputShape[1])x\(model.inputShape[2])x\(model.inputShape[0]) needs about "
            + "\(String(format: "%.1f", needed / 1e9)) GB for a training step (an estimate), more than the "
            + "\(String(format: "%.1f", available / 0.9 / 1e9)) GB of this machine; \(advice)")
}
