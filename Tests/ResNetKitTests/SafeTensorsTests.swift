import Foundation
import XCTest
@testable import ResNetKit

/// The safetensors reader and writer against files built and parsed by hand in the test, the
/// CRC-32 against published check values, and the atomic file writer.
final class SafeTensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Builds a file from a header written by hand: the length, the JSON, then `data`.
    private func makeFile(
        _ name: String, header: String, data: [UInt8], declaredLength: UInt64? = nil
    ) throws -> URL {
        let json = Array(header.utf8)
        let length = declaredLength ?? UInt64(json.count)
        let lengthBytes = (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) }
        let url = directory.appendingPathComponent(name)
        try Data(lengthBytes + json + data).write(to: url)
        return url
    }

    private func littleEndianBytes<Bits: FixedWidthInteger>(_ value: Bits) -> [UInt8] {
        (0..<MemoryLayout<Bits>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    // MARK: - CRC-32

    func testCRC32MatchesPublishedCheckValues() {
        XCTAssertEqual(CRC32.checksum(Data("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum(Data()), 0)
        XCTAssertEqual(CRC32.checksum(Data("The quick brown fox jumps over the lazy dog".utf8)), 0x414F_A339)

        var split = CRC32()
        Data("12345".utf8).withUnsafeBytes { split.update($0) }
        Data("6789".utf8).withUnsafeBytes { split.update($0) }
        XCTAssertEqual(split.value, 0xCBF4_3926, "feeding in two parts gives the same checksum")
    }

    // MARK: - Writing

    func testWrittenHeaderParsesAsSafetensors() throws {
        var writer = SafeTensorsWriter()
        let matrix: [Float] = [1, -2.5, 3e-8, .infinity, -0.0, 65504]
        try writer.append("layer.kernel", shape: [2, 3], values: matrix)
        try writer.append("scalar", shape: [], values: [42])
        try writer.append("empty", shape: [0, 4], values: [])
        let metadata = ["note": "quote \" backslash \\ newline \n tab \t bell \u{7} é 東", "version": "1"]
        let file = [UInt8](writer.encoded(metadata: metadata))

        // Parse independently: length, JSON, padding, offsets, then the raw data bytes.
        let length = (0..<8).reduce(0) { $0 | Int(file[$1]) << (8 * $1) }
        XCTAssertEqual(length % 8, 0, "the header is padded to a multiple of 8 bytes")
        let headerBytes = Data(file[8..<8 + length])
        let headerText = String(decoding: headerBytes, as: UTF8.self)
        XCTAssertTrue(headerText.hasPrefix("{"), headerText)
        let padding = headerText[headerText.index(after: headerText.lastIndex(of: "}")!)...]
        XCTAssertTrue(padding.allSatisfy { $0 == " " }, "padding is spaces: '\(padding)'")
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: headerBytes) as? [String: Any])
        XCTAssertEqual(header["__metadata__"] as? [String: String], metadata)

        let data = Array(file[(8 + length)...])
        XCTAssertEqual(data.count, (6 + 1) * 4)
        let expected: [(String, [Int], [Int])] = [("layer.kernel", [2, 3], [0, 24]), ("scalar", [], [24, 28]), ("empty", [0, 4], [28, 28])]
        for (name, shape, offsets) in expected {
            let entry = try XCTUnwrap(header[name] as? [String: Any], name)
            XCTAssertEqual(entry["dtype"] as? String, "F32", name)
            XCTAssertEqual(entry["shape"] as? [Int], shape, name)
            XCTAssertEqual(entry["data_offsets"] as? [Int], offsets, name)
        }
        let kernelBytes = Array(data[0..<24])
        XCTAssertEqual(kernelBytes, matrix.flatMap { littleEndianBytes($0.bitPattern) })
        XCTAssertEqual(Array(data[24..<28]), [0x00, 0x00, 0x28, 0x42], "42 as float32 is 0x42280000")
    }

    func testWriterRejectsBadTensors() throws {
        var writer = SafeTensorsWriter()
        try writer.append("a", shape: [2], values: [1, 2])
        XCTAssertThrowsError(try writer.append("a", shape: [1], values: [1]), "duplicate name")
        XCTAssertThrowsError(try writer.append("b", shape: [3], values: [1, 2]), "count does not fill the shape")
        XCTAssertThrowsError(try writer.append("__metadata__", shape: [1], values: [1]), "reserved name")
        XCTAssertEqual(writer.entries.count, 1)
    }

    func testReaderRoundTripsWriterOutput() throws {
        var writer = SafeTensorsWriter()
        try writer.append("b", shape: [3], values: [0.5, -1, 7])
        try writer.append("a", shape: [1, 2], values: [Float.pi, -Float.greatestFiniteMagnitude])
        let url = directory.appendingPathComponent("round.safetensors")
        try writer.encoded(metadata: ["k": "v"]).write(to: url)

        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(file.entries.map(\.name), ["b", "a"], "entries come in data order")
        XCTAssertEqual(file.metadata, ["k": "v"])
        XCTAssertEqual(try file.floats(named: "b"), [0.5, -1, 7])
        XCTAssertEqual(try file.floats(named: "a"), [Float.pi, -Float.greatestFiniteMagnitude])
        XCTAssertEqual(try file.doubles(named: "b"), [0.5, -1, 7])
    }

    // MARK: - Reading other dtypes

    func testReadsFloat64AndInt64Tensors() throws {
        let doubles: [Double] = [1.0 / 3.0, -2e300, 0.1]
        let integers: [Int64] = [-1, Int64.max, 12345678901234]
        let int32s: [Int32] = [-7, 9]
        let data = doubles.flatMap { littleEndianBytes($0.bitPattern) } + integers.flatMap { littleEndianBytes($0) }
            + int32s.flatMap { littleEndianBytes($0) }
        let header = """
            {"d":{"dtype":"F64","shape":[3],"data_offsets":[0,24]},\
            "i":{"dtype":"I64","shape":[3,1],"data_offsets":[24,48]},\
            "j":{"dtype":"I32","shape":[2],"data_offsets":[48,56]}}
            """
        let file = try SafeTensorsFile(contentsOf: try makeFile("types.safetensors", header: header, data: data))

        XCTAssertEqual(try file.doubles(named: "d"), doubles)
        XCTAssertEqual(try file.floats(named: "d"), [Float(1.0 / 3.0), -.infinity, Float(0.1)], "F64 rounds to Float")
        XCTAssertEqual(try file.integers(named: "i"), integers)
        XCTAssertEqual(try file.integers(named: "j"), [-7, 9])
        XCTAssertEqual(file.entry(named: "i")?.shape, [3, 1])
        XCTAssertEqual(file.metadata, [:])
        for (request, name) in [({ _ = try file.floats(named: "i") }, "I64 as floats"),
                                ({ _ = try file.integers(named: "d") }, "F64 as integers"),
                                ({ _ = try file.floats(named: "missing") }, "missing tensor")] as [(() throws -> Void, String)] {
            XCTAssertThrowsError(try request(), name) { error in
                XCTAssertEqual((error as? SafeTensorsError)?.kind, .unavailableTensor, name)
            }
        }
    }

    // MARK: - Damaged files

    func testRejectsDamagedFilesWithClearErrors() throws {
        let data = [UInt8](repeating: 0, count: 24)
        let valid = #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#
        _ = try SafeTensorsFile(contentsOf: try makeFile("valid.safetensors", header: valid, data: data))

        struct Case {
            var name: String
            var header: String
            var data: [UInt8]
            var declaredLength: UInt64? = nil
            var kind: SafeTensorsError.Kind
            var mentions: String
        }
        let cases: [Case] = [
            Case(name: "header length too large", header: valid, data: data, declaredLength: 1 << 40, kind: .truncated, mentions: "header length"),
            Case(name: "truncated data", header: valid, data: Array(data[0..<20]), kind: .invalidOffsets, mentions: "truncated"),
            Case(name: "invalid JSON", header: String(valid.dropLast()), data: data, kind: .invalidHeader, mentions: "not valid JSON"),
            Case(name: "not an object", header: "[1, 2]", data: [], kind: .invalidHeader, mentions: "not an object"),
            Case(name: "unknown dtype", header: valid.replacingOccurrences(of: #""F32","shape":[2]"#, with: #""Q7","shape":[2]"#), data: data, kind: .unknownDType, mentions: "Q7"),
            Case(name: "offsets beyond data", header: valid.replacingOccurrences(of: "[16,24]", with: "[16,28]"), data: data, kind: .invalidOffsets, mentions: "[16, 28]"),
            Case(name: "offsets reversed", header: valid.replacingOccurrences(of: "[16,24]", with: "[24,16]"), data: data, kind: .invalidOffsets, mentions: "end before"),
            Case(name: "overlapping offsets",
                 header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
                 data: data, kind: .invalidOffsets, mentions: "overlap"),
            Case(name: "gap between tensors",
                 header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#,
                 data: data, kind: .invalidOffsets, mentions: "belong to no tensor"),
            Case(name: "trailing bytes", header: valid, data: data + [1, 2, 3], kind: .invalidOffsets, mentions: "3 more bytes"),
            Case(name: "shape product differs from bytes", header: valid.replacingOccurrences(of: "[2,2]", with: "[2,3]"), data: data, kind: .sizeMismatch, mentions: "needs 24 bytes"),
            Case(name: "negative dimension", header: valid.replacingOccurrences(of: "[2,2]", with: "[-2,-2]"), data: data, kind: .invalidHeader, mentions: "shape"),
            Case(name: "fractional offset", header: valid.replacingOccurrences(of: "[16,24]", with: "[16,24.5]"), data: data, kind: .invalidHeader, mentions: "data_offsets"),
            Case(name: "overflowing shape", header: valid.replacingOccurrences(of: "[2,2]", with: "[4294967296,4294967296]"), data: data, kind: .sizeMismatch, mentions: "too large"),
            Case(name: "metadata value not a string", header: #"{"__metadata__":{"n":1}}"#, data: [], kind: .invalidHeader, mentions: "'n'"),
        ]
        for testCase in cases {
            let url = try makeFile(
                "\(testCase.name).safetensors", header: testCase.header, data: testCase.data,
                declaredLength: testCase.declaredLength)
            XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url), testCase.name) { error in
                guard let error = error as? SafeTensorsError else {
                    return XCTFail("\(testCase.name): expected SafeTensorsError, got \(error)")
                }
                XCTAssertEqual(error.kind, testCase.kind, "\(testCase.name): \(error)")
                XCTAssertTrue(error.description.hasPrefix(url.path + ": "), "\(testCase.name) names the file: \(error)")
                XCTAssertTrue(error.message.contains(testCase.mentions), "\(testCase.name) mentions \(testCase.mentions): \(error)")
            }
        }
    }

    func testRejectsShortAndMissingFiles() throws {
        let short = directory.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: short)
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: short)) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .truncated)
            XCTAssertTrue("\(error)".contains("3 bytes"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: directory.appendingPathComponent("absent"))) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .unreadable)
            XCTAssertTrue("\(error)".contains("not found"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: directory)) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.kind, .unreadable)
            XCTAssertTrue("\(error)".contains("directory"), "\(error)")
        }
    }

    // MARK: - Atomic writing

    func testAtomicWriteKeepsExistingFileUnlessReplacing() throws {
        let url = directory.appendingPathComponent("target.bin")
        try Data("old".utf8).write(to: url)

        XCTAssertThrowsError(try writeFileAtomically(Data("new".utf8), to: url, replacingExisting: false)) { error in
            XCTAssertEqual((error as? FileWriteError)?.kind, .exists)
        }
        XCTAssertEqual(try Data(contentsOf: url), Data("old".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["target.bin"], "no temporary file is left")

        try writeFileAtomically(Data("new".utf8), to: url, replacingExisting: true)
        XCTAssertEqual(try Data(contentsOf: url), Data("new".utf8))

        let fresh = directory.appendingPathComponent("fresh.bin")
        try writeFileAtomically(Data("first".utf8), to: fresh, replacingExisting: false)
        XCTAssertEqual(try Data(contentsOf: fresh), Data("first".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(), ["fresh.bin", "target.bin"])
    }

    func testAtomicWriteIntoMissingDirectoryFails() {
        let url = directory.appendingPathComponent("no/such/dir/file.bin")
        XCTAssertThrowsError(try writeFileAtomically(Data([1]), to: url, replacingExisting: true)) { error in
            XCTAssertEqual((error as? FileWriteError)?.kind, .failed)
            XCTAssertTrue("\(error)".contains("temporary file"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }
}
