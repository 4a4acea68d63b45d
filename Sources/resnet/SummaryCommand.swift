import Foundation
import ResNetKit

let summaryCommand = Command(
    name: "summary",
    summary: "print a model's layers with output shapes, parameter counts and FLOPs",
    description: """
        Builds a model for an input shape and prints one row per layer: its name, kind, output \
        shape for one image (NCHW), parameter count and forward FLOPs per image, counting a \
        multiply-add of a convolution or dense layer as two operations. Batch-norm rows count \
        the running mean and variance, which are not trainable.
        """,
    options: [
        Option("model", choices: Architecture.allCases.map(\.rawValue), help: "network to describe", default: "tutorial"),
        Option("input", placeholder: "HxWxC", help: "image height, width and channels", default: "224x224x3"),
        Option("classes", placeholder: "N", help: "number of classes", default: "10"),
    ])

func runSummary(_ arguments: ParsedArguments) throws -> Int32 {
    let architecture = try arguments.choice("model", as: Architecture.self)
    let input = try arguments.imageShape("input")
    let classes = try arguments.integer("classes", in: 2...100_000)
    let model = try buildModel(
        architecture, classes: classes, input: input, backend: ReferenceBackend<Float>(threads: 1), seed: 1)

    let rows = model.network.summaryRows(name: "")
    let header = ["layer", "kind", "output", "parameters", "MFLOPs"]
    let cells = rows.map { row in
        [
            row.name, row.kind, row.outputShape.description, groupedThousands(row.parameterCount),
            String(format: "%.1f", Double(row.flops) / 1e6),
        ]
    }
    let widths = (0..<header.count).map { column in
        ([header[column]] + cells.map { $0[column] }).map(\.count).max() ?? 0
    }
    func line(_ values: [String]) -> String {
        values.enumerated().map { column, value in
            column >= 3
                ? String(repeating: " ", count: widths[column] - value.count) + value
                : value.padding(toLength: widths[column], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }

    print("\(architecture.rawValue) for \(input), \(classes) classes")
    print(line(header))
    for row in cells {
        print(line(row))
    }
    print("total parameters: \(groupedThousands(model.parameterCount))")
    print("trainable parameters: \(groupedThousands(model.trainableParameterCount))")
    print(String(format: "forward: %.3f GFLOP per image; training: %.3f GFLOP per image",
                 Double(model.forwardFlops) / 1e9, Double(model.trainingFlops) / 1e9))
    return 0
}
