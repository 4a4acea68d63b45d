import Foundation
import ResNetKit
import XCTest

final class IDXTests: XCTestCase {
    private typealias Bytes = DataFileBytes

    func testUint8ImagesShapeAndValues() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("images", Bytes.idx(type: 0x08, shape: [2, 2, 3], payload: Array(0..<12)))

        let array = try IDXFile.read(path: path)
        XCTAssertEqual(array.shape, [2, 2, 3])
        XCTAssertEqual(array.storage, .uint8(Array(0..<12)))
        XCTAssertEqual(array.typeName, "uint8")
    }

    func testElementsAreBigEndian() throws {
        let cases: [(type: UInt8, payload: [UInt8], expected: NumericArray.Storage)] = [
            (0x09, [0xff, 0x7f], .int8([-1, 127])),
            (0x0B, [0x01, 0x02, 0xff, 0xfe], .int16([0x0102, -2])),
            (0x0C, [0x01, 0x02, 0x03, 0x04, 0xff, 0xff, 0xff, 0xff], .int32([0x0102_0304, -1])),
            // 1.5 is 0x3FC00000 and -2.25 is 0xC0100000 in IEEE 754 single precision.
            (0x0D, [0x3f, 0xc0, 0, 0, 0xc0, 0x10, 0, 0], .float32([1.5, -2.25])),
            // 1.0 is 0x3FF0000000000000 and -0.5 is 0xBFE0000000000000 in double precision.
            (0x0E, [0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xbf, 0xe0, 0, 0, 0, 0, 0, 0], .float64([1, -0.5])),
        ]
        for (type, payload, expected) in cases {
            let array = try IDXFile.read(data: Data(Bytes.idx(type: type, shape: [2], payload: payload)), file: "case")
            XCTAssertEqual(array.shape, [2], "type \(type)")
            XCTAssertEqual(array.storage, expected, "type \(type)")
        }
    }

    func testGzipDetectedFromMagicNotName() throws {
        let directory = try TemporaryDirectory()
        let plain = Bytes.idx(type: 0x08, shape: [3, 2], payload: [10, 20, 30, 40, 50, 60])
        let expected = NumericArray.Storage.uint8([10, 20, 30, 40, 50, 60])

        // Gzip without .gz in the name, and plain bytes with .gz in the name.
        let stored = try directory.write("stored-gzip.idx", Bytes.storedGzip(plain))
        let deflated = try directory.write("deflated-gzip", Bytes.deflatedGzip(plain))
        let misnamed = try directory.write("plain.gz", plain)
        for path in [stored, deflated, misnamed] {
            let array = try IDXFile.read(path: path)
            XCTAssertEqual(array.shape, [3, 2], path)
            XCTAssertEqual(array.storage, expected, path)
        }
    }

    func testGzipSpanningManyBlocksAndMembers() throws {
        // 200,000 bytes need four stored blocks; a second gzip member continues the stream.
        let values = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let file = Bytes.idx(type: 0x08, shape: [200_000], payload: values)
        let split = 100_003
        let twoMembers = Bytes.storedGzip(Array(file[..<split])) + Bytes.deflatedGzip(Array(file[split...]))

        let array = try IDXFile.read(data: Data(twoMembers), file: "two-members.gz")
        XCTAssertEqual(array.storage, .uint8(values))
    }

    func testMalformedFilesNameTheProblem() throws {
        let directory = try TemporaryDirectory()
        let good = Bytes.idx(type: 0x08, shape: [2, 3], payload: Array(1...6))
        var corruptCRC = Bytes.storedGzip(good)
        corruptCRC[corruptCRC.count - 6] ^= 0xff
        let cases: [(name: String, bytes: [UInt8], expected: [String])] = [
            ("wrong-magic", [1, 0, 8, 1] + Bytes.bigEndian(UInt32(1)) + [5], ["is not an IDX file", "01 00 08 01"]),
            ("unknown-type", Bytes.idx(type: 0x0A, shape: [1], payload: [0]), ["type byte 0x0A", "0x08 (uint8)"]),
            ("no-axes", [0, 0, 8, 0], ["0 axes"]),
            ("short-header", [0, 0, 8, 3, 0, 0, 0, 2], ["short of the 3 axis sizes"]),
            ("truncated-data", Array(good.dropLast(2)), ["(2, 3)", "6 bytes of data", "4 bytes follow the header"]),
            ("extra-data", good + [0], ["6 bytes of data", "7 bytes follow the header"]),
            ("claims-2^31", Bytes.idx(type: 0x08, shape: [0x8000_0000], payload: [1, 2, 3]),
             ["(2147483648,)", "2147483648 bytes of data", "3 bytes follow the header"]),
            ("claims-2^31.gz", Bytes.storedGzip(Bytes.idx(type: 0x08, shape: [0x8000_0000], payload: [1, 2, 3])),
             ["decompresses to 2147483645 bytes fewer", "2147483648 bytes"]),
            ("overflow", Bytes.idx(type: 0x0E, shape: [0xffff_ffff, 0xffff_ffff, 0xffff_ffff], payload: []),
             ["overflows a 64-bit integer"]),
            ("cut-short.gz", Array(Bytes.deflatedGzip(good).dropLast(5)), ["gzip data that ends early"]),
            ("cut-in-header.gz", Array(Bytes.storedGzip(good).prefix(6)), ["gzip data that ends early"]),
            ("corrupt-crc.gz", corruptCRC, ["corrupt gzip data", "incorrect data check"]),
            ("trailing.gz", Bytes.storedGzip(good) + [1, 2, 3], ["3 bytes after the end of its gzip data"]),
            ("extra-data.gz", Bytes.storedGzip(good + [9]), ["has more bytes after the data of shape (2, 3)"]),
        ]
        for (name, bytes, expected) in cases {
            let path = try directory.write(name, bytes)
            assertDataFileError(try IDXFile.read(path: path), file: path, contains: expected, name)
        }
        assertDataFileError(
            try IDXFile.read(path: directory.url.path + "/absent"), file: "absent", contains: ["does not exist"])
        let empty = try directory.write("empty", [])
        assertDataFileError(try IDXFile.read(path: empty), file: empty, contains: ["is empty"])
    }
}
