import Foundation
import ResNetKit

let predictCommand = Command(
    name: "predict",
    summary: "classify images from an NPY file with a saved checkpoint and print the top classes",
    description: """
        Rebuilds the model a checkpoint written by 'resnet train --save' describes and prints, for \
        each image of --input, the K most probable classes with their softmax probabilities. The \
        images are N x H x W, N x H x W x C, N x C x H x W or one H x W image; uint8 values are \
        divided by 255 as the training loaders do, and the normalization recorded in the \
        checkpoint is applied. The image shape must be the one the model was trained on.
        """,
    options: [
        Option("checkpoint", placeholder: "FILE", help: "safetensors checkpoint written by resnet train --save"),
        Option("input", placeholder: "FILE.npy", help: "NumPy array of images to classify"),
        Option("layout", choices: ImageLayout.allCases.map(\.rawValue),
               help: "position of the channel axis in rank-4 images; detected from the shape when absent"),
        Option("top-k", placeholder: "K", help: "classes to print per image, most probable first", default: "5"),
        Option("batch-size", placeholder: "N", help: "images per forward pass", default: "64"),
        threadsOption,
        backendOption,
        Option(flag: "json", help: "print one JSON object with every prediction instead of text, for scripts"),
    ])

func runPredict(_ arguments: ParsedArguments) throws -> Int32 {
    let checkpointPath = try arguments.string("checkpoint")
    let checkpoint: Checkpoint
    do {
        checkpoint = try Checkpoint(contentsOf: URL(fileURLWithPath: checkpointPath))
    } catch {
        throw UsageError("--checkpoint \(error)")
    }
    let inputPath = try arguments.string("input")
    let layout = arguments.contains("layout") ? try arguments.choice("layout", as: ImageLayout.self) : nil
    let classes = checkpoint.classCount
    let topK = try arguments.integer("top-k", in: 1...classes)
    let batchSize = try arguments.integer("batch-size", in: 1...65_536)

    var images: DatasetFiles.Images
    do {
        images = try DatasetFiles.loadImages(npy: inputPath, layout: layout)
    } catch let error as DataFileError {
        throw UsageError("--input \(error)")
    }
    guard images.sampleShape == checkpoint.inputShape else {
        throw UsageError(
            "--input \(inputPath) has images of \(images.sampleShape) (C x H x W), but the model of \(checkpoint.path) "
                + "takes \(checkpoint.inputShape); resize the images, or pass --layout if the channel axis was misread")
    }
    if let normalization = try recordedNormalization(checkpoint) {
        let dataset = try InMemoryDataset(
            sampleShape: images.sampleShape, inputs: images.inputs, labels: [Int](repeating: 0, count: images.count),
            classCount: 1)
        images.inputs = try dataset.normalized(by: normalization).inputs
    }

    let backend = try makeBackend(
        try arguments.choice("backend", as: BackendChoice.self), threads: try parseThreads(arguments), winograd: true)
    let model: Model
    do {
        model = try checkpoint.makeModel(backend: backend)
    } catch {
        throw UsageError("--checkpoint \(error)")
    }

    var probabilities: [[Float]] = []
    let sampleSize = images.sampleShape.elementCount
    for start in stride(from: 0, to: images.count, by: batchSize) {
        let count = min(batchSize, images.count - start)
        let batch = try images.inputs.withUnsafeBufferPointer { buffer in
            try backend.makeTensor(
                copying: UnsafeBufferPointer(rebasing: buffer[start * sampleSize..<(start + count) * sampleSize]),
                shape: TensorShape([count] + images.sampleShape.dims))
        }
        probabilities += try model.predict(batch)
    }

    let ranked = probabilities.map { row in
        row.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
            .prefix(topK)
    }
    if arguments.flag("json") {
        let predictions: [[String: Any]] = ranked.enumerated().map { index, top in
            ["index": index, "top": top.map { ["class": $0.offset, "probability": Double($0.element)] }]
        }
        let object: [String: Any] = [
            "checkpoint": checkpoint.path, "input": inputPath, "model": checkpoint.architecture,
            "predictions": predictions,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
        return 0
    }
    for (index, top) in ranked.enumerated() {
        let classes = top.map { "\($0.offset) (\(String(format: "%.4f", $0.element)))" }
        print("image \(index): " + classes.joined(separator: ", "))
    }
    return 0
}
