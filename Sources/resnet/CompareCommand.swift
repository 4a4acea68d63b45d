import Foundation
import ResNetKit

let compareCommand = Command(
    name: "compare",
    summary: "run one model on the oneDNN and reference backends and report how far they differ",
    description: """
        Builds the same model with the same initial weights on both backends, runs the same batch \
        and prints, for each layer's output and each parameter's gradient, the max absolute \
        difference and the max difference relative to the largest magnitude in the reference \
        tensor; then the forward and training-step time on each backend. Exits 1 when a relative \
        difference exceeds the tolerance of \(BackendComparison.defaultTolerance): both backends \
        compute in float32 but sum in different orders, so they agree closely, never bit for bit. \
        Gradients are measured against at least \(BackendComparison.gradientFloor) of the model's \
        largest gradient, because some are zero up to rounding (the bias of a convolution followed \
        by batch norm). With --steps, the losses of each Adam step must agree to the same \
        tolerance, and the weights afterwards to \(BackendComparison.defaultStepTolerance) of the \
        model's largest weight, since Adam turns rounding noise in a zero gradient into steps of \
        about the learning rate.
        """,
    options: [
        Option("model", choices: Architecture.allCases.map(\.rawValue), help: "network to compare", default: "tutorial"),
        Option("input", placeholder: "HxWxC", help: "image height, width and channels", default: "64x64x3"),
        Option("batch-size", placeholder: "N", help: "samples in the batch", default: "4"),
        Option("classes", placeholder: "N", help: "number of classes", default: "10"),
        Option("seed", placeholder: "N", help: "seed for weights and data", default: "1"),
        Option("mode", choices: ComparisonModeChoice.allCases.map(\.rawValue),
               help: "train compares layer outputs with batch statistics and every gradient; inference compares outputs with running statistics",
               default: "train"),
        Option("steps", placeholder: "N", help: "Adam steps after which losses and weights are compared too", default: "0"),
        threadsOption,
        noWinogradOption,
    ])

enum ComparisonModeChoice: String, CaseIterable {
    case train, inference
}

func runCompare(_ arguments: ParsedArguments) throws -> Int32 {
    let architecture = try arguments.choice("model", as: Architecture.self)
    let input = try arguments.imageShape("input")
    let batch = try arguments.integer("batch-size", in: 1...4096)
    let classes = try arguments.integer("classes", in: 2...100_000)
    let seed = UInt64(try arguments.integer("seed", in: 0...Int.max))
    let mode = try arguments.choice("mode", as: ComparisonModeChoice.self)
    let steps = try arguments.integer("steps", in: 0...10_000)
    let threads = try parseThreads(arguments)

    let candidate = try makeBackend(.onednn, threads: threads, winograd: !arguments.flag("no-winograd"))
    let reference = try makeBackend(.reference, threads: threads, winograd: false)
    let shape = sampleShape(input)
    let probe = try buildModel(architecture, classes: classes, input: input, backend: reference, seed: seed)
    try checkMemory(probe, batch: batch)

    printConfiguration([
        ("model", architecture.rawValue),
        ("input", "\(input)"),
        ("batch_size", "\(batch)"),
        ("mode", mode.rawValue),
        ("steps", "\(steps)"),
        ("candidate", candidate.summary),
        ("reference", reference.summary),
    ])

    let comparison = BackendComparison(
        makeModel: { backend in
            try architecture.makeModel(classes: classes, inputShape: shape, backend: backend, seed: seed)
        },
        batch: batch, mode: mode == .train ? .train : .inference, steps: steps, seed: seed)
    let report = try comparison.run(candidate: candidate, reference: reference)
    printReport(report)
    return report.passed ? 0 : ExitCode.failure
}

func printReport(_ report: ComparisonReport) {
    func table(_ title: String, _ rows: [TensorDifference]) {
        guard !rows.isEmpty else { return }
        print("")
        let width = max(rows.map(\.name.count).max() ?? 0, title.count)
        print(title.padding(toLength: width, withPad: " ", startingAt: 0) + "  max_abs      max_rel      result")
        for row in rows {
            let name = row.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let result = row.passed ? "ok" : "FAIL (tolerance \(row.tolerance))"
            print("\(name)  \(String(format: "%.3e", row.maxAbsolute))    \(String(format: "%.3e", row.maxRelative))    \(result)")
        }
    }

    table("output", report.outputs)
    table("gradient", report.gradients)
    if !report.stepLosses.isEmpty {
        print("")
        print("step  loss (\(report.backendNames.0))  loss (\(report.backendNames.1))")
        for (index, losses) in report.stepLosses.enumerated() {
            print(String(format: "%4d  %.6f          %.6f", index + 1, losses.0, losses.1))
        }
        if let difference = report.stepLossDifference { table("losses", [difference]) }
        table("weights after steps", report.weights)
    }

    print("")
    let (forwardA, forwardB) = report.forwardSeconds
    let (stepA, stepB) = report.stepSeconds
    print(String(format: "forward: %@ %.4fs, %@ %.4fs, ratio %.1fx", report.backendNames.0, forwardA, report.backendNames.1, forwardB, forwardB / forwardA))
    print(String(format: "training step: %@ %.4fs, %@ %.4fs, ratio %.1fx", report.backendNames.0, stepA, report.backendNames.1, stepB, stepB / stepA))
    let failures = (report.outputs + report.gradients + report.weights).filter { !$0.passed }.count
        + (report.stepLossDifference?.passed == false ? 1 : 0)
    print(report.passed ? "result: passed" : "result: FAILED, \(failures) tensors beyond tolerance")
}
