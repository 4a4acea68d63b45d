import Foundation
import ResNetKit
import ResNetOneDNN

let program = Program(
    name: "resnet",
    version: "0.1.0 (oneDNN \(OneDNNBackend.libraryVersion))",
    description: "Defines, trains and compares residual networks on the CPU, with oneDNN or pure-Swift kernels.",
    commands: [trainCommand, evaluateCommand, predictCommand, compareCommand, benchCommand, summaryCommand])

// Line-buffered output, so that a pipe or a log file receives each epoch's line as it ends.
setvbuf(stdout, nil, _IOLBF, 0)

do {
    switch try program.parse(Array(CommandLine.arguments.dropFirst())) {
    case .help(let text):
        print(text)
    case .run(let command, let arguments):
        // Only training runs distributed; any other command under mpiexec would run once per
        // process and print everything that many times.
        let processes = ProcessInfo.processInfo.environment["PMI_SIZE"].flatMap { Int($0) } ?? 1
        if command.name != "train", processes > 1 {
            throw UsageError(
                "mpiexec started \(processes) processes, but 'resnet \(command.name)' runs in one; run it without mpiexec")
        }
        let status: Int32
        switch command.name {
        case "train": status = try runTrain(arguments)
        case "evaluate": status = try runEvaluate(arguments)
        case "predict": status = try runPredict(arguments)
        case "compare": status = try runCompare(arguments)
        case "bench": status = try runBench(arguments)
        case "summary": status = try runSummary(arguments)
        default: status = ExitCode.usage
        }
        exit(status)
    }
} catch let error as UsageError {
    exitWithError(error)
} catch {
    exitWithError("\(error)", code: ExitCode.failure)
}
