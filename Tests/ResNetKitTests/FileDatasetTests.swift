import Foundation
import ResNetKit
import XCTest

final class FileDatasetTests: XCTestCase {
    private typealias Bytes = DataFileBytes

    private func npyUint8(_ shape: [Int], _ values: [UInt8]) -> [UInt8] {
        Bytes.npy(header: Bytes.npyHeader("|u1", shape), payload: values)
    }

    private func npyInt64(_ shape: [Int], _ values: [Int64]) -> [UInt8] {
        Bytes.npy(header: Bytes.npyHeader("<i8", shape), payload: values.flatMap { Bytes.littleEndian($0) })
    }

    private func npyFloat32(_ shape: [Int], _ values: [Float]) -> [UInt8] {
        Bytes.npy(header: Bytes.npyHeader("<f4", shape), payload: values.flatMap { Bytes.littleEndian($0.bitPattern) })
    }

    /// Builds an archive with Keras's mnist.npz keys for the given NPY files.
    private func kerasArchive(
        xTrain: [UInt8], yTrain: [UInt8], xTest: [UInt8], yTest: [UInt8], deflated: Bool = false
    ) -> [UInt8] {
        Bytes.zip([
            .init("x_train.npy", xTrain, deflated: deflated), .init("y_train.npy", yTrain, deflated: deflated),
            .init("x_test.npy", xTest, deflated: deflated), .init("y_test.npy", yTest, deflated: deflated),
        ])
    }

    // MARK: NPZ

    func testKerasMnistLayoutStoredAndDeflated() throws {
        let directory = try TemporaryDirectory()
        let trainPixels: [UInt8] = [0, 51, 102, 153, 204, 255, 1, 2, 3, 4, 5, 6]
        for deflated in [false, true] {
            let path = try directory.write("mnist-\(deflated).npz", kerasArchive(
                xTrain: npyUint8([3, 2, 2], trainPixels), yTrain: npyUint8([3], [0, 2, 1]),
                xTest: npyUint8([1, 2, 2], [255, 0, 0, 255]), yTest: npyInt64([1, 1], [3]), deflated: deflated))

            let archive = try NPZArchive(path: path)
            XCTAssertEqual(archive.keys, ["x_train", "y_train", "x_test", "y_test"])
            XCTAssertEqual(try archive.array("x_train").storage, .uint8(trainPixels))

            let sets = try DatasetFiles.loadNPZ(path: path)
            XCTAssertEqual(sets.train.count, 3)
            XCTAssertEqual(sets.train.sampleShape, TensorShape(1, 2, 2))
            XCTAssertEqual(sets.train.inputs, trainPixels.map { Float($0) / 255 })
            XCTAssertEqual(sets.train.inputs[1], 0.2, accuracy: 1e-7)
            XCTAssertEqual(sets.train.labels, [0, 2, 1])
            XCTAssertEqual(sets.test.inputs, [1, 0, 0, 1])
            XCTAssertEqual(sets.test.labels, [3], "labels of shape (N, 1) are read as (N,)")
            XCTAssertEqual(sets.classCount, 4, "largest label 3 in the test set, plus one")
            XCTAssertEqual(sets.train.classCount, 4)
            XCTAssertTrue(sets.isScaled)
            XCTAssertNil(sets.layout)

            let wider = try DatasetFiles.loadNPZ(path: path, classes: 10)
            XCTAssertEqual(wider.classCount, 10, "a requested count above the largest label is kept")
        }
    }

    func testChannelsLastAndFirstGiveSameSamples() throws {
        let directory = try TemporaryDirectory()
        let (count, channels, height, width) = (2, 3, 5, 6)
        // Each value encodes its image, channel, row and column.
        func value(_ n: Int, _ c: Int, _ h: Int, _ w: Int) -> Float {
            Float(n * 1000 + c * 100 + h * 10 + w)
        }
        var channelsLast: [Float] = []
        for n in 0..<count { for h in 0..<height { for w in 0..<width { for c in 0..<channels {
            channelsLast.append(value(n, c, h, w))
        } } } }
        var channelsFirst: [Float] = []
        for n in 0..<count { for c in 0..<channels { for h in 0..<height { for w in 0..<width {
            channelsFirst.append(value(n, c, h, w))
        } } } }

        let labels = npyInt64([2], [0, 1])
        let lastPath = try directory.write("last.npz", kerasArchive(
            xTrain: npyFloat32([count, height, width, channels], channelsLast), yTrain: labels,
            xTest: npyFloat32([count, height, width, channels], channelsLast), yTest: labels, deflated: true))
        let firstPath = try directory.write("first.npz", kerasArchive(
            xTrain: npyFloat32([count, channels, height, width], channelsFirst), yTrain: labels,
            xTest: npyFloat32([count, channels, height, width], channelsFirst), yTest: labels))

        let last = try DatasetFiles.loadNPZ(path: lastPath)
        let first = try DatasetFiles.loadNPZ(path: firstPath)
        XCTAssertEqual(last.layout, .channelsLast)
        XCTAssertEqual(first.layout, .channelsFirst)
        XCTAssertFalse(last.isScaled, "float images keep their values")
        for sets in [last, first] {
            XCTAssertEqual(sets.train.sampleShape, TensorShape(channels, height, width))
            XCTAssertEqual(sets.train.inputs, channelsFirst)
            XCTAssertEqual(sets.test.inputs, channelsFirst)
        }

        // A given layout overrides detection: the channels-first file read as channels-last is
        // N x H x W x C = 2 x 3 x 5 x 6, so the stored element (h * 5 + w) * 6 + c of the
        // first image lands at channel c, row h, column w.
        let forced = try DatasetFiles.loadNPZ(path: firstPath, layout: .channelsLast)
        XCTAssertEqual(forced.train.sampleShape, TensorShape(6, 3, 5))
        for (h, w, c) in [(0, 1, 0), (0, 0, 1), (2, 4, 5), (1, 3, 2)] {
            XCTAssertEqual(forced.train.inputs[(c * 3 + h) * 5 + w], channelsFirst[(h * 5 + w) * 6 + c], "h \(h) w \(w) c \(c)")
        }
    }

    func testCustomKeys() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("custom.npz", Bytes.zip([
            .init("images.npy", npyUint8([1, 1, 1], [255]), deflated: false),
            .init("targets.npy", npyUint8([1], [1]), deflated: true),
        ]))
        let keys = NPZKeys(trainImages: "images", trainLabels: "targets", testImages: "images", testLabels: "targets")
        let sets = try DatasetFiles.loadNPZ(path: path, keys: keys)
        XCTAssertEqual(sets.train.inputs, [1])
        XCTAssertEqual(sets.test.labels, [1])
        XCTAssertEqual(sets.classCount, 2)
    }

    func testMalformedArchivesNameTheProblem() throws {
        let directory = try TemporaryDirectory()
        let images = npyUint8([3, 2, 2], Array(0..<12))
        let labels = npyUint8([3], [0, 1, 2])
        let good = kerasArchive(xTrain: images, yTrain: labels, xTest: images, yTest: labels)

        var zip64 = good
        zip64.replaceSubrange((zip64.count - 14)..<(zip64.count - 10), with: [0xff, 0xff, 0xff, 0xff])
        // The first member's data starts after the 30-byte local header and its 11-byte name;
        // its pixels start after the 128-byte NPY header.
        var corruptMember = good
        corruptMember[30 + 11 + 128 + 2] ^= 0x01
        // The method sits at byte 8 of the local header and byte 10 of the central directory
        // entry, which is 46 bytes and the name, before the 22-byte end record.
        var bzip2 = Bytes.zip([.init("x_train.npy", images, deflated: false)])
        bzip2[8] = 12
        bzip2[bzip2.count - 22 - (46 + 11) + 10] = 12

        let cases: [(name: String, bytes: [UInt8], key: String, expected: [String])] = [
            ("not-zip", Array("just text, not an archive".utf8), "x_train", ["not a zip archive"]),
            ("cut-short", Array(good.prefix(good.count / 2)), "x_train", ["end-of-central-directory", "cut short"]),
            ("zip64", zip64, "x_train", ["zip64", "not supported"]),
            ("crc", corruptMember, "x_train", ["member x_train.npy", "CRC-32"]),
            ("bzip2", bzip2, "x_train", ["compression method 12"]),
            ("missing", good, "x_val", ["no array 'x_val'", "x_train, y_train, x_test, y_test"]),
            ("size-lie", Bytes.zip([.init("x_train.npy", images, deflated: true, declaredSize: 0x7fff_ffff)]), "x_train",
             ["2147483647 uncompressed bytes", "can hold"]),
            ("wrong-size", Bytes.zip([.init("x_train.npy", images, deflated: true, declaredSize: UInt32(images.count + 1))]),
             "x_train", ["inflates to \(images.count) bytes", "declares \(images.count + 1)"]),
        ]
        for (name, bytes, key, expected) in cases {
            let path = try directory.write(name + ".npz", bytes)
            assertDataFileError(try NPZArchive(path: path).array(key), file: path, contains: expected, name)
        }
    }

    func testInvalidDataSetsNameTheProblem() throws {
        let directory = try TemporaryDirectory()
        let images = npyUint8([3, 2, 2], Array(0..<12))
        let labels = npyUint8([3], [0, 1, 2])
        let cases: [(name: String, bytes: [UInt8], classes: Int?, expected: [String])] = [
            ("count-mismatch", kerasArchive(xTrain: images, yTrain: npyUint8([2], [0, 1]), xTest: images, yTest: labels), nil,
             ["member y_train.npy", "has 2 labels", "x_train.npy", "has 3 images"]),
            ("above-classes", kerasArchive(xTrain: images, yTrain: labels, xTest: images, yTest: npyUint8([3], [0, 5, 1])), 3,
             ["member y_test.npy", "label 5 at index 1", "class count is 3"]),
            ("negative", kerasArchive(xTrain: images, yTrain: npyInt64([3], [0, -1, 1]), xTest: images, yTest: labels), nil,
             ["label -1 at index 1"]),
            ("float-labels", kerasArchive(xTrain: images, yTrain: npyFloat32([3], [0, 1, 2]), xTest: images, yTest: labels), nil,
             ["labels of type float32", "integer class indices"]),
            ("huge-labels", kerasArchive(
                xTrain: images, yTrain: Bytes.npy(header: Bytes.npyHeader("<u8", [3]), payload: [UInt64(0), 1, .max].flatMap { Bytes.littleEndian($0) }),
                xTest: images, yTest: labels), nil,
             ["uint64 labels above 9223372036854775807"]),
            ("shape-mismatch", kerasArchive(xTrain: images, yTrain: labels, xTest: npyUint8([3, 4, 1], Array(0..<12)), yTest: labels),
             nil, ["member x_test.npy", "1x4x1", "1x2x2"]),
            ("flat-images", kerasArchive(xTrain: npyUint8([3, 4], Array(0..<12)), yTrain: labels, xTest: images, yTest: labels), nil,
             ["shape (3, 4)", "expected N x H x W"]),
            ("ambiguous-layout", kerasArchive(
                xTrain: npyUint8([1, 3, 2, 3], Array(0..<18)), yTrain: npyUint8([1], [1]),
                xTest: npyUint8([1, 3, 2, 3], Array(0..<18)), yTest: npyUint8([1], [0])), nil,
             ["shape (1, 3, 2, 3)", "channels-last", "channels-first"]),
            ("nan-pixel", kerasArchive(
                xTrain: npyFloat32([3, 2, 2], [0, 1, 0, 1, 0, 1, 0, .nan, 0, 1, 0, 1]), yTrain: labels,
                xTest: npyFloat32([3, 2, 2], Array(repeating: 0.5, count: 12)), yTest: labels), nil,
             ["member x_train.npy", "value nan in image 1 (element 7)", "finite"]),
            ("infinite-pixel", kerasArchive(
                xTrain: npyFloat32([3, 2, 2], Array(repeating: 0.5, count: 12)), yTrain: labels,
                xTest: npyFloat32([3, 2, 2], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -.infinity]), yTest: labels), nil,
             ["member x_test.npy", "value -inf in image 2"]),
            ("missing-test", Bytes.zip([.init("x_train.npy", images, deflated: false), .init("y_train.npy", labels, deflated: false)]),
             nil, ["no array 'x_test'"]),
        ]
        for (name, bytes, classes, expected) in cases {
            let path = try directory.write(name + ".npz", bytes)
            assertDataFileError(try DatasetFiles.loadNPZ(path: path, classes: classes), file: path, contains: expected, name)
        }
    }

    // MARK: IDX

    func testMnistDirectoryPlainAndGzip() throws {
        let directory = try TemporaryDirectory()
        let trainImages: [UInt8] = Array(0..<8).map { $0 * 30 }
        try directory.write("train-images-idx3-ubyte.gz", Bytes.storedGzip(Bytes.idx(type: 0x08, shape: [2, 2, 2], payload: trainImages)))
        try directory.write("train-labels-idx1-ubyte", Bytes.idx(type: 0x08, shape: [2], payload: [7, 2]))
        try directory.write("t10k-images-idx3-ubyte.gz", Bytes.deflatedGzip(Bytes.idx(type: 0x08, shape: [1, 2, 2], payload: [255, 0, 255, 0])))
        // Gzip contents without .gz in the name are detected too.
        try directory.write("t10k-labels-idx1-ubyte", Bytes.storedGzip(Bytes.idx(type: 0x08, shape: [1], payload: [9])))

        let sets = try DatasetFiles.loadIDX(directory: directory.url.path)
        XCTAssertEqual(sets.train.sampleShape, TensorShape(1, 2, 2))
        XCTAssertEqual(sets.train.inputs, trainImages.map { Float($0) / 255 })
        XCTAssertEqual(sets.train.labels, [7, 2])
        XCTAssertEqual(sets.test.inputs, [1, 0, 1, 0])
        XCTAssertEqual(sets.test.labels, [9])
        XCTAssertEqual(sets.classCount, 10)
        XCTAssertEqual(sets.imageType, "uint8")

        try FileManager.default.removeItem(at: directory.url.appendingPathComponent("t10k-labels-idx1-ubyte"))
        assertDataFileError(
            try DatasetFiles.loadIDX(directory: directory.url.path), file: directory.url.path,
            contains: ["no file t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"])
        assertDataFileError(
            try DatasetFiles.loadIDX(directory: directory.url.path + "/absent"), file: "absent", contains: ["is not a directory"])
    }

    func testMnistLabelCountMismatch() throws {
        let directory = try TemporaryDirectory()
        try directory.write("train-images-idx3-ubyte", Bytes.idx(type: 0x08, shape: [2, 1, 1], payload: [0, 1]))
        let labels = try directory.write("train-labels-idx1-ubyte", Bytes.idx(type: 0x08, shape: [3], payload: [0, 1, 1]))
        try directory.write("t10k-images-idx3-ubyte", Bytes.idx(type: 0x08, shape: [1, 1, 1], payload: [0]))
        try directory.write("t10k-labels-idx1-ubyte", Bytes.idx(type: 0x08, shape: [1], payload: [0]))
        assertDataFileError(
            try DatasetFiles.loadIDX(directory: directory.url.path), file: labels,
            contains: ["has 3 labels", "train-images-idx3-ubyte has 2 images"])
    }

    // MARK: Subsets

    func testValidationSplitTakesLastFractionAsKeras() throws {
        let dataset = try InMemoryDataset(
            sampleShape: TensorShape(1), inputs: (0..<10).map(Float.init), labels: (0..<10).map { $0 % 3 }, classCount: 3)
        // Keras: split_at = int(10 * (1 - 0.25)) = 7.
        let (train, validation) = try dataset.splitForValidation(fraction: 0.25)
        XCTAssertEqual(train.inputs, [0, 1, 2, 3, 4, 5, 6])
        XCTAssertEqual(validation.inputs, [7, 8, 9])
        XCTAssertEqual(validation.labels, [1, 2, 0])
        XCTAssertEqual(validation.classCount, 3)

        let middle = try dataset.samples(2..<4)
        XCTAssertEqual(middle.inputs, [2, 3])
        XCTAssertThrowsError(try dataset.samples(8..<11))
    }
}
