#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A file that could not be written, with its path.
public struct FileWriteError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The target exists and replacing it was not allowed; it was left unchanged.
        case exists
        case failed
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

/// Writes `data` to `url` so that the path has either its old content or the complete new
/// file, never a partial one.
///
/// The bytes go to a hidden temporary file in the same directory, which is flushed with fsync
/// and then renamed to `url`. Unless `replacingExisting` is true, an existing file at `url` is
/// left as it is and the call throws `FileWriteError` of kind `.exists`. On any failure the
/// temporary file is removed.
public func writeFileAtomically(_ data: Data, to url: URL, replacingExisting: Bool) throws {
    let path = url.path
    let directory = url.deletingLastPathComponent().path
    let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    let temporary = "\(directory)/.\(url.lastPathComponent).\(getpid()).\(suffix).tmp"
    func failure(_ kind: FileWriteError.Kind, _ message: String) -> FileWriteError {
        FileWriteError(path: path, kind: kind, message: message)
    }

    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
        throw failure(.failed, "cannot create a temporary file in \(directory): \(systemError())")
    }
    var isTemporaryPresent = true
    defer {
        if isTemporaryPresent { unlink(temporary) }
    }

    var problem = writeAll(data, to: descriptor)
    if problem == nil, fsync(descriptor) != 0 {
        problem = systemError()
    }
    if close(descriptor) != 0, problem == nil {
        problem = systemError()
    }
    if let problem {
        throw failure(.failed, "writing \(data.count) bytes to \(temporary) failed: \(problem); the target was not touched")
    }

    if replacingExisting {
        guard rename(temporary, path) == 0 else {
            throw failure(.failed, "cannot rename \(temporary) to it: \(systemError())")
        }
        isTemporaryPresent = false
    } else {
        try moveWithoutReplacing(temporary, to: path, failure: failure)
        isTemporaryPresent = false
    }
    synchronizeDirectory(directory)
}

/// Moves `temporary` to `path` unless `path` exists. A hard link fails atomically when the
/// target exists, so no other process can slip a file in between the check and the move.
private func moveWithoutReplacing(
    _ temporary: String, to path: String, failure: (FileWriteError.Kind, String) -> FileWriteError
) throws {
    if link(temporary, path) == 0 {
        unlink(temporary)
        return
    }
    let linkError = errno
    if linkError == EEXIST {
        throw failure(.exists, "the file exists and was left unchanged")
    }
    guard linkError == EPERM || linkError == EOPNOTSUPP || linkError == ENOSYS || linkError == EMLINK else {
        throw failure(.failed, "cannot link \(temporary) to it: \(String(cString: strerror(linkError)))")
    }

    // NOTE: this filesystem has no hard links, so the check and the rename are two steps, and
    // a file created between them would be replaced.
    guard access(path, F_OK) != 0 else {
        throw failure(.exists, "the file exists and was left unchanged")
    }
    guard rename(temporary, path) == 0 else {
        throw failure(.failed, "cannot rename \(temporary) to it: \(systemError())")
    }
}

/// Writes every byte, retrying short writes and interrupted calls. Returns nil on success,
/// else the system's error message.
private func writeAll(_ data: Data, to descriptor: Int32) -> String? {
    data.withUnsafeBytes { bytes -> String? in
        var offset = 0
        while offset < bytes.count {
            let count = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                return systemError()
            }
            offset += count
        }
        return nil
    }
}

/// Flushes the directory entry of a renamed file, so that the rename survives a crash.
/// Filesystems that cannot sync a directory are skipped: the file's data is already synced.
private func synchronizeDirectory(_ directory: String) {
    let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard descriptor >= 0 else { return }
    _ = fsync(descriptor)
    close(descriptor)
}

private func systemError() -> String {
    String(cString: strerror(errno))
}
