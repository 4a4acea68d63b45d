import Foundation

/// Reads IDX files, the format of MNIST and Fashion-MNIST, plain or gzip-compressed.
///
/// An IDX file starts with two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16,
/// 0x0C int32, 0x0D float32, 0x0E float64) and the number of axes. Each axis size follows as a
/// big-endian uint32, then the elements, big-endian and in row-major order. The format is
/// described with the MNIST database at http://yann.lecun.com/exdb/mnist/.
public enum IDXFile {
    /// Reads the array in the file at `path`. Gzip is detected from the first two bytes, not
    /// from the file name.
    public static func read(path: String) throws -> NumericArray {
        try read(DataFileReader(path: path))
    }

    /// Reads an IDX array from bytes in memory. `file` names the source in errors.
    public static func read(data: Data, file: String) throws -> NumericArray {
        try read(DataFileReader(data: data, location: DataFileLocation(file: file)))
    }

    static func read(_ reader: DataFileReader) throws -> NumericArray {
        let location = reader.location
        let magic = try reader.read(4, for: "the 4-byte IDX magic number")
        guard magic[0] == 0, magic[1] == 0 else {
            let found = magic.map { String(format: "%02x", $0) }.joined(separator: " ")
            throw location.error(
                "is not an IDX file: it starts with bytes \(found), expected 00 00 followed by a type byte and the number of axes")
        }
        guard let scalar = scalarType(magic[2]) else {
            throw location.error(
                "has IDX type byte 0x\(String(format: "%02X", magic[2])), expected 0x08 (uint8), 0x09 (int8), 0x0B (int16), 0x0C (int32), 0x0D (float32) or 0x0E (float64)")
        }
        let rank = Int(magic[3])
        guard rank > 0 else {
            throw location.error("declares 0 axes in its IDX header, expected at least 1")
        }

        let sizeBytes = try reader.read(4 * rank, for: "the \(rank) axis sizes of the IDX header")
        let shape = (0..<rank).map { axis in
            sizeBytes[(4 * axis)..<(4 * axis + 4)].reduce(0) { $0 << 8 | Int($1) }
        }
        guard let dataBytes = byteCount(shape: shape, elementSize: scalar.byteCount) else {
            throw location.error(
                "declares shape \(describeShape(shape)) of \(scalar.byteCount)-byte elements, whose size overflows a 64-bit integer; the header is corrupt")
        }
        if let remaining = reader.remainingCount, remaining != dataBytes {
            throw location.error(
                "declares shape \(describeShape(shape)) of \(scalar.byteCount)-byte elements, \(dataBytes) bytes of data, "
                    + "but \(remaining) bytes follow the header; the file is cut short or is not the file its header describes")
        }

        let field = "the data of shape \(describeShape(shape))"
        let bytes = try reader.read(dataBytes, for: field)
        try reader.expectEnd(after: field)
        let elementCount = dataBytes / scalar.byteCount
        let storage = bytes.withUnsafeBytes { scalar.decode($0, count: elementCount, bigEndian: true) }
        return NumericArray(unchecked: shape, storage)
    }

    private static func scalarType(_ code: UInt8) -> StoredScalar? {
        switch code {
        case 0x08: return .uint8
        case 0x09: return .int8
        case 0x0B: return .int16
        case 0x0C: return .int32
        case 0x0D: return .float32
        case 0x0E: return .float64
        default: return nil
        }
    }
}
