import Foundation

/// The checkpoint reader takes a path, so each input goes through one file in memory-backed
/// /dev/shm when it exists.
private let inputURL: URL = {
    let directory = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return URL(fileURLWithPath: directory).appendingPathComponent("resnet-fuzz-\(getpid()).safetensors")
}()

/// Reads the input as a safetensors file, then as a checkpoint, and reads every tensor.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard (try? Data(bytes: bytes, count: count).write(to: inputURL)) != nil else { return 0 }
    if let file = try? SafeTensorsFile(contentsOf: inputURL) {
        for entry in file.entries {
            _ = try? file.floats(named: entry.name)
            _ = try? file.integers(named: entry.name)
        }
    }
    if let checkpoint = try? Checkpoint(contentsOf: inputURL) {
        for name in checkpoint.stateTensorNames {
            _ = try? checkpoint.stateTensor(named: name)
        }
    }
    return 0
}
