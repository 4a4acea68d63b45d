import Foundation

/// Reads the input as an NPY file and converts its values, as the loaders do.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    if let array = try? NPYFile.read(data: Data(bytes: bytes, count: count), file: "fuzz.npy") {
        _ = array.floats()
        _ = array.integers()
    }
    return 0
}
