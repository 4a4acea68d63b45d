import Foundation

/// Reads NPY files, NumPy's format for one array, versions 1.0, 2.0 and 3.0.
///
/// A file starts with `\x93NUMPY`, a major and a minor version byte, and the header length
/// (little-endian uint16 in version 1, uint32 in versions 2 and 3). The header follows, a
/// Python dict literal with the keys `descr` (the dtype, such as `'<f4'`), `fortran_order`
/// and `shape`, and then the elements. NumPy specifies the format in `numpy/lib/format.py`.
///
/// Numeric dtypes are read: bool, int8 to int64, uint8 to uint64, float32 and float64, in
/// either byte order (big-endian data is byte-swapped). Object arrays are rejected and never
/// unpickled, and so are float16, complex, string, datetime and structured dtypes.
public enum NPYFile {
    /// Reads the array in the NPY file at `path`.
    public static func read(path: String) throws -> NumericArray {
        try read(readFile(path), location: DataFileLocation(file: path))
    }

    /// Reads an NPY array from bytes in memory. `file` names the source in errors.
    public static func read(data: Data, file: String) throws -> NumericArray {
        try read(data, location: DataFileLocation(file: file))
    }

    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    static func read(_ data: Data, location: DataFileLocation) throws -> NumericArray {
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 8, Array(bytes[0..<6]) == magic else {
            let found = bytes.prefix(6).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw location.error(
                "is not an NPY file: it starts with bytes \(found.isEmpty ? "(none)" : found), expected 93 4e 55 4d 50 59 (\\x93NUMPY)")
        }

        let (major, minor) = (bytes[6], bytes[7])
        let lengthFieldSize: Int
        switch major {
        case 1: lengthFieldSize = 2
        case 2, 3: lengthFieldSize = 4
        default:
            throw location.error("has NPY format version \(major).\(minor), expected 1.0, 2.0 or 3.0")
        }
        guard bytes.count >= 8 + lengthFieldSize else {
            throw location.error("ends inside the NPY header length field; the file is cut short")
        }
        let headerLength = bytes[8..<(8 + lengthFieldSize)].reversed().reduce(0) { $0 << 8 | Int($1) }
        let headerStart = 8 + lengthFieldSize
        guard data.count - headerStart >= headerLength else {
            throw location.error(
                "declares an NPY header of \(headerLength) bytes, but only \(data.count - headerStart) bytes follow; the file is cut short")
        }

        let headerBytes = data[(data.startIndex + headerStart)..<(data.startIndex + headerStart + headerLength)]
        // Versions 1 and 2 store the header in Latin-1, version 3 in UTF-8.
        let header = major == 3
            ? String(decoding: headerBytes, as: UTF8.self)
            : String(headerBytes.map { Character(Unicode.Scalar($0)) })
        let description = try ArrayDescription(header: header, location: location)

        let dataStart = headerStart + headerLength
        let available = data.count - dataStart
        let dtype = "'\(description.typeCode)'"
        guard let dataBytes = byteCount(shape: description.shape, elementSize: description.scalar.byteCount) else {
            throw location.error(
                "declares shape \(describeShape(description.shape)) of \(dtype), whose size overflows a 64-bit integer; the header is corrupt")
        }
        guard available == dataBytes else {
            let relation = available < dataBytes ? "only" : "but"
            throw location.error(
                "declares shape \(describeShape(description.shape)) of \(dtype), \(dataBytes) bytes of data, "
                    + "\(relation) \(available) bytes follow the header; the file is cut short or is not the file its header describes")
        }

        let count = dataBytes / description.scalar.byteCount
        let storage = data.withUnsafeBytes { raw in
            description.scalar.decode(
                UnsafeRawBufferPointer(rebasing: raw[dataStart...]), count: count, bigEndian: description.isBigEndian)
        }
        return NumericArray(unchecked: description.shape, storage)
    }
}

/// The `descr`, `fortran_order` and `shape` entries of an NPY header, checked.
private struct ArrayDescription {
    var typeCode: String
    var scalar: StoredScalar
    var isBigEndian: Bool
    var shape: [Int]

    init(header: String, location: DataFileLocation) throws {
        var parser = PythonLiteralParser(text: header)
        let entries: [(String, PythonLiteral)]
        do {
            guard case .dict(let parsed) = try parser.parseDocument() else {
                throw PythonLiteralParser.Failure(message: "the header is not a dict")
            }
            entries = parsed
        } catch let failure as PythonLiteralParser.Failure {
            throw location.error("has an invalid NPY header (\(failure.message)): \(header.trimmingCharacters(in: .whitespacesAndNewlines))")
        }

        func entry(_ key: String) throws -> PythonLiteral {
            guard let value = entries.first(where: { $0.0 == key })?.1 else {
                throw location.error("has an NPY header without the key '\(key)': \(header.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            return value
        }

        guard case .tuple(let axes) = try entry("shape") else {
            throw location.error("has an NPY header whose 'shape' is not a tuple")
        }
        shape = try axes.map { axis in
            guard case .integer(let size) = axis, size >= 0 else {
                throw location.error("has an NPY header whose 'shape' contains \(axis), expected non-negative integers")
            }
            return size
        }

        guard case .bool(let fortranOrder) = try entry("fortran_order") else {
            throw location.error("has an NPY header whose 'fortran_order' is not True or False")
        }
        // With at most one axis, column-major and row-major order store the same bytes.
        if fortranOrder && shape.count > 1 {
            throw location.error(
                "stores its array of shape \(describeShape(shape)) in Fortran (column-major) order, which is not supported; "
                    + "save it with np.save(path, np.ascontiguousarray(array))")
        }

        switch try entry("descr") {
        case .string(let code):
            typeCode = code
        case .list:
            throw location.error(
                "has a structured dtype (a record array), which is not supported; save each field as its own array")
        default:
            throw location.error("has an NPY header whose 'descr' is not a dtype string")
        }
        (scalar, isBigEndian) = try Self.parseTypeCode(typeCode, location: location)
    }

    /// Parses a dtype string such as `<f4`, `|u1` or `>i8` into an element type and byte order.
    private static func parseTypeCode(_ code: String, location: DataFileLocation) throws -> (StoredScalar, Bool) {
        let characters = Array(code)
        guard characters.count >= 2, let order = characters.first, "<>|=".contains(order) else {
            throw location.error("has dtype '\(code)', expected a byte order '<', '>' or '|' followed by a type such as f4")
        }
        let kind = characters[1]
        let size = Int(String(characters.dropFirst(2)))

        if kind == "O" {
            throw location.error(
                "contains Python objects (dtype '\(code)'), which would need unpickling; this reader never unpickles, so save a numeric array instead")
        }
        if kind == "f" && size == 2 {
            throw location.error("has dtype '\(code)' (float16), which is not supported; save it with array.astype(np.float32)")
        }

        let scalar: StoredScalar
        switch (kind, size) {
        case ("b", 1): scalar = .bool
        case ("u", 1): scalar = .uint8
        case ("i", 1): scalar = .int8
        case ("u", 2): scalar = .uint16
        case ("i", 2): scalar = .int16
        case ("u", 4): scalar = .uint32
        case ("i", 4): scalar = .int32
        case ("u", 8): scalar = .uint64
        case ("i", 8): scalar = .int64
        case ("f", 4): scalar = .float32
        case ("f", 8): scalar = .float64
        default:
            throw location.error(
                "has dtype '\(code)', which is not supported; expected bool, int8 to int64, uint8 to uint64, float32 or float64")
        }
        if order == "=" && scalar.byteCount > 1 {
            throw location.error("has dtype '\(code)' with native byte order '=', which does not say the order; expected '<' or '>'")
        }
        return (scalar, order == ">")
    }
}

// MARK: - Python literals

/// A value in the Python literal syntax that NPY headers use.
private indirect enum PythonLiteral: CustomStringConvertible {
    case string(String)
    case integer(Int)
    case bool(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    case dict([(String, PythonLiteral)])

    var description: String {
        switch self {
        case .string(let value): return "'\(value)'"
        case .integer(let value): return String(value)
        case .bool(let value): return value ? "True" : "False"
        case .none: return "None"
        case .tuple(let values): return "(" + values.map(\.description).joined(separator: ", ") + ")"
        case .list(let values): return "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .dict(let entries): return "{" + entries.map { "'\($0.0)': \($0.1)" }.joined(separator: ", ") + "}"
        }
    }
}

/// Parses the subset of Python literals that `repr` of a NumPy header dict produces: strings,
/// integers (with Python 2's `L` suffix), True, False, None, tuples, lists and dicts with
/// string keys.
private struct PythonLiteralParser {
    struct Failure: Error {
        var message: String
    }

    private let characters: [Character]
    private var position = 0

    init(text: String) {
        characters = Array(text)
    }

    /// Parses one value followed only by whitespace.
    mutating func parseDocument() throws -> PythonLiteral {
        let value = try parseValue()
        skipWhitespace()
        guard position == characters.count else {
            throw Failure(message: "unexpected '\(characters[position])' after the dict")
        }
        return value
    }

    private mutating func parseValue() throws -> PythonLiteral {
        skipWhitespace()
        guard position < characters.count else {
            throw Failure(message: "the header ends where a value was expected")
        }
        switch characters[position] {
        case "'", "\"":
            return .string(try parseString())
        case "(":
            return .tuple(try parseSequence(closing: ")"))
        case "[":
            return .list(try parseSequence(closing: "]"))
        case "{":
            return try parseDict()
        case "-", "0"..."9":
            return .integer(try parseInteger())
        default:
            let word = parseWord()
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default: throw Failure(message: "unexpected '\(word.isEmpty ? String(characters[position]) : word)'")
            }
        }
    }

    private mutating func parseString() throws -> String {
        let quote = characters[position]
        position += 1
        var value = ""
        while position < characters.count, characters[position] != quote {
            if characters[position] == "\\" {
                throw Failure(message: "escape sequences in strings are not supported")
            }
            value.append(characters[position])
            position += 1
        }
        guard position < characters.count else {
            throw Failure(message: "a string is not closed")
        }
        position += 1
        return value
    }

    private mutating func parseInteger() throws -> Int {
        let start = position
        if characters[position] == "-" { position += 1 }
        while position < characters.count, characters[position].isASCII, characters[position].isNumber {
            position += 1
        }
        let text = String(characters[start..<position])
        if position < characters.count, characters[position] == "L" {
            position += 1
        }
        guard let value = Int(text) else {
            throw Failure(message: "'\(text)' is not an integer that fits 64 bits")
        }
        return value
    }

    private mutating func parseWord() -> String {
        let start = position
        while position < characters.count, characters[position].isLetter {
            position += 1
        }
        return String(characters[start..<position])
    }

    /// Parses comma-separated values up to `closing`, allowing a trailing comma.
    private mutating func parseSequence(closing: Character) throws -> [PythonLiteral] {
        position += 1
        var values: [PythonLiteral] = []
        while true {
            skipWhitespace()
            if try consume(closing) { return values }
            values.append(try parseValue())
            skipWhitespace()
            if try consume(closing) { return values }
            guard try consume(",") else {
                throw Failure(message: "expected ',' or '\(closing)'")
            }
        }
    }

    private mutating func parseDict() throws -> PythonLiteral {
        position += 1
        var entries: [(String, PythonLiteral)] = []
        while true {
            skipWhitespace()
            if try consume("}") { return .dict(entries) }
            guard case .string(let key) = try parseValue() else {
                throw Failure(message: "a dict key is not a string")
            }
            skipWhitespace()
            guard try consume(":") else {
                throw Failure(message: "expected ':' after '\(key)'")
            }
            entries.append((key, try parseValue()))
            skipWhitespace()
            if try consume("}") { return .dict(entries) }
            guard try consume(",") else {
                throw Failure(message: "expected ',' or '}' after the value of '\(key)'")
            }
        }
    }

    private mutating func consume(_ character: Character) throws -> Bool {
        guard position < characters.count else {
            throw Failure(message: "the header ends inside a bracket")
        }
        guard characters[position] == character else { return false }
        position += 1
        return true
    }

    private mutating func skipWhitespace() {
        while position < characters.count, characters[position].isWhitespace {
            position += 1
        }
    }
}
