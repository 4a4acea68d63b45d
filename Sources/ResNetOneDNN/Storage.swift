import CxxBridge
import Foundation
import ResNetKit
import Synchronization

/// Buffers of freed tensors, kept by byte count for the next tensor of the same size, so that
/// a training step in steady state allocates no new buffers.
///
/// NOTE: the pool never returns memory to the system while the backend lives. A run with
/// many different sizes (changing batch sizes, for example) keeps a set of buffers for each.
final class BufferPool: Sendable {
    static let alignment = 64
    /// How many times larger than requested a reused free buffer may be.
    static let largestReuse = 4

    private struct State {
        /// Addresses of free buffers by byte count, kept as integers so that the state is Sendable.
        var free: [Int: [UInt]] = [:]
        var allocationCount = 0
    }

    private let state = Mutex(State())

    /// The number of buffers allocated from the system so far.
    var allocationCount: Int {
        state.withLock { $0.allocationCount }
    }

    /// Returns a free buffer of at least `byteCount` bytes and its capacity, or allocates one.
    /// Throws when the system has no memory for it, instead of trapping as Swift's own
    /// allocation does.
    ///
    /// A free buffer of exactly `byteCount` bytes comes first. Failing that, the smallest free
    /// buffer of up to `largestReuse` times the size serves, so that a short last batch reuses
    /// the buffers of the full batches rather than adding its own to the process's peak memory.
    func acquire(byteCount: Int) throws -> (buffer: UnsafeMutableRawPointer, capacity: Int) {
        let reused = state.withLock { state -> (UInt, Int)? in
            if let address = state.free[byteCount]?.popLast() {
                return (address, byteCount)
            }
            let limit = byteCount.multipliedReportingOverflow(by: Self.largestReuse)
            let largest = limit.overflow ? Int.max : limit.partialValue
            var smallest: Int?
            for (capacity, addresses) in state.free where capacity > byteCount && capacity <= largest {
                if !addresses.isEmpty && capacity < (smallest ?? Int.max) {
                    smallest = capacity
                }
            }
            guard let smallest, let address = state.free[smallest]?.popLast() else {
                return nil
            }
            return (address, smallest)
        }
        if let (address, capacity) = reused, let buffer = UnsafeMutableRawPointer(bitPattern: address) {
            return (buffer, capacity)
        }

        var buffer: UnsafeMutableRawPointer?
        let status = posix_memalign(&buffer, Self.alignment, max(byteCount, Self.alignment))
        guard status == 0, let buffer else {
            throw BackendError(
                "allocate",
                "out of memory for a tensor of \(byteCount) bytes (\(String(format: "%.1f", Double(byteCount) / 1e9)) GB); "
                    + "use a smaller batch size or input")
        }
        state.withLock { $0.allocationCount += 1 }
        return (buffer, byteCount)
    }

    /// Returns a buffer to the pool under its capacity, the size `acquire` gave with it.
    func release(_ buffer: UnsafeMutableRawPointer, capacity: Int) {
        let address = UInt(bitPattern: buffer)
        state.withLock { $0.free[capacity, default: []].append(address) }
    }

    deinit {
        state.withLock { state in
            for addresses in state.free.values {
                for address in addresses {
                    free(UnsafeMutableRawPointer(bitPattern: address))
                }
            }
        }
    }
}

/// The storage of a oneDNN tensor: a 64-byte-aligned buffer in the layout `layout` names.
///
/// The buffer goes back to the pool when the storage is freed.
final class OneDNNStorage {
    enum Content {
        /// Float values of the tensor's shape, in `layout`.
        case values
        /// A max pooling workspace: opaque bytes only the backward pass reads.
        case workspace
    }

    let buffer: UnsafeMutableRawPointer
    /// The bytes the layout uses; the buffer may be larger.
    let byteCount: Int
    let layout: Int32
    let content: Content
    private let capacity: Int
    private let pool: BufferPool

    init(layout: Int32, byteCount: Int, content: Content = .values, pool: BufferPool) throws {
        (self.buffer, self.capacity) = try pool.acquire(byteCount: byteCount)
        self.byteCount = byteCount
        self.layout = layout
        self.content = content
        self.pool = pool
    }

    deinit {
        pool.release(buffer, capacity: capacity)
    }

    var floatCount: Int { byteCount / MemoryLayout<Float>.stride }

    var floats: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: buffer.assumingMemoryBound(to: Float.self), count: floatCount)
    }
}

/// A bridge plan (primitives for one operation at one shape), destroyed with this object.
final class Plan {
    let handle: OpaquePointer
    let operation: String
    private var layouts: [Int32: Int32] = [:]

    init(operation: String, create: (UnsafeMutablePointer<onednn_bridge.Status>) -> OpaquePointer?) throws {
        var status = onednn_bridge.Status.ok
        guard let handle = create(&status), status == .ok else {
            throw bridgeError(operation, status)
        }
        self.handle = handle
        self.operation = operation
    }

    deinit {
        onednn_bridge.planDestroy(handle)
    }

    /// Returns the layout id the pass expects for `role`, asking the bridge once.
    func layout(_ pass: onednn_bridge.Pass, _ role: onednn_bridge.Role) throws -> Int32 {
        let key = pass.rawValue &* 64 &+ role.rawValue
        if let known = layouts[key] {
            return known
        }
        var status = onednn_bridge.Status.ok
        let layout = onednn_bridge.planLayout(handle, pass, role, &status)
        guard status == .ok else {
            throw bridgeError(operation, status)
        }
        layouts[key] = layout
        return layout
    }
}

/// Turns the bridge's last message on this thread into an error with a hint for the status.
func bridgeError(_ operation: String, _ status: onednn_bridge.Status) -> BackendError {
    let message = String(cString: onednn_bridge.lastErrorMessage())
    let hint: String
    switch status {
    case .unimplemented:
        hint = "oneDNN 2.6 has no implementation for these shapes and layouts; run with ONEDNN_VERBOSE=1 to see what it tried"
    case .outOfMemory:
        hint = "lower the batch size"
    case .invalidArgument:
        hint = "check the shapes passed to this operation"
    default:
        hint = "run with ONEDNN_VERBOSE=1 for oneDNN's log"
    }
    return BackendError(operation, "\(message) (\(hint))")
}

/// Returns whether a layout is dense row-major, so that its bytes are in canonical order.
func isPlainLayout(_ layout: Int32) -> Bool {
    onednn_bridge.layoutIsPlain(layout)
}
