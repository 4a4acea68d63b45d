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
let noWinogradOption = Option(
    flag: "no-winograd",
    help: "run every convolution directly, without Winograd's transforms (onednn backend only)")

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

/// Returns the memory this process may still use: MemAvailable from /proc/meminfo, or the
/// machine's physical memory where that file cannot be read.
func availableMemoryBytes() -> Int {
    if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
        let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    {
        return kilobytes * 1024
    }
    return Int(ProcessInfo.processInfo.physicalMemory)
}

/// Rejects a training run whose memory plan exceeds the memory available, before anything
/// large is allocated, suggesting a batch size that fits.
func checkMemory(_ model: Model, batch: Int, stateTensorsPerParameter: Int = 2, dataBytes: Int = 0) throws {
    let plan = MemoryPlan(
        model: model, batch: batch, stateTensorsPerParameter: stateTensorsPerParameter, dataBytes: dataBytes)
    try checkMemory(plan, model: model, batch: batch, stateTensorsPerParameter: stateTensorsPerParameter)
}

/// Throws when `processes` copies of the plan, one per rank on this machine, exceed the
/// available memory. `batch` is one rank's share of a step's batch, of `ranks` in all.
func checkMemory(
    _ plan: MemoryPlan, model: Model, batch: Int, stateTensorsPerParameter: Int, processes: Int = 1, ranks: Int = 1
) throws {
    let available = availableMemoryBytes() / processes
    guard plan.total > available else { return }

    let input = "\(model.inputShape[1])x\(model.inputShape[2])x\(model.inputShape[0])"
    let fitting = MemoryPlan.largestBatch(
        model: model, upTo: batch - 1, stateTensorsPerParameter: stateTensorsPerParameter, dataBytes: plan.data,
        limit: available)
    guard processes == 1, ranks == 1 else {
        let advice = fitting.map { "use --batch-size \($0 * ranks) or less (\($0) per rank)" } ?? "use fewer ranks per machine"
        throw UsageError(
            "\(processes) \(processes == 1 ? "rank" : "ranks") on this machine, each training model \(model.name) at "
                + "--input \(input) on \(batch) samples per step, need about \(gigabytes(plan.total)) each (an estimate), "
                + "more than the \(gigabytes(available)) available to each; \(advice)")
    }
    let advice = fitting.map { "use --batch-size \($0) or less, or a smaller --input" } ?? "use a smaller --input or fewer samples"
    throw UsageError(
        "--batch-size \(batch) with model \(model.name) at --input \(input) needs about "
            + "\(gigabytes(plan.total)) for training (an estimate), more than the \(gigabytes(available)) "
            + "available; \(advice)")
}

/// Prints the memory plan as `resnet train --dry-run` shows it.
func printMemoryPlan(_ plan: MemoryPlan) {
    let rows: [(String, Int)] = [
        ("parameters", plan.parameters), ("gradients", plan.gradients), ("optimizer state", plan.optimizerState),
        ("activations", plan.activations), ("workspace", plan.workspace), ("data", plan.data), ("total", plan.total),
    ]
    print("memory plan (estimate, float32):")
    for (name, bytes) in rows {
        print("  \(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(megabytes(bytes))")
    }
    print("  available        \(megabytes(availableMemoryBytes()))")
}

func gigabytes(_ bytes: Int) -> String {
    String(format: "%.1f GB", Double(bytes) / 1e9)
}

func megabytes(_ bytes: Int) -> String {
    String(format: "%10.1f MB", Double(bytes) / 1e6)
}
