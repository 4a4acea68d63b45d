import Foundation
import ResNetKit

let program = Program(
    name: "resnet",
    description: "Defines, trains and compares residual networks on the CPU, with oneDNN or pure-Swift kernels.",
    commands: [trainCommand, evaluateCommand, predictCommand, compareCommand, benchCommand, summaryCommand])

// Line-buffered output, so that a pipe or a log file receives each epoch's line as it ends.
setvbuf(stdout, nil, _IOLBF, 0)

let parsed: Program.Invocation
do {
    parsed = try program.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    // Under mpiexec every rank parses the same words; rank 0 alone reports what is wrong.
    if let rank = DistributedRun.launchRank, rank > 0 {
        exit(ExitCode.usage)
    }
    exitWithError(error)
}

do {
    switch parsed {
    case .help(let text):
        print(text)
    case .run(let command, let arguments):
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
