import CZlib
import Foundation

/// Reads NPZ files: zip archives of NPY files, as `np.savez` and `np.savez_compressed` write.
///
/// The central directory at the end of the archive gives each member's name, compression
/// method, sizes, CRC-32 and offset. The local headers are used only to find where each
/// member's data starts, because NumPy writes zip64 placeholders there. Members may be stored
/// or deflated. Zip64 archives (over 4 GiB or 65,535 members) and encrypted members are
/// rejected. The zip format is specified in PKWARE's APPNOTE.TXT.
public struct NPZArchive {
    /// The path of the archive as the caller gave it.
    public let file: String
    /// The array names: the member names without `.npy`, in archive order.
    public var keys: [String] { members.map(\.key) }

    private let data: Data
    private let members: [Member]

    private struct Member {
        var name: String
        var key: String
        var flags: UInt16
        var method: UInt16
        var crc: UInt32
        var compressedSize: Int
        var uncompressedSize: Int
        var localHeaderOffset: Int
    }

    private enum Signature {
        static let localHeader: UInt32 = 0x0403_4b50
        static let centralHeader: UInt32 = 0x0201_4b50
        static let endOfCentralDirectory: UInt32 = 0x0605_4b50
        static let zip64Locator: UInt32 = 0x0706_4b50
    }

    /// Opens the archive at `path` and reads its central directory.
    public init(path: String) throws {
        try self.init(data: readFile(path), file: path)
    }

    /// Opens an archive held in memory. `file` names it in errors.
    public init(data: Data, file: String) throws {
        self.data = data.startIndex == 0 ? data : Data(data)
        self.file = file
        self.members = try Self.readCentralDirectory(self.data, location: DataFileLocation(file: file))
    }

    /// Reads the array stored under `key`, such as `x_train` for the member `x_train.npy`.
    public func array(_ key: String) throws -> NumericArray {
        guard let member = members.first(where: { $0.key == key }) else {
            let available = keys.isEmpty ? "it has no members" : "it has " + keys.joined(separator: ", ")
            throw DataFileError(file: file, "has no array '\(key)' (\(available))")
        }
        let location = DataFileLocation(file: file, member: member.name)
        return try NPYFile.read(try contents(of: member, location: location), location: location)
    }

    // MARK: - Central directory

    private static func readCentralDirectory(_ data: Data, location: DataFileLocation) throws -> [Member] {
        let reader = LittleEndianReader(data: data)
        guard let end = findEndOfCentralDirectory(reader) else {
            let hint = data.count >= 4 && reader.uint32(at: 0) == Signature.localHeader
                ? "the archive is cut short" : "it is not a zip archive"
            throw location.error("has no zip end-of-central-directory record, so \(hint); an NPZ file is a zip archive")
        }

        let isZip64 = end >= 20 && reader.uint32(at: end - 20) == Signature.zip64Locator
        let entryCount = Int(reader.uint16(at: end + 10))
        let directorySize = Int(reader.uint32(at: end + 12))
        let directoryOffset = Int(reader.uint32(at: end + 16))
        if isZip64 || entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            throw location.error(
                "is a zip64 archive, which is not supported; keep each archive under 4 GiB and 65,535 arrays")
        }
        guard reader.uint16(at: end + 4) == 0, reader.uint16(at: end + 6) == 0 else {
            throw location.error("is a multi-disk zip archive, which is not supported")
        }
        guard directoryOffset + directorySize <= end else {
            throw location.error(
                "has a central directory at bytes \(directoryOffset)..<\(directoryOffset + directorySize), past its end record at byte \(end); the archive is cut short or corrupt")
        }

        var members: [Member] = []
        var offset = directoryOffset
        for index in 0..<entryCount {
            guard offset + 46 <= directoryOffset + directorySize,
                reader.uint32(at: offset) == Signature.centralHeader
            else {
                throw location.error(
                    "has a corrupt central directory: entry \(index + 1) of \(entryCount) at byte \(offset) has no valid header")
            }
            let nameLength = Int(reader.uint16(at: offset + 28))
            let extraLength = Int(reader.uint16(at: offset + 30))
            let commentLength = Int(reader.uint16(at: offset + 32))
            let next = offset + 46 + nameLength + extraLength + commentLength
            guard next <= directoryOffset + directorySize else {
                throw location.error("has a corrupt central directory: entry \(index + 1) runs past its end")
            }
            let name = String(decoding: data[(offset + 46)..<(offset + 46 + nameLength)], as: UTF8.self)
            let member = Member(
                name: name,
                key: name.hasSuffix(".npy") ? String(name.dropLast(4)) : name,
                flags: reader.uint16(at: offset + 8),
                method: reader.uint16(at: offset + 10),
                crc: reader.uint32(at: offset + 16),
                compressedSize: Int(reader.uint32(at: offset + 20)),
                uncompressedSize: Int(reader.uint32(at: offset + 24)),
                localHeaderOffset: Int(reader.uint32(at: offset + 42)))
            if member.compressedSize == 0xFFFF_FFFF || member.uncompressedSize == 0xFFFF_FFFF
                || member.localHeaderOffset == 0xFFFF_FFFF
            {
                throw location.error(
                    "is a zip64 archive (member \(name) has zip64 sizes), which is not supported; keep each archive under 4 GiB")
            }
            members.append(member)
            offset = next
        }
        return members
    }

    /// Returns the offset of the end-of-central-directory record, searching back from the end
    /// over the at most 65,535-byte archive comment.
    private static func findEndOfCentralDirectory(_ reader: LittleEndianReader) -> Int? {
        let recordSize = 22
        guard reader.count >= recordSize else { return nil }
        let lowest = max(0, reader.count - recordSize - 0xFFFF)
        for offset in stride(from: reader.count - recordSize, through: lowest, by: -1)
        where reader.uint32(at: offset) == Signature.endOfCentralDirectory {
            // The comment length must reach exactly to the end of the file.
            if offset + recordSize + Int(reader.uint16(at: offset + 20)) == reader.count {
                return offset
            }
        }
        return nil
    }

    // MARK: - Members

    /// Returns the uncompressed bytes of `member`, checked against its size and CRC-32.
    private func contents(of member: Member, location: DataFileLocation) throws -> Data {
        let reader = LittleEndianReader(data: data)
        let header = member.localHeaderOffset
        guard header + 30 <= data.count, reader.uint32(at: header) == Signature.localHeader else {
            throw location.error("has no valid local header at byte \(header); the archive is corrupt")
        }
        if member.flags & 1 != 0 {
            throw location.error("is encrypted, which is not supported")
        }
        let start = header + 30 + Int(reader.uint16(at: header + 26)) + Int(reader.uint16(at: header + 28))
        guard start + member.compressedSize <= data.count else {
            throw location.error(
                "declares \(member.compressedSize) compressed bytes from byte \(start), past the archive's end at byte \(data.count); the archive is cut short")
        }
        let compressed = data[start..<(start + member.compressedSize)]

        let contents: Data
        switch member.method {
        case 0:
            guard member.compressedSize == member.uncompressedSize else {
                throw location.error(
                    "is stored uncompressed but declares \(member.compressedSize) stored and \(member.uncompressedSize) uncompressed bytes; the archive is corrupt")
            }
            contents = Data(compressed)
        case 8:
            contents = try inflateMember(compressed, member: member, location: location)
        default:
            throw location.error(
                "uses zip compression method \(member.method), which is not supported; expected 0 (stored) or 8 (deflate), as np.savez and np.savez_compressed write")
        }

        let crc = contents.withUnsafeBytes { raw -> UInt32 in
            var crc: uLong = crc32(0, nil, 0)
            var offset = 0
            // crc32 takes a 32-bit length, so longer data is summed in pieces.
            while offset < raw.count {
                let length = min(raw.count - offset, Int(UInt32.max))
                crc = crc32(crc, (raw.baseAddress! + offset).assumingMemoryBound(to: Bytef.self), uInt(length))
                offset += length
            }
            return UInt32(crc)
        }
        guard crc == member.crc else {
            throw location.error(
                "has CRC-32 \(String(format: "%08x", crc)), but the archive declares \(String(format: "%08x", member.crc)); the data is corrupt")
        }
        return contents
    }

    private func inflateMember(_ compressed: Data, member: Member, location: DataFileLocation) throws -> Data {
        // Deflate expands data at most 1032 times, because a 258-byte match costs at least two
        // bits; one more match is slack. A larger declared size is corrupt, and is rejected
        // before allocating it.
        let limit = member.compressedSize * 1032 + 258
        guard member.uncompressedSize <= limit else {
            throw location.error(
                "declares \(member.uncompressedSize) uncompressed bytes, more than \(member.compressedSize) deflated bytes can hold; the archive is corrupt")
        }

        let stream = try InflateStream(Data(compressed), format: .rawDeflate, location: location)
        var contents = Data(count: member.uncompressedSize)
        let written = try contents.withUnsafeMutableBytes { try stream.read(into: $0) }
        var probe: UInt8 = 0
        let extra = try withUnsafeMutableBytes(of: &probe) { try stream.read(into: $0) }
        guard written == member.uncompressedSize, extra == 0 else {
            let found = extra == 0 ? "\(written)" : "more than \(written)"
            throw location.error(
                "inflates to \(found) bytes, but the archive declares \(member.uncompressedSize); the data is corrupt")
        }
        return contents
    }
}

/// Little-endian integers at byte offsets of data whose indices start at 0.
private struct LittleEndianReader {
    let data: Data

    var count: Int { data.count }

    func uint16(at offset: Int) -> UInt16 {
        UInt16(data[offset]) | UInt16(data[offset + 1]) << 8
    }

    func uint32(at offset: Int) -> UInt32 {
        UInt32(uint16(at: offset)) | UInt32(uint16(at: offset + 2)) << 16
    }
}
