import CZlib
import Foundation

/// A zlib inflate stream over compressed bytes held in memory, read front to back in pieces,
/// so that a reader can check a header before it allocates room for the data that follows.
final class InflateStream {
    enum Format {
        /// gzip (RFC 1952): a header, deflate data, then the CRC-32 and length, which zlib
        /// checks at the end of each member. Members that follow one another are read as one
        /// stream, as gzip(1) reads them.
        case gzip
        /// Raw deflate (RFC 1951), as zip archives store members. The caller checks the CRC-32.
        case rawDeflate
    }

    // zlib keeps a pointer back to the z_stream in its state and rejects calls made through a
    // different address, so the stream lives at a fixed allocation.
    private let stream: UnsafeMutablePointer<z_stream>
    private let input: Data
    private let format: Format
    private let location: DataFileLocation
    private var consumed = 0
    /// Whether the last member has ended, its checks have passed, and no input remains.
    private(set) var isFinished = false

    init(_ input: Data, format: Format, location: DataFileLocation) throws {
        self.input = input
        self.format = format
        self.location = location
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())

        // 15 bits is the largest deflate window. Adding 16 selects the gzip wrapper, and a negative
        // value selects none.
        let windowBits: Int32 = format == .gzip ? 15 + 16 : -15
        let status = inflateInit2_(stream, windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            throw location.error("cannot be inflated: zlib failed to start (status \(status))")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    private var formatName: String {
        format == .gzip ? "gzip data" : "deflate data"
    }

    /// Inflates into `buffer` until it is full or the stream ends, and returns the number of
    /// bytes written, which is less than `buffer.count` only at the end of the stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var written = 0
        while written < buffer.count && !isFinished {
            let available = min(input.count - consumed, Int(UInt32.max))
            let space = min(buffer.count - written, Int(UInt32.max))

            let (status, used, produced) = input.withUnsafeBytes { source -> (Int32, Int, Int) in
                let next = source.baseAddress.map { $0.assumingMemoryBound(to: Bytef.self) + consumed }
                stream.pointee.next_in = UnsafeMutablePointer(mutating: next)
                stream.pointee.avail_in = UInt32(available)
                stream.pointee.next_out = (buffer.baseAddress! + written).assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = UInt32(space)
                let status = inflate(stream, Z_NO_FLUSH)
                return (status, available - Int(stream.pointee.avail_in), space - Int(stream.pointee.avail_out))
            }
            consumed += used
            written += produced

            switch status {
            case Z_STREAM_END:
                try endMember()
            case Z_OK where consumed == input.count && produced < space, Z_BUF_ERROR where consumed == input.count:
                // All input is used, room for output remains, and the stream has not ended.
                throw location.error(
                    "has \(formatName) that ends early, after \(input.count) compressed bytes; the file is cut short, so download or copy it again")
            case Z_OK:
                continue
            case Z_DATA_ERROR, Z_NEED_DICT:
                let detail = stream.pointee.msg.map { String(cString: $0) } ?? "status \(status)"
                throw location.error("has corrupt \(formatName) (zlib: \(detail)); download or copy the file again")
            case Z_MEM_ERROR:
                throw location.error("cannot be inflated: zlib ran out of memory")
            default:
                throw location.error("cannot be inflated: zlib failed with status \(status)")
            }
        }
        return written
    }

    /// Finishes a member that zlib has checked: the stream ends with the input, or, in gzip,
    /// another member follows.
    private func endMember() throws {
        let remaining = input.count - consumed
        if remaining == 0 {
            isFinished = true
            return
        }
        if format == .gzip, remaining >= 2, input[input.startIndex + consumed] == 0x1f,
            input[input.startIndex + consumed + 1] == 0x8b
        {
            inflateReset(stream)
            return
        }
        throw location.error(
            "has \(remaining) bytes after the end of its \(formatName); expected the data to end there, so the file is damaged")
    }
}

/// The bytes of a data file or zip member, read front to back and inflated on the way when
/// they start with gzip's magic bytes 1f 8b.
final class DataFileReader {
    let location: DataFileLocation
    private let data: Data
    private var offset = 0
    private let inflater: InflateStream?

    /// Opens the file at `path`, mapping it into memory rather than copying it.
    convenience init(path: String) throws {
        try self.init(data: try readFile(path), location: DataFileLocation(file: path))
    }

    init(data: Data, location: DataFileLocation) throws {
        self.data = data
        self.location = location
        let isGzip = data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b
        inflater = isGzip ? try InflateStream(data, format: .gzip, location: location) : nil
    }

    var isGzip: Bool { inflater != nil }

    /// The number of bytes left, when known without inflating: nil for gzip.
    var remainingCount: Int? {
        inflater == nil ? data.count - offset : nil
    }

    /// Reads exactly `count` bytes, or throws naming `field` when the data ends first.
    ///
    /// A gzip file is inflated in pieces of at most 16 MiB, so a count that a header claims but
    /// the file does not hold costs no more memory than the data that is really there.
    func read(_ count: Int, for field: String) throws -> [UInt8] {
        guard let inflater else {
            let available = data.count - offset
            guard available >= count else {
                throw location.error(
                    "ends \(count - available) bytes short of \(field), which needs \(count) bytes; the file is cut short, so download or copy it again")
            }
            let start = data.startIndex + offset
            offset += count
            return [UInt8](data[start..<start + count])
        }

        let piece = 1 << 24
        var bytes: [UInt8] = []
        bytes.reserveCapacity(min(count, piece))
        while bytes.count < count {
            let start = bytes.count
            let pieceSize = min(piece, count - start)
            bytes.append(contentsOf: repeatElement(0, count: pieceSize))
            let got = try bytes.withUnsafeMutableBytes { buffer in
                try inflater.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[start..<start + pieceSize]))
            }
            guard got == pieceSize else {
                let found = start + got
                throw location.error(
                    "decompresses to \(count - found) bytes fewer than \(field) needs (\(count) bytes); the file is incomplete, so download or copy it again")
            }
        }
        return bytes
    }

    /// Throws unless the data ends here. For gzip this inflates to the end, which also checks
    /// the CRC-32 and length that zlib verifies there.
    func expectEnd(after field: String) throws {
        let extra: Int
        if let inflater {
            var probe: UInt8 = 0
            extra = try withUnsafeMutableBytes(of: &probe) { try inflater.read(into: $0) }
        } else {
            extra = data.count - offset
        }
        guard extra == 0 else {
            let amount = inflater == nil ? "\(extra) more \(extra == 1 ? "byte" : "bytes")" : "more bytes"
            throw location.error(
                "has \(amount) after \(field); expected the file to end there, so it is not the file its header describes")
        }
    }
}

/// Reads the file at `path` into memory, mapped rather than copied where the system allows.
func readFile(_ path: String) throws -> Data {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw DataFileError(file: path, "does not exist; check the path")
    }
    guard !isDirectory.boolValue else {
        throw DataFileError(file: path, "is a directory; expected a file")
    }
    let data: Data
    do {
        data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    } catch {
        throw DataFileError(file: path, "cannot be read (\(error.localizedDescription))")
    }
    guard !data.isEmpty else {
        throw DataFileError(file: path, "is empty; expected a data file, so download or copy it again")
    }
    return data
}
