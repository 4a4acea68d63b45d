import Foundation

// Reads and writes the safetensors format of Hugging Face's `safetensors` library:
//
//     8 bytes   N, the header length, unsigned little-endian
//     N bytes   UTF-8 JSON: {"NAME": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
//               ..., "__metadata__": {"key": "value", ...}}, padded with spaces
//     the rest  the data section: each tensor's elements little-endian in row-major order,
//               packed without gaps; offsets count bytes from the start of this section
//
// The reader checks the whole header against the file's size before it reads the data
// section, so a damaged length or offset cannot make it allocate or read beyond the file.

/// An element type of a safetensors tensor, spelled as the format spells it.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case f64 = "F64"
    case f32 = "F32"
    case i64 = "I64"
    case i32 = "I32"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        }
    }
}

/// A tensor's entry in a safetensors header.
public struct SafeTensorsEntry: Equatable, Sendable {
    public var name: String
    public var dtype: SafeTensorsDType
    public var shape: [Int]
    /// Byte range in the data section.
    public var offsets: Range<Int>

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file that cannot be read, with the file's path and what is wrong with it.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The file is missing, a directory, or fails to read.
        case unreadable
        /// The file ends before the header or data section it announces.
        case truncated
        /// The header is not valid JSON or lacks a required field.
        case invalidHeader
        case unknownDType
        /// Offsets point outside the data section, overlap, or leave gaps.
        case invalidOffsets
        /// A tensor's byte count does not match its shape and dtype.
        case sizeMismatch
        /// A tensor was requested that the file does not contain, or in a dtype it cannot be converted from.
        case unavailableTensor
    }

    public var path: String
    public var kind: Kind
    public var message: String

    public init(path: String, kind: Kind, message: String) {
        self.path = path
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

// MARK: - Reading

/// A safetensors file read into memory, with its header validated.
public struct SafeTensorsFile {
    /// The largest header accepted, 100 MB as in the `safetensors` library. A larger length
    /// means a damaged file, and rejecting it avoids allocating what the length claims.
    public static let maximumHeaderLength = 100_000_000

    public let path: String
    /// The tensors in the order of their data.
    public let entries: [SafeTensorsEntry]
    /// The `__metadata__` object: string keys and string values.
    public let metadata: [String: String]
    /// The data section: every byte after the header.
    public let data: Data
    private let positions: [String: Int]

    /// Reads and validates the file at `url`. Everything in the header is checked before the
    /// data section is read: the length against the file size, the JSON, each dtype, shape and
    /// offset pair, and that the tensors tile the data section exactly.
    public init(contentsOf url: URL) throws {
        let path = url.path
        func failure(_ kind: SafeTensorsError.Kind, _ message: String) -> SafeTensorsError {
            SafeTensorsError(path: path, kind: kind, message: message)
        }

        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw failure(.unreadable, "file not found; check the path")
        }
        guard !isDirectory.boolValue else {
            throw failure(.unreadable, "is a directory, not a safetensors file")
        }
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: url)
        } catch {
            throw failure(.unreadable, "cannot open the file for reading: \(error.localizedDescription)")
        }
        defer { try? handle.close() }

        do {
            let fileSize = Int(try handle.seekToEnd())
            try handle.seek(toOffset: 0)
            guard fileSize >= 8 else {
                throw failure(
                    .truncated,
                    "the file is \(fileSize) bytes long, too short for the 8-byte header length; "
                        + "it is truncated or not a safetensors file")
            }

            let lengthBytes = try handle.read(upToCount: 8) ?? Data()
            guard lengthBytes.count == 8 else {
                throw failure(.truncated, "cannot read the 8-byte header length; the file is truncated")
            }
            let headerLength = lengthBytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            guard headerLength <= UInt64(fileSize - 8) else {
                throw failure(
                    .truncated,
                    "the header length is \(headerLength) bytes but only \(fileSize - 8) bytes follow it; "
                        + "the file is truncated or not a safetensors file")
            }
            guard headerLength <= UInt64(Self.maximumHeaderLength) else {
                throw failure(
                    .invalidHeader,
                    "the header length \(headerLength) exceeds the limit of \(Self.maximumHeaderLength) bytes; "
                        + "the file is damaged or not a safetensors file")
            }

            let header = try handle.read(upToCount: Int(headerLength)) ?? Data()
            guard header.count == Int(headerLength) else {
                throw failure(.truncated, "the file ended inside the header; it is truncated")
            }
            let dataLength = fileSize - 8 - Int(headerLength)
            let parsed = try Self.parseHeader(header, dataLength: dataLength, failure: failure)

            let data = dataLength == 0 ? Data() : (try handle.read(upToCount: dataLength) ?? Data())
            guard data.count == dataLength else {
                throw failure(.truncated, "the data section ended after \(data.count) of \(dataLength) bytes; the file changed while it was read")
            }

            self.path = path
            self.entries = parsed.entries
            self.metadata = parsed.metadata
            self.data = data
            self.positions = Dictionary(uniqueKeysWithValues: parsed.entries.enumerated().map { ($1.name, $0) })
        } catch let error as SafeTensorsError {
            throw error
        } catch {
            throw failure(.unreadable, "reading failed: \(error.localizedDescription)")
        }
    }

    /// Parses the header JSON and checks every entry against a data section of `dataLength` bytes.
    private static func parseHeader(
        _ header: Data, dataLength: Int, failure: (SafeTensorsError.Kind, String) -> SafeTensorsError
    ) throws -> (entries: [SafeTensorsEntry], metadata: [String: String]) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: header)
        } catch {
            throw failure(
                .invalidHeader,
                "the header is not valid JSON; the file is damaged or not a safetensors file")
        }
        guard let fields = object as? [String: Any] else {
            throw failure(.invalidHeader, "the header is JSON but not an object of tensors")
        }

        var metadata: [String: String] = [:]
        if let raw = fields["__metadata__"] {
            guard let pairs = raw as? [String: Any] else {
                throw failure(.invalidHeader, "__metadata__ is not an object of strings")
            }
            for (key, value) in pairs {
                guard let text = value as? String else {
                    throw failure(.invalidHeader, "__metadata__ entry '\(key)' is not a string")
                }
                metadata[key] = text
            }
        }

        var entries: [SafeTensorsEntry] = []
        for name in fields.keys.sorted() where name != "__metadata__" {
            entries.append(try parseEntry(name, fields[name]!, dataLength: dataLength, failure: failure))
        }
        return (try orderByOffsets(entries, dataLength: dataLength, failure: failure), metadata)
    }

    private static func parseEntry(
        _ name: String, _ value: Any, dataLength: Int, failure: (SafeTensorsError.Kind, String) -> SafeTensorsError
    ) throws -> SafeTensorsEntry {
        guard let fields = value as? [String: Any] else {
            throw failure(.invalidHeader, "tensor '\(name)' is not an object with dtype, shape and data_offsets")
        }
        guard let dtypeName = fields["dtype"] as? String else {
            throw failure(.invalidHeader, "tensor '\(name)' has no dtype string")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw failure(.unknownDType, "tensor '\(name)' has dtype '\(dtypeName)', which this reader does not support; expected one of \(known)")
        }
        guard let rawShape = fields["shape"] as? [Any], let shape = naturalNumbers(rawShape) else {
            throw failure(.invalidHeader, "tensor '\(name)' has no shape, or one that is not a list of non-negative integers")
        }
        guard let rawOffsets = fields["data_offsets"] as? [Any], let offsets = naturalNumbers(rawOffsets),
            offsets.count == 2
        else {
            throw failure(.invalidHeader, "tensor '\(name)' has no data_offsets, or not a pair of non-negative integers")
        }

        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else {
            throw failure(.invalidOffsets, "tensor '\(name)' has data_offsets [\(begin), \(end)], which end before they begin")
        }
        guard end <= dataLength else {
            throw failure(
                .invalidOffsets,
                "tensor '\(name)' has data_offsets [\(begin), \(end)] beyond the data section of \(dataLength) bytes; "
                    + "the file is truncated or damaged")
        }

        var byteCount = dtype.size
        for dimension in shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw failure(.sizeMismatch, "tensor '\(name)' has shape \(shape), too large to address")
            }
            byteCount = product
        }
        guard byteCount == end - begin else {
            throw failure(
                .sizeMismatch,
                "tensor '\(name)' of shape \(shape) and dtype \(dtype.rawValue) needs \(byteCount) bytes, "
                    + "but its data_offsets [\(begin), \(end)] hold \(end - begin)")
        }
        return SafeTensorsEntry(name: name, dtype: dtype, shape: shape, offsets: begin..<end)
    }

    /// Sorts the entries by offset and checks that they cover the data section from its first
    /// byte to its last, without overlaps or gaps, as the format requires.
    private static func orderByOffsets(
        _ entries: [SafeTensorsEntry], dataLength: Int, failure: (SafeTensorsError.Kind, String) -> SafeTensorsError
    ) throws -> [SafeTensorsEntry] {
        let ordered = entries.sorted {
            ($0.offsets.lowerBound, $0.offsets.upperBound, $0.name) < ($1.offsets.lowerBound, $1.offsets.upperBound, $1.name)
        }
        var position = 0
        var previous: SafeTensorsEntry?
        for entry in ordered {
            if entry.offsets.lowerBound < position, let previous {
                throw failure(
                    .invalidOffsets,
                    "tensors '\(previous.name)' [\(previous.offsets.lowerBound), \(previous.offsets.upperBound)] and "
                        + "'\(entry.name)' [\(entry.offsets.lowerBound), \(entry.offsets.upperBound)] overlap")
            }
            guard entry.offsets.lowerBound == position else {
                throw failure(
                    .invalidOffsets,
                    "bytes \(position) to \(entry.offsets.lowerBound) of the data section belong to no tensor, "
                        + "before '\(entry.name)'")
            }
            position = entry.offsets.upperBound
            previous = entry
        }
        guard position == dataLength else {
            throw failure(
                .invalidOffsets,
                "the tensors end at byte \(position) of the data section, but the file has \(dataLength - position) "
                    + "more bytes; the file is damaged or was appended to")
        }
        return ordered
    }

    // MARK: Values

    public func entry(named name: String) -> SafeTensorsEntry? {
        positions[name].map { entries[$0] }
    }

    /// Returns a tensor's elements as `Float`: F32 as stored, F64 rounded to the nearest `Float`.
    public func floats(named name: String) throws -> [Float] {
        let entry = try requireEntry(name)
        switch entry.dtype {
        case .f32: return littleEndianValues(entry, as: UInt32.self).map(Float.init(bitPattern:))
        case .f64: return littleEndianValues(entry, as: UInt64.self).map { Float(Double(bitPattern: $0)) }
        case .i64, .i32: throw conversionFailure(entry, to: "floating-point values")
        }
    }

    /// Returns a tensor's elements as `Double`: F64 as stored, F32 widened exactly.
    public func doubles(named name: String) throws -> [Double] {
        let entry = try requireEntry(name)
        switch entry.dtype {
        case .f64: return littleEndianValues(entry, as: UInt64.self).map(Double.init(bitPattern:))
        case .f32: return littleEndianValues(entry, as: UInt32.self).map { Double(Float(bitPattern: $0)) }
        case .i64, .i32: throw conversionFailure(entry, to: "floating-point values")
        }
    }

    /// Returns a tensor's elements as `Int64`: I64 as stored, I32 widened.
    public func integers(named name: String) throws -> [Int64] {
        let entry = try requireEntry(name)
        switch entry.dtype {
        case .i64: return littleEndianValues(entry, as: UInt64.self).map { Int64(bitPattern: $0) }
        case .i32: return littleEndianValues(entry, as: UInt32.self).map { Int64(Int32(bitPattern: $0)) }
        case .f64, .f32: throw conversionFailure(entry, to: "integers")
        }
    }

    private func requireEntry(_ name: String) throws -> SafeTensorsEntry {
        guard let entry = entry(named: name) else {
            throw SafeTensorsError(path: path, kind: .unavailableTensor, message: "no tensor named '\(name)'")
        }
        return entry
    }

    private func conversionFailure(_ entry: SafeTensorsEntry, to target: String) -> SafeTensorsError {
        SafeTensorsError(
            path: path, kind: .unavailableTensor,
            message: "tensor '\(entry.name)' has dtype \(entry.dtype.rawValue), which does not convert to \(target)")
    }

    private func littleEndianValues<Bits: FixedWidthInteger>(_ entry: SafeTensorsEntry, as type: Bits.Type) -> [Bits] {
        let stride = MemoryLayout<Bits>.size
        let count = entry.offsets.count / stride
        return data.withUnsafeBytes { bytes in
            (0..<count).map { index in
                Bits(littleEndian: bytes.loadUnaligned(fromByteOffset: entry.offsets.lowerBound + index * stride, as: Bits.self))
            }
        }
    }
}

/// Returns the values as integers when every one is a whole number from 0 to 2^53, else nil.
private func naturalNumbers(_ values: [Any]) -> [Int]? {
    var result: [Int] = []
    for value in values {
        if let integer = value as? Int, integer >= 0 {
            result.append(integer)
        } else if let number = value as? Double, number >= 0, number <= 9_007_199_254_740_992,
            number == number.rounded()
        {
            result.append(Int(number))
        } else {
            return nil
        }
    }
    return result
}

// MARK: - Writing

/// Builds a safetensors file in memory, F32 tensors only, in the order they are appended.
public struct SafeTensorsWriter {
    public private(set) var entries: [SafeTensorsEntry] = []
    /// The data section so far.
    public private(set) var data = Data()
    private var names: Set<String> = []

    public init() {}

    /// Appends a tensor of `shape` with `values` in row-major order.
    public mutating func append(_ name: String, shape: [Int], values: [Float]) throws {
        guard !name.isEmpty, name != "__metadata__" else {
            throw SafeTensorsError(path: "safetensors writer", kind: .invalidHeader, message: "'\(name)' cannot name a tensor")
        }
        guard !names.contains(name) else {
            throw SafeTensorsError(path: "safetensors writer", kind: .invalidHeader, message: "tensor '\(name)' is appended twice")
        }
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw SafeTensorsError(
                path: "safetensors writer", kind: .sizeMismatch,
                message: "tensor '\(name)' has \(values.count) values, which do not fill shape \(shape)")
        }
        let begin = data.count
        let bits = values.map { $0.bitPattern.littleEndian }
        bits.withUnsafeBytes { data.append(contentsOf: $0) }
        entries.append(SafeTensorsEntry(name: name, dtype: .f32, shape: shape, offsets: begin..<data.count))
        names.insert(name)
    }

    /// Returns the whole file: header length, header with `metadata` first, and data.
    public func encoded(metadata: [String: String]) -> Data {
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        for entry in entries {
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append(
                "\(jsonString(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],"
                    + "\"data_offsets\":[\(entry.offsets.lowerBound),\(entry.offsets.upperBound)]}")
        }

        var header = Data("{\(fields.joined(separator: ","))}".utf8)
        // Padding to a multiple of 8 keeps the data section 8-byte aligned in the file.
        let padding = (8 - header.count % 8) % 8
        header.append(contentsOf: [UInt8](repeating: UInt8(ascii: " "), count: padding))

        var file = Data(capacity: 8 + header.count + data.count)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(header)
        file.append(data)
        return file
    }
}

/// Returns `text` as a JSON string literal: quoted, with quotes, backslashes and control
/// characters escaped.
func jsonString(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case _ where scalar.value < 0x20:
            result += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                + String(scalar.value, radix: 16)
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}
