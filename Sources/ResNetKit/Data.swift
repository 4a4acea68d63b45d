import Dispatch
import Foundation

/// Samples with targets, read by index into batches.
public protocol Dataset: AnyObject {
    var count: Int { get }
    /// Per-sample input shape, CxHxW (or `[F]` for flat features).
    var sampleShape: TensorShape { get }
    /// The number of classes, or nil for regression targets.
    var classCount: Int? { get }

    /// Writes the inputs of the samples at `indices`, one after another in canonical order.
    func copyInputs(_ indices: ArraySlice<Int>, into buffer: UnsafeMutableBufferPointer<Float>)

    func targets(_ indices: ArraySlice<Int>) -> Targets
}

/// A data set held in memory: inputs `[count, sampleShape...]` and class labels or target values.
public final class InMemoryDataset: Dataset {
    public let sampleShape: TensorShape
    public let inputs: [Float]
    public let labels: [Int]?
    public let values: [Float]?
    public let classCount: Int?
    public let count: Int
    private let targetWidth: Int

    public init(sampleShape: TensorShape, inputs: [Float], labels: [Int], classCount: Int) throws {
        let sampleSize = sampleShape.elementCount
        guard sampleSize > 0, inputs.count == labels.count * sampleSize else {
            throw BackendError(
                "dataset", "\(inputs.count) input values do not make \(labels.count) samples of \(sampleShape)")
        }
        if let bad = labels.firstIndex(where: { !(0..<classCount).contains($0) }) {
            throw BackendError("dataset", "label \(labels[bad]) of sample \(bad) is outside 0..<\(classCount)")
        }
        self.sampleShape = sampleShape
        self.inputs = inputs
        self.labels = labels
        self.values = nil
        self.classCount = classCount
        self.count = labels.count
        self.targetWidth = 1
    }

    public init(sampleShape: TensorShape, inputs: [Float], values: [Float], outputs: Int) throws {
        let sampleSize = sampleShape.elementCount
        guard sampleSize > 0, outputs > 0, inputs.count % sampleSize == 0,
            values.count == inputs.count / sampleSize * outputs
        else {
            throw BackendError(
                "dataset", "\(inputs.count) inputs and \(values.count) targets do not pair up as \(sampleShape) -> \(outputs)")
        }
        self.sampleShape = sampleShape
        self.inputs = inputs
        self.labels = nil
        self.values = values
        self.classCount = nil
        self.count = inputs.count / sampleSize
        self.targetWidth = outputs
    }

    public func copyInputs(_ indices: ArraySlice<Int>, into buffer: UnsafeMutableBufferPointer<Float>) {
        let sampleSize = sampleShape.elementCount
        inputs.withUnsafeBufferPointer { source in
            for (position, index) in indices.enumerated() {
                let from = source.baseAddress! + index * sampleSize
                (buffer.baseAddress! + position * sampleSize).update(from: from, count: sampleSize)
            }
        }
    }

    public func targets(_ indices: ArraySlice<Int>) -> Targets {
        if let labels {
            return .classes(indices.map { labels[$0] })
        }
        let values = values ?? []
        return .values(indices.flatMap { values[$0 * targetWidth..<($0 + 1) * targetWidth] })
    }
}

/// Data made from a seed.
public enum SyntheticData {
    /// Samples generated per random stream; fixed so that the data does not depend on the
    /// thread count.
    static let chunkSize = 8

    /// Makes the tutorial's data: every input value uniform in [0, 1) and labels uniform over the
    /// classes, independent of the inputs. Nothing here can be learned: a model that
    /// generalizes reaches accuracy 1/classes and loss ln(classes) on fresh samples.
    public static func uniform(samples: Int, sampleShape: TensorShape, classes: Int, seed: UInt64) throws
        -> InMemoryDataset
    {
        let sampleSize = sampleShape.elementCount
        var inputs = [Float](repeating: 0, count: samples * sampleSize)
        let chunks = (samples + chunkSize - 1) / chunkSize

        inputs.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                var generator = SeededGenerator(seed: seed, stream: UInt64(chunk) + 1)
                let start = chunk * chunkSize * sampleSize
                let end = min(samples, (chunk + 1) * chunkSize) * sampleSize
                for index in start..<end {
                    base[index] = generator.nextUnitFloat()
                }
            }
        }

        var labelGenerator = SeededGenerator(seed: seed, stream: 0)
        let labels = (0..<samples).map { _ in Int(labelGenerator.next() % UInt64(classes)) }
        return try InMemoryDataset(sampleShape: sampleShape, inputs: inputs, labels: labels, classCount: classes)
    }
}

extension SyntheticData {
    /// Makes learnable images: each class is a sinusoidal grating at its own orientation, 180
    /// degrees / classes apart. Each image has a random phase, a random frequency between 2 and
    /// 4 cycles across the image and Gaussian noise of standard deviation `noise`. Every channel
    /// holds the same pattern, and values lie around 0.5.
    public static func gratings(samples: Int, sampleShape: TensorShape, classes: Int, noise: Double = 0.2, seed: UInt64)
        throws -> InMemoryDataset
    {
        guard sampleShape.rank == 3 else {
            throw BackendError("gratings", "expected an image shape CxHxW, got \(sampleShape)")
        }
        let (channels, height, width) = (sampleShape[0], sampleShape[1], sampleShape[2])
        let sampleSize = sampleShape.elementCount
        var labelGenerator = SeededGenerator(seed: seed, stream: 0)
        let labels = (0..<samples).map { _ in Int(labelGenerator.next() % UInt64(classes)) }
        var inputs = [Float](repeating: 0, count: samples * sampleSize)

        inputs.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            DispatchQueue.concurrentPerform(iterations: samples) { sample in
                var generator = SeededGenerator(seed: seed, stream: UInt64(sample) + 1)
                let angle = Double.pi * Double(labels[sample]) / Double(classes)
                let cycles = 2 + 2 * generator.nextUnitDouble()
                let phase = 2 * Double.pi * generator.nextUnitDouble()
                let (dx, dy) = (cos(angle), sin(angle))
                let scale = 2 * Double.pi * cycles / Double(max(height, width))
                let image = base + sample * sampleSize
                for row in 0..<height {
                    for column in 0..<width {
                        let wave = sin(scale * (dx * Double(column) + dy * Double(row)) + phase)
                        for channel in 0..<channels {
                            let value = 0.5 + 0.4 * wave + noise * generator.nextNormal()
                            image[(channel * height + row) * width + column] = Float(value)
                        }
                    }
                }
            }
        }
        return try InMemoryDataset(sampleShape: sampleShape, inputs: inputs, labels: labels, classCount: classes)
    }
}
