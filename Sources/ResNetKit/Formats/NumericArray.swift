/// An n-dimensional array read from a data file, in row-major (C) order, with its elements in
/// the type the file stores them in.
public struct NumericArray: Sendable, Equatable {
    /// The elements, typed as stored. NumPy's `bool` is read as `uint8` (0 or 1).
    public enum Storage: Sendable, Equatable {
        case uint8([UInt8])
        case int8([Int8])
        case uint16([UInt16])
        case int16([Int16])
        case uint32([UInt32])
        case int32([Int32])
        case uint64([UInt64])
        case int64([Int64])
        case float32([Float])
        case float64([Double])
    }

    /// The size of each axis, outermost first.
    public var shape: [Int]
    public var storage: Storage

    /// Creates an array, and throws when the element count does not match the shape.
    public init(shape: [Int], storage: Storage) throws {
        let array = NumericArray(unchecked: shape, storage)
        guard shape.allSatisfy({ $0 >= 0 }), byteCount(shape: shape, elementSize: 1) == array.count else {
            throw BackendError("NumericArray", "\(array.count) elements do not fill shape \(shape)")
        }
        self = array
    }

    init(unchecked shape: [Int], _ storage: Storage) {
        self.shape = shape
        self.storage = storage
    }

    /// The number of elements.
    public var count: Int {
        switch storage {
        case .uint8(let values): return values.count
        case .int8(let values): return values.count
        case .uint16(let values): return values.count
        case .int16(let values): return values.count
        case .uint32(let values): return values.count
        case .int32(let values): return values.count
        case .uint64(let values): return values.count
        case .int64(let values): return values.count
        case .float32(let values): return values.count
        case .float64(let values): return values.count
        }
    }

    /// The element type's name as NumPy spells it, such as `uint8` or `float32`.
    public var typeName: String {
        switch storage {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float32: return "float32"
        case .float64: return "float64"
        }
    }

    /// Whether the elements are floating-point numbers.
    public var isFloatingPoint: Bool {
        switch storage {
        case .float32, .float64: return true
        default: return false
        }
    }

    /// Converts every element to `Float`. float64 values and large integers round to the nearest
    /// float.
    public func floats() -> [Float] {
        switch storage {
        case .uint8(let values): return values.map(Float.init)
        case .int8(let values): return values.map(Float.init)
        case .uint16(let values): return values.map(Float.init)
        case .int16(let values): return values.map(Float.init)
        case .uint32(let values): return values.map(Float.init)
        case .int32(let values): return values.map(Float.init)
        case .uint64(let values): return values.map(Float.init)
        case .int64(let values): return values.map(Float.init)
        case .float32(let values): return values
        case .float64(let values): return values.map(Float.init)
        }
    }

    /// Converts every element to `Int` exactly, or returns nil when the elements are floating
    /// point or a `uint64` element exceeds `Int.max`.
    public func integers() -> [Int]? {
        switch storage {
        case .uint8(let values): return values.map(Int.init)
        case .int8(let values): return values.map(Int.init)
        case .uint16(let values): return values.map(Int.init)
        case .int16(let values): return values.map(Int.init)
        case .uint32(let values): return values.map(Int.init)
        case .int32(let values): return values.map(Int.init)
        case .int64(let values): return values.map(Int.init)
        case .uint64(let values):
            guard values.allSatisfy({ $0 <= UInt64(Int.max) }) else { return nil }
            return values.map(Int.init)
        case .float32, .float64:
            return nil
        }
    }
}

// MARK: - Decoding

/// An element type as a file stores it: its size and how to decode it into `NumericArray`.
enum StoredScalar: Sendable {
    case uint8, int8, bool, uint16, int16, uint32, int32, uint64, int64, float32, float64

    var byteCount: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        }
    }

    /// Decodes `count` elements from `bytes`, which must hold at least `count * byteCount`
    /// bytes, swapping the byte order when it differs from this machine's.
    func decode(_ bytes: UnsafeRawBufferPointer, count: Int, bigEndian: Bool) -> NumericArray.Storage {
        precondition(bytes.count >= count * byteCount, "decode needs \(count * byteCount) bytes, got \(bytes.count)")
        switch self {
        case .uint8, .bool: return .uint8(Array(bytes.prefix(count)))
        case .int8: return .int8(bytes.prefix(count).map { Int8(bitPattern: $0) })
        case .uint16: return .uint16(decodeIntegers(bytes, count: count, bigEndian: bigEndian))
        case .int16: return .int16(decodeIntegers(bytes, count: count, bigEndian: bigEndian))
        case .uint32: return .uint32(decodeIntegers(bytes, count: count, bigEndian: bigEndian))
        case .int32: return .int32(decodeIntegers(bytes, count: count, bigEndian: bigEndian))
        case .uint64: return .uint64(decodeIntegers(bytes, count: count, bigEndian: bigEndian))
        case .int64: return .int64(decodeIntegers(bytes, count: count, bigEndian: bigEndian))
        case .float32:
            let bits: [UInt32] = decodeIntegers(bytes, count: count, bigEndian: bigEndian)
            return .float32(bits.map(Float.init(bitPattern:)))
        case .float64:
            let bits: [UInt64] = decodeIntegers(bytes, count: count, bigEndian: bigEndian)
            return .float64(bits.map(Double.init(bitPattern:)))
        }
    }
}

/// Reads `count` integers of type `T` from possibly unaligned bytes in the given byte order.
private func decodeIntegers<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, count: Int, bigEndian: Bool) -> [T] {
    let size = MemoryLayout<T>.size
    return [T](unsafeUninitializedCapacity: count) { buffer, initializedCount in
        for index in 0..<count {
            let raw = bytes.loadUnaligned(fromByteOffset: index * size, as: T.self)
            buffer[index] = bigEndian ? T(bigEndian: raw) : T(littleEndian: raw)
        }
        initializedCount = count
    }
}

/// Multiplies the axis sizes and the element size, or returns nil when the product overflows
/// `Int`.
func byteCount(shape: [Int], elementSize: Int) -> Int? {
    var total = elementSize
    for size in shape {
        let (product, overflow) = total.multipliedReportingOverflow(by: size)
        if overflow { return nil }
        total = product
    }
    return total
}

/// Formats a shape as NumPy prints it, such as `(60000, 28, 28)` or `(10,)`.
func describeShape(_ shape: [Int]) -> String {
    shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
}
