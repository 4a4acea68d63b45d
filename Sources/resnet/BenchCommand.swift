import Foundation
import ResNetKit

let benchCommand = Command(
    name: "bench",
    summary: "measure training and inference images/s, GFLOP/s and the convolution-only ceiling",
    description: """
        Times training steps (forward, backward and the Adam update) and inference passes of a \
        model on random data after warm-up steps, and reports the median as images/s and effective \
        GFLOP/s. The convolution-only ceiling times each convolution of the model alone, forward \
        and backward, and sums the fastest run of each: the throughput the model would reach if \
        everything else took no time. At small sizes a step takes milliseconds, and timing noise \
        can still put training above the ceiling; use more --steps there. Peak resident memory is the process's, from getrusage.
        """,
    options: [
        Option("model", choices: Architecture.allCases.map(\.rawValue), help: "network to measure", default: "tutorial"),
        Option("input", placeholder: "HxWxC", help: "image height, width and channels", default: "224x224x3"),
        Option("batch-size", placeholder: "N", help: "samples per step", default: "32"),
        Option("classes", placeholder: "N", help: "number of classes", default: "10"),
        Option("mode", choices: ["train", "inference", "both"], help: "what to time", default: "both"),
        Option("steps", placeholder: "N", help: "timed steps; the median is reported", default: "5"),
        Option("warmup", placeholder: "N", help: "untimed steps first, which build primitives and buffers", default: "2"),
        Option(flag: "no-ceiling", help: "skip timing the convolutions alone"),
        Option(flag: "json", help: "print one JSON object instead of text, for scripts"),
        threadsOption,
        backendOption,
        noWinogradOption,
    ])

func runBench(_ arguments: ParsedArguments) throws -> Int32 {
    let architecture = try arguments.choice("model", as: Architecture.self)
    let input = try arguments.imageShape("input")
    let batch = try arguments.integer("batch-size", in: 1...4096)
    let classes = try arguments.integer("classes", in: 2...100_000)
    let mode = try arguments.choice("mode")
    let steps = try arguments.integer("steps", in: 1...10_000)
    let warmup = try arguments.integer("warmup", in: 0...10_000)
    let threads = try parseThreads(arguments)
    let choice = try arguments.choice("backend", as: BackendChoice.self)
    let json = arguments.flag("json")

    let backend = try makeBackend(choice, threads: threads, winograd: !arguments.flag("no-winograd"))
    let model = try buildModel(architecture, classes: classes, input: input, backend: backend, seed: 1)
    try checkMemory(model, batch: batch)
    let benchmark = Benchmark(model: model, batch: batch, warmupSteps: warmup, timedSteps: steps)
    let result = try benchmark.run(
        training: mode != "inference", inference: mode != "train", convolutions: mode != "inference" && !arguments.flag("no-ceiling"))
    let peak = peakResidentBytes()

    if json {
        var fields: [(String, String)] = [
            ("model", "\"\(architecture.rawValue)\""),
            ("input", "\"\(input)\""),
            ("batch_size", "\(batch)"),
            ("backend", "\"\(backend.summary)\""),
        ]
        func number(_ key: String, _ value: Double?) {
            if let value { fields.append((key, String(format: "%.4f", value))) }
        }
        number("images_per_second", result.trainingImagesPerSecond ?? result.inferenceImagesPerSecond)
        number("training_images_per_second", result.trainingImagesPerSecond)
        number("training_gflops", result.trainingGigaflops)
        number("inference_images_per_second", result.inferenceImagesPerSecond)
        number("inference_gflops", result.inferenceGigaflops)
        number("convolution_ceiling_images_per_second", result.convolutionCeilingImagesPerSecond)
        number("ceiling_fraction", result.ceilingFraction)
        fields.append(("peak_rss_bytes", "\(peak)"))
        print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        return 0
    }

    printConfiguration([
        ("model", "\(architecture.rawValue), \(String(format: "%.2f", Double(model.forwardFlops) / 1e9)) GFLOP forward, "
            + "\(String(format: "%.2f", Double(model.trainingFlops) / 1e9)) GFLOP training per image"),
        ("input", "\(input)"),
        ("batch_size", "\(batch)"),
        ("steps", "\(warmup) warm-up, \(steps) timed, median reported"),
        ("backend", backend.summary),
    ])
    if let rate = result.trainingImagesPerSecond, let gflops = result.trainingGigaflops, let step = result.trainingStepSeconds {
        print(String(format: "training: %.1f img/s, %.1f GFLOP/s, %.1f ms/step", rate, gflops, step * 1000))
    }
    if let ceiling = result.convolutionCeilingImagesPerSecond, let fraction = result.ceilingFraction {
        print(String(format: "convolution ceiling: %.1f img/s; training reaches %.0f%% of it", ceiling, fraction * 100))
    }
    if let rate = result.inferenceImagesPerSecond, let gflops = result.inferenceGigaflops, let pass = result.inferenceSeconds {
        print(String(format: "inference: %.1f img/s, %.1f GFLOP/s, %.1f ms/batch", rate, gflops, pass * 1000))
    }
    print(String(format: "peak resident memory: %.0f MB", Double(peak) / 1e6))
    return 0
}
