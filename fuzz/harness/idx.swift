import Foundation

/// Reads the input as an IDX file, gzipped or not. Any error is an expected outcome; a trap,
/// a hang or an address error is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    _ = try? IDXFile.read(data: Data(bytes: bytes, count: count), file: "fuzz.idx")
    return 0
}
