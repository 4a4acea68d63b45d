import Foundation

/// Reads the input as an NPZ archive and every member it lists as an NPY array.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPZ(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard let archive = try? NPZArchive(data: Data(bytes: bytes, count: count), file: "fuzz.npz") else { return 0 }
    for key in archive.keys {
        _ = try? archive.array(key)
    }
    return 0
}
