import Foundation
import ResNetKit
import XCTest

final class NPYTests: XCTestCase {
    private typealias Bytes = DataFileBytes

    private func read(_ bytes: [UInt8]) throws -> NumericArray {
        try NPYFile.read(data: Data(bytes), file: "array.npy")
    }

    func testFloat32MatrixVersion1() throws {
        // IEEE 754 bit patterns of 1.5, -2.25, 0, 3, 4 and 5, written little-endian.
        let bits: [UInt32] = [0x3fc0_0000, 0xc010_0000, 0, 0x4040_0000, 0x4080_0000, 0x40a0_0000]
        let file = Bytes.npy(header: Bytes.npyHeader("<f4", [2, 3]), payload: bits.flatMap { Bytes.littleEndian($0) })
        XCTAssertEqual(file.count % 64, 24, "the header pads the data start to 64 bytes")

        let array = try read(file)
        XCTAssertEqual(array.shape, [2, 3])
        XCTAssertEqual(array.storage, .float32([1.5, -2.25, 0, 3, 4, 5]))
        XCTAssertEqual(array.floats(), [1.5, -2.25, 0, 3, 4, 5])
        XCTAssertNil(array.integers())
    }

    func testVersions2And3AndIntegerTypes() throws {
        let uint8 = try read(Bytes.npy(header: Bytes.npyHeader("|u1", [2, 2]), payload: [0, 255, 7, 128], major: 2))
        XCTAssertEqual(uint8.shape, [2, 2])
        XCTAssertEqual(uint8.storage, .uint8([0, 255, 7, 128]))

        let int16 = try read(Bytes.npy(
            header: Bytes.npyHeader("<i2", [2]), payload: Bytes.littleEndian(Int16(-300)) + Bytes.littleEndian(Int16(5)),
            major: 3))
        XCTAssertEqual(int16.storage, .int16([-300, 5]))

        let bools = try read(Bytes.npy(header: Bytes.npyHeader("|b1", [3]), payload: [1, 0, 1]))
        XCTAssertEqual(bools.integers(), [1, 0, 1])
    }

    func testInt64LabelsStayExact() throws {
        // 2^40 + 1 is not representable in float32, so a float path would change it.
        let values: [Int64] = [1 << 40 + 1, -3, 9]
        let array = try read(Bytes.npy(header: Bytes.npyHeader("<i8", [3]), payload: values.flatMap { Bytes.littleEndian($0) }))
        XCTAssertEqual(array.storage, .int64(values))
        XCTAssertEqual(array.integers(), [1_099_511_627_777, -3, 9])

        let huge = try read(Bytes.npy(header: Bytes.npyHeader("<u8", [1]), payload: Bytes.littleEndian(UInt64.max)))
        XCTAssertNil(huge.integers(), "uint64 above Int.max has no exact Int")
    }

    func testBigEndianIsByteSwapped() throws {
        let int32 = try read(Bytes.npy(
            header: Bytes.npyHeader(">i4", [2]), payload: Bytes.bigEndian(Int32(1)) + Bytes.bigEndian(Int32(-2))))
        XCTAssertEqual(int32.storage, .int32([1, -2]))

        // 1.0 and -0.5 in double precision, written big-endian.
        let float64 = try read(Bytes.npy(
            header: Bytes.npyHeader(">f8", [2]),
            payload: Bytes.bigEndian(UInt64(0x3ff0_0000_0000_0000)) + Bytes.bigEndian(UInt64(0xbfe0_0000_0000_0000))))
        XCTAssertEqual(float64.storage, .float64([1, -0.5]))
    }

    func testHeaderVariantsNumPyWrites() throws {
        let payload = Bytes.littleEndian(Int32(4)) + Bytes.littleEndian(Int32(5))
        let headers = [
            // Keys in another order, double quotes, no trailing comma.
            "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<i4\"}",
            // Python 2 wrote long integers with an L suffix.
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2L,), }",
            // With one axis, Fortran and C order store the same bytes.
            Bytes.npyHeader("<i4", [2], fortranOrder: true),
        ]
        for header in headers {
            let array = try read(Bytes.npy(header: header, payload: payload))
            XCTAssertEqual(array.shape, [2], header)
            XCTAssertEqual(array.storage, .int32([4, 5]), header)
        }

        let scalar = try read(Bytes.npy(header: Bytes.npyHeader("<i4", []), payload: Array(payload.prefix(4))))
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.storage, .int32([4]))
    }

    func testMalformedFilesNameTheProblem() throws {
        let directory = try TemporaryDirectory()
        let twelveBytes = [UInt8](repeating: 0, count: 12)
        var versionFour = Bytes.npy(header: Bytes.npyHeader("<f4", [3]), payload: twelveBytes)
        versionFour[6] = 4
        let cases: [(name: String, bytes: [UInt8], expected: [String])] = [
            ("wrong-magic", Array("NUMPY not really".utf8), ["is not an NPY file", "4e 55 4d 50 59 20"]),
            ("version-4", versionFour, ["version 4.0", "expected 1.0, 2.0 or 3.0"]),
            ("header-past-end", [0x93] + Array("NUMPY".utf8) + [1, 0] + Bytes.littleEndian(UInt16(1000)) + Array("{}".utf8),
             ["header of 1000 bytes", "only 2 bytes follow"]),
            ("truncated-data", Bytes.npy(header: Bytes.npyHeader("<f4", [3]), payload: Array(twelveBytes.prefix(8))),
             ["(3,)", "12 bytes of data", "only 8 bytes follow"]),
            ("extra-data", Bytes.npy(header: Bytes.npyHeader("<f4", [3]), payload: twelveBytes + [0, 0, 0, 0]),
             ["12 bytes of data", "but 16 bytes follow"]),
            ("claims-2^31", Bytes.npy(header: Bytes.npyHeader("|u1", [1 << 31]), payload: [1, 2]),
             ["(2147483648,)", "2147483648 bytes of data", "only 2 bytes follow"]),
            ("overflow", Bytes.npy(header: Bytes.npyHeader("<f4", [1 << 62, 4]), payload: []), ["overflows a 64-bit integer"]),
            ("fortran-order", Bytes.npy(header: Bytes.npyHeader("<f4", [1, 3], fortranOrder: true), payload: twelveBytes),
             ["Fortran (column-major) order", "np.ascontiguousarray"]),
            ("float16", Bytes.npy(header: Bytes.npyHeader("<f2", [2]), payload: [0, 0x3c, 0, 0x40]), ["'<f2' (float16)", "astype"]),
            // The payload is the start of a pickle, which must never be read.
            ("object", Bytes.npy(header: Bytes.npyHeader("|O", [1]), payload: [0x80, 0x04, 0x95, 0x0b]),
             ["contains Python objects", "never unpickles"]),
            ("structured", Bytes.npy(header: "{'descr': [('x', '<f4'), ('y', '<i4')], 'fortran_order': False, 'shape': (1,), }", payload: []),
             ["structured dtype"]),
            ("complex", Bytes.npy(header: Bytes.npyHeader("<c8", [1]), payload: [0, 0, 0, 0, 0, 0, 0, 0]), ["'<c8'", "not supported"]),
            ("native-order", Bytes.npy(header: Bytes.npyHeader("=f4", [3]), payload: twelveBytes), ["native byte order"]),
            ("missing-key", Bytes.npy(header: "{'descr': '<f4', 'shape': (3,), }", payload: twelveBytes),
             ["without the key 'fortran_order'"]),
            ("bad-literal", Bytes.npy(header: "{'descr': '<f4', 'fortran_order': Flase, 'shape': (3,), }", payload: twelveBytes),
             ["invalid NPY header", "Flase"]),
            ("negative-axis", Bytes.npy(header: Bytes.npyHeader("<f4", [-3]), payload: twelveBytes), ["non-negative"]),
        ]
        for (name, bytes, expected) in cases {
            let path = try directory.write(name + ".npy", bytes)
            assertDataFileError(try NPYFile.read(path: path), file: path, contains: expected, name)
        }
    }
}
