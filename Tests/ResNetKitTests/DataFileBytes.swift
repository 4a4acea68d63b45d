import CZlib
import Foundation
import ResNetKit
import XCTest

/// Builders of IDX, NPY, gzip and zip bytes, assembled by hand from the format specifications
/// and independent of the readers under test. Deflate compression comes from zlib's compress2.
enum DataFileBytes {
    // MARK: Integers

    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian, Array.init)
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian, Array.init)
    }

    // MARK: IDX

    /// Builds an IDX file: two zero bytes, the type code, the axis count, big-endian uint32
    /// sizes, then `payload` as given.
    static func idx(type: UInt8, shape: [UInt32], payload: [UInt8]) -> [UInt8] {
        [0, 0, type, UInt8(shape.count)] + shape.flatMap { bigEndian($0) } + payload
    }

    // MARK: NPY

    /// Builds an NPY file with `header`, a Python dict literal, padded with spaces and a newline
    /// so that the data starts at a multiple of 64 bytes, as NumPy writes it.
    static func npy(header: String, payload: [UInt8], major: UInt8 = 1) -> [UInt8] {
        let lengthFieldSize = major == 1 ? 2 : 4
        let prefixSize = 8 + lengthFieldSize
        var text = Array(header.utf8)
        let padded = (prefixSize + text.count + 1 + 63) / 64 * 64
        text += [UInt8](repeating: 0x20, count: padded - prefixSize - text.count - 1) + [0x0a]
        let length = major == 1 ? littleEndian(UInt16(text.count)) : littleEndian(UInt32(text.count))
        return [0x93] + Array("NUMPY".utf8) + [major, 0] + length + text + payload
    }

    /// Formats the header dict that `np.save` writes for `descr` and `shape`.
    static func npyHeader(_ descr: String, _ shape: [Int], fortranOrder: Bool = false) -> String {
        let axes = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        return "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(axes), }"
    }

    // MARK: CRC-32 and deflate

    /// CRC-32 as gzip and zip define it: reflected polynomial 0xEDB88320, bit by bit.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 {
                crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1
            }
        }
        return ~crc
    }

    /// Raw deflate data: zlib's compress2 output without its 2-byte header and 4-byte Adler-32.
    static func deflate(_ bytes: [UInt8]) -> [UInt8] {
        var capacity = compressBound(uLong(bytes.count))
        var output = [UInt8](repeating: 0, count: Int(capacity))
        let status = compress2(&output, &capacity, bytes, uLong(bytes.count), 9)
        precondition(status == Z_OK, "compress2 failed with status \(status)")
        return Array(output[2..<(Int(capacity) - 4)])
    }

    /// Wraps raw deflate data in a gzip member with the CRC-32 and length of `original`.
    static func gzip(deflated: [UInt8], of original: [UInt8]) -> [UInt8] {
        let header: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]
        return header + deflated + littleEndian(crc32(original)) + littleEndian(UInt32(truncatingIfNeeded: original.count))
    }

    /// Builds a gzip member whose deflate data is stored blocks of at most 65,535 bytes.
    static func storedGzip(_ bytes: [UInt8]) -> [UInt8] {
        var blocks: [UInt8] = []
        var start = 0
        repeat {
            let end = min(start + 65_535, bytes.count)
            let isFinal: UInt8 = end == bytes.count ? 1 : 0
            let length = UInt16(end - start)
            blocks += [isFinal] + littleEndian(length) + littleEndian(~length) + bytes[start..<end]
            start = end
        } while start < bytes.count
        return gzip(deflated: blocks, of: bytes)
    }

    /// Builds a gzip member compressed by zlib.
    static func deflatedGzip(_ bytes: [UInt8]) -> [UInt8] {
        gzip(deflated: deflate(bytes), of: bytes)
    }

    // MARK: Zip

    struct ZipMember {
        var name: String
        var contents: [UInt8]
        var deflated: Bool
        /// The uncompressed size written to the headers, when it should differ from the truth.
        var declaredSize: UInt32?

        init(_ name: String, _ contents: [UInt8], deflated: Bool, declaredSize: UInt32? = nil) {
            self.name = name
            self.contents = contents
            self.deflated = deflated
            self.declaredSize = declaredSize
        }
    }

    /// Builds a zip archive: local headers with data, the central directory and the end record.
    static func zip(_ members: [ZipMember]) -> [UInt8] {
        var archive: [UInt8] = []
        var directory: [UInt8] = []
        for member in members {
            let name = Array(member.name.utf8)
            let stored = member.deflated ? deflate(member.contents) : member.contents
            let crc = crc32(member.contents)
            let offset = UInt32(archive.count)
            // version 20, flags 0, method, time and date 0, CRC, sizes, name and extra lengths
            let fields: [UInt8] = littleEndian(UInt16(20)) + littleEndian(UInt16(0))
                + littleEndian(UInt16(member.deflated ? 8 : 0)) + littleEndian(UInt32(0)) + littleEndian(crc)
                + littleEndian(UInt32(stored.count)) + littleEndian(member.declaredSize ?? UInt32(member.contents.count))
                + littleEndian(UInt16(name.count)) + littleEndian(UInt16(0))
            archive += littleEndian(UInt32(0x0403_4b50)) + fields + name + stored
            // version made by, then the same fields, comment length, disk, attributes, offset
            directory += littleEndian(UInt32(0x0201_4b50)) + littleEndian(UInt16(20)) + fields
                + littleEndian(UInt16(0)) + littleEndian(UInt16(0)) + littleEndian(UInt16(0))
                + littleEndian(UInt32(0)) + littleEndian(offset) + name
        }
        let directoryOffset = UInt32(archive.count)
        let end = littleEndian(UInt32(0x0605_4b50)) + littleEndian(UInt16(0)) + littleEndian(UInt16(0))
            + littleEndian(UInt16(members.count)) + littleEndian(UInt16(members.count))
            + littleEndian(UInt32(directory.count)) + littleEndian(directoryOffset) + littleEndian(UInt16(0))
        return archive + directory + end
    }
}

/// A temporary directory for one test, removed when the test ends.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("resnet-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    /// Writes `bytes` to `name` in the directory and returns the file's path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = url.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// Asserts that `expression` throws a `DataFileError` naming `file` whose description contains
/// every one of `fragments`.
func assertDataFileError<T>(
    _ expression: @autoclosure () throws -> T, file: String, contains fragments: [String],
    _ label: String = "", sourceFile: StaticString = #filePath, line: UInt = #line
) {
    do {
        _ = try expression()
        XCTFail("\(label): expected an error containing \(fragments)", file: sourceFile, line: line)
    } catch let error as DataFileError {
        let description = error.description
        XCTAssertTrue(description.contains(file), "\(label): \(description) should name \(file)", file: sourceFile, line: line)
        for fragment in fragments {
            XCTAssertTrue(
                description.contains(fragment), "\(label): \(description) should contain '\(fragment)'",
                file: sourceFile, line: line)
        }
    } catch {
        XCTFail("\(label): expected DataFileError, got \(error)", file: sourceFile, line: line)
    }
}
