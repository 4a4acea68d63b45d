import Foundation

/// The position of the channel axis in rank-4 image arrays.
public enum ImageLayout: String, Sendable, CaseIterable {
    /// N x H x W x C, as Keras and TensorFlow store images.
    case channelsLast = "channels-last"
    /// N x C x H x W, as PyTorch stores images.
    case channelsFirst = "channels-first"
}

/// Training and test sets read from image and label files, with what the conversion did.
public struct FileDatasets {
    public var train: InMemoryDataset
    public var test: InMemoryDataset
    /// The number of classes: the largest label plus one, or the requested count when larger.
    public var classCount: Int
    /// The element type of the image files, such as `uint8`.
    public var imageType: String
    /// Whether the images were divided by 255, which happens for `uint8` images only.
    public var isScaled: Bool
    /// The layout of rank-4 images, given or detected, or nil for N x H x W images.
    public var layout: ImageLayout?
}

/// The names of the four arrays in an NPZ archive of images and labels.
public struct NPZKeys: Sendable, Equatable {
    public var trainImages: String
    public var trainLabels: String
    public var testImages: String
    public var testLabels: String

    public init(trainImages: String, trainLabels: String, testImages: String, testLabels: String) {
        self.trainImages = trainImages
        self.trainLabels = trainLabels
        self.testImages = testImages
        self.testLabels = testLabels
    }

    /// The names in Keras's `mnist.npz`: `x_train`, `y_train`, `x_test` and `y_test`.
    public static let keras = NPZKeys(trainImages: "x_train", trainLabels: "y_train", testImages: "x_test", testLabels: "y_test")
}

/// Loads image classification data sets from IDX and NPZ files into memory.
///
/// Images become float32 samples C x H x W: `uint8` images are divided by 255 into [0, 1],
/// other types keep their values. Labels must be integers; float labels are rejected, so
/// that class indices stay exact.
public enum DatasetFiles {
    /// The four files of MNIST and Fashion-MNIST, each optionally with `.gz`.
    public static let idxFileNames = [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    ]

    /// Reads MNIST-style IDX files from `directory`: `train-images-idx3-ubyte`,
    /// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each
    /// plain or gzip-compressed (with or without `.gz` in the name).
    ///
    /// - Parameter classes: the class count to use when it is larger than the largest label
    ///   plus one. A smaller count is an error that names the label beyond it.
    public static func loadIDX(directory: String, classes: Int? = nil) throws -> FileDatasets {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataFileError(file: directory, "is not a directory; expected a directory holding \(idxFileNames.joined(separator: ", "))")
        }

        let paths = try idxFileNames.map { name in
            let plain = (directory as NSString).appendingPathComponent(name)
            for candidate in [plain, plain + ".gz"] where FileManager.default.fileExists(atPath: candidate) {
                return candidate
            }
            throw DataFileError(
                file: directory, "has no file \(name) or \(name).gz; expected the four MNIST files \(idxFileNames.joined(separator: ", ")), each optionally gzip-compressed")
        }
        let arrays = try paths.map { NamedArray(try IDXFile.read(path: $0), DataFileLocation(file: $0)) }
        return try makeDatasets(
            train: (images: arrays[0], labels: arrays[1]), test: (images: arrays[2], labels: arrays[3]),
            layout: nil, classes: classes)
    }

    /// Reads images and labels from the NPZ archive at `path`, under `keys`.
    ///
    /// Images may be N x H x W (one channel) or rank 4. A rank-4 layout is taken from `layout`
    /// when given, and otherwise detected. It is channels-last when the last axis has at most 4
    /// entries and the second more, and channels-first in the opposite case. When both or
    /// neither axis is that small, the error names the shape.
    public static func loadNPZ(
        path: String, keys: NPZKeys = .keras, layout: ImageLayout? = nil, classes: Int? = nil
    ) throws -> FileDatasets {
        let archive = try NPZArchive(path: path)
        func load(_ key: String) throws -> NamedArray {
            NamedArray(try archive.array(key), DataFileLocation(file: path, member: "\(key).npy"))
        }
        return try makeDatasets(
            train: (images: try load(keys.trainImages), labels: try load(keys.trainLabels)),
            test: (images: try load(keys.testImages), labels: try load(keys.testLabels)),
            layout: layout, classes: classes)
    }

    // MARK: - Conversion

    /// An array with the file (and member) it came from, for errors.
    struct NamedArray {
        var array: NumericArray
        var location: DataFileLocation

        init(_ array: NumericArray, _ location: DataFileLocation) {
            self.array = array
            self.location = location
        }

        /// The file, and the member inside an archive, as errors name it.
        var source: String {
            location.member.map { "member \($0) of \(location.file)" } ?? location.file
        }

        func error(_ message: String) -> DataFileError {
            location.error(message)
        }
    }

    static func makeDatasets(
        train: (images: NamedArray, labels: NamedArray), test: (images: NamedArray, labels: NamedArray),
        layout: ImageLayout?, classes: Int?
    ) throws -> FileDatasets {
        let trainImages = try imageSamples(train.images, layout: layout)
        let testImages = try imageSamples(test.images, layout: layout)
        guard trainImages.shape == testImages.shape else {
            throw test.images.error(
                "has images of \(testImages.shape) (C x H x W), but the training images in \(train.images.source) are \(trainImages.shape); both sets need one image shape")
        }
        guard train.images.array.typeName == test.images.array.typeName else {
            throw test.images.error(
                "has \(test.images.array.typeName) images, but the training images in \(train.images.source) are \(train.images.array.typeName); both sets need one element type, so that they are scaled alike")
        }

        let trainLabels = try labelValues(train.labels, imageCount: trainImages.count, images: train.images)
        let testLabels = try labelValues(test.labels, imageCount: testImages.count, images: test.images)

        // The class count must cover every label of both sets, and may be raised by the caller.
        var classCount = 0
        var largest: (label: Int, index: Int, file: NamedArray)?
        for (labels, source) in [(trainLabels, train.labels), (testLabels, test.labels)] {
            for (index, label) in labels.enumerated() where label >= classCount {
                classCount = label + 1
                largest = (label, index, source)
            }
        }
        if let classes {
            if let largest, largest.label >= classes {
                throw largest.file.error(
                    "has label \(largest.label) at index \(largest.index), but the class count is \(classes); the count must be above every label, or left out to use the largest label plus one")
            }
            classCount = max(classCount, classes)
        }

        let sampleShape = trainImages.shape
        return FileDatasets(
            train: try InMemoryDataset(
                sampleShape: sampleShape, inputs: trainImages.inputs, labels: trainLabels, classCount: max(classCount, 1)),
            test: try InMemoryDataset(
                sampleShape: sampleShape, inputs: testImages.inputs, labels: testLabels, classCount: max(classCount, 1)),
            classCount: classCount,
            imageType: train.images.array.typeName,
            isScaled: trainImages.isScaled,
            layout: trainImages.layout)
    }

    /// Converts images to float32 samples C x H x W, dividing `uint8` values by 255.
    static func imageSamples(_ images: NamedArray, layout: ImageLayout?) throws
        -> (shape: TensorShape, count: Int, inputs: [Float], layout: ImageLayout?, isScaled: Bool)
    {
        let dims = images.array.shape
        let expected = "expected N x H x W, N x H x W x C (channels-last) or N x C x H x W (channels-first)"
        guard dims.count == 3 || dims.count == 4 else {
            throw images.error("has images of shape \(describeShape(dims)); \(expected)")
        }
        guard dims.allSatisfy({ $0 > 0 }) else {
            throw images.error("has images of shape \(describeShape(dims)), which contains no pixels; \(expected)")
        }

        let resolved = dims.count == 4 ? try layout ?? detectLayout(dims, images: images) : nil
        var values = images.array.floats()
        if images.array.isFloatingPoint, let bad = values.firstIndex(where: { !$0.isFinite }) {
            let imageSize = dims.dropFirst().reduce(1, *)
            throw images.error(
                "has the value \(values[bad]) in image \(bad / imageSize) (element \(bad)); every pixel must be a finite "
                    + "number, so replace or drop that image")
        }
        let isScaled: Bool
        if case .uint8 = images.array.storage {
            for index in values.indices { values[index] /= 255 }
            isScaled = true
        } else {
            isScaled = false
        }

        guard let resolved else {
            return (TensorShape(1, dims[1], dims[2]), dims[0], values, nil, isScaled)
        }
        switch resolved {
        case .channelsFirst:
            return (TensorShape(dims[1], dims[2], dims[3]), dims[0], values, resolved, isScaled)
        case .channelsLast:
            let (count, height, width, channels) = (dims[0], dims[1], dims[2], dims[3])
            var transposed = [Float](repeating: 0, count: values.count)
            let planeSize = height * width
            let imageSize = planeSize * channels
            for image in 0..<count {
                let base = image * imageSize
                for pixel in 0..<planeSize {
                    for channel in 0..<channels {
                        transposed[base + channel * planeSize + pixel] = values[base + pixel * channels + channel]
                    }
                }
            }
            return (TensorShape(channels, height, width), count, transposed, resolved, isScaled)
        }
    }

    /// Detects the layout of rank-4 images from which axis is small enough to hold channels.
    static func detectLayout(_ dims: [Int], images: NamedArray) throws -> ImageLayout {
        let channelLimit = 4
        switch (dims[1] <= channelLimit, dims[3] <= channelLimit) {
        case (false, true): return .channelsLast
        case (true, false): return .channelsFirst
        default:
            throw images.error(
                "has images of shape \(describeShape(dims)), where either axis 1 or axis 3 could be the channels; give the layout, channels-last (N x H x W x C) or channels-first (N x C x H x W)")
        }
    }

    /// Returns the labels as exact integers, checked against the image count and for sign.
    static func labelValues(_ labels: NamedArray, imageCount: Int, images: NamedArray) throws -> [Int] {
        let dims = labels.array.shape
        // Keras stores some label sets, such as CIFAR-10's, as N x 1.
        guard dims.count == 1 || (dims.count == 2 && dims[1] == 1) else {
            throw labels.error("has labels of shape \(describeShape(dims)); expected (N,) or (N, 1) class indices")
        }
        guard let values = labels.array.integers() else {
            if labels.array.isFloatingPoint {
                throw labels.error(
                    "has labels of type \(labels.array.typeName); expected integer class indices, so save them as integers (uint8 or int64)")
            }
            throw labels.error("has uint64 labels above \(Int.max); expected class indices")
        }
        guard values.count == imageCount else {
            throw labels.error(
                "has \(values.count) labels, but \(images.source) has \(imageCount) images; expected one label per image")
        }
        if let index = values.firstIndex(where: { $0 < 0 }) {
            throw labels.error("has label \(values[index]) at index \(index); expected class indices of at least 0")
        }
        return values
    }
}

extension DatasetFiles {
    /// Images read from an NPY file for prediction, scaled as the training loaders scale them.
    public struct Images: Sendable {
        /// Per-image shape, C x H x W.
        public var sampleShape: TensorShape
        public var count: Int
        /// The images one after another, each C x H x W.
        public var inputs: [Float]
        /// Whether the values were divided by 255, which happens for `uint8` images only.
        public var isScaled: Bool
    }

    /// Reads images from the NPY file at `path`: N x H x W, N x H x W x C, N x C x H x W, or
    /// one H x W image. `uint8` values are divided by 255, as `loadIDX` and `loadNPZ` do.
    public static func loadImages(npy path: String, layout: ImageLayout? = nil) throws -> Images {
        var array = try NPYFile.read(path: path)
        if array.shape.count == 2 {
            array = try NumericArray(shape: [1] + array.shape, storage: array.storage)
        }
        let images = try imageSamples(NamedArray(array, DataFileLocation(file: path, member: nil)), layout: layout)
        return Images(sampleShape: images.shape, count: images.count, inputs: images.inputs, isScaled: images.isScaled)
    }
}
