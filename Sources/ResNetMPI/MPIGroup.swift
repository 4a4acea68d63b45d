import CMPI
import Foundation
import ResNetKit

/// A failure of MPI, with MPI's own message.
public struct MPIError: Error, CustomStringConvertible {
    public var message: String

    public var description: String { message }
}

/// The ranks of a run started by `mpiexec`, over MPI's world communicator.
///
/// MPI is loaded when the group is created, from MPICH's shared library or another of the MPICH
/// ABI, so a program that never creates a group needs no MPI installed. Create one group per
/// process and call it from one thread. A collective that waits longer than `timeout` seconds
/// means that another rank died or stalled. MPI cannot cancel a collective under way, so the
/// group then writes a message to standard error and ends the whole run.
public final class MPIGroup: ReplicaGroup {
    public let rank: Int
    public let size: Int
    /// The seconds any one collective may take.
    public let timeout: Double
    private let watchdog: Watchdog

    /// Initializes MPI. `timeoutAdvice` ends the message of a missed deadline, such as the
    /// option that raises the timeout.
    ///
    /// MPI's start waits for every rank, so a rank that fails before it leaves the others
    /// waiting there; the timeout covers that wait too.
    public init(timeout: Double, timeoutAdvice: String = "raise the timeout if one step takes longer") throws {
        let launchRank = ProcessInfo.processInfo.environment["PMI_RANK"].flatMap { Int($0) }
        let watchdog = Watchdog(rank: launchRank, timeout: timeout, advice: timeoutAdvice)
        var rank: Int32 = 0
        var size: Int32 = 0
        try watchdog.guarding("the start of MPI") {
            try Self.call { cmpi_initialize(&rank, &size, $0, $1) }
        }
        self.rank = Int(rank)
        self.size = Int(size)
        self.timeout = timeout
        self.watchdog = watchdog
        watchdog.name(rank: Int(rank))
    }

    deinit {
        watchdog.stop()
    }

    public func sum(_ values: UnsafeMutableBufferPointer<Float>, purpose: String) throws {
        try watchdog.guarding("the sum of the \(purpose)") {
            try Self.call { cmpi_sum_floats(values.baseAddress, values.count, $0, $1) }
        }
    }

    public func sum(_ values: UnsafeMutableBufferPointer<Double>, purpose: String) throws {
        try watchdog.guarding("the sum of the \(purpose)") {
            try Self.call { cmpi_sum_doubles(values.baseAddress, values.count, $0, $1) }
        }
    }

    /// Returns every rank's `text`, indexed by rank; the text is cut to 255 UTF-8 bytes.
    public func gather(text: String, purpose: String) throws -> [String] {
        let width = 255
        var bytes = Array(text.utf8.prefix(width)).map(Double.init)
        bytes += [Double](repeating: 0, count: width + 1 - bytes.count)
        return try gather(bytes, purpose: purpose).map { values in
            String(decoding: values.prefix { $0 != 0 }.map { UInt8($0) }, as: UTF8.self)
        }
    }

    /// Waits for every rank to finish, then shuts MPI down.
    public func finalize() throws {
        try watchdog.guarding("the end of the run") {
            try Self.call { cmpi_finalize($0, $1) }
        }
    }

    /// Ends every process of the run with exit status `code`.
    public static func abortRun(code: Int32) {
        cmpi_abort(code)
    }

    /// Whether a group has been created in this process and not finalized.
    public static var isInitialized: Bool { cmpi_is_initialized() != 0 }

    private static func call(_ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
        var message = [CChar](repeating: 0, count: 1024)
        let status = message.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        guard status == 0 else {
            throw MPIError(message: String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }
}

/// Ends the process when a collective runs past its deadline.
///
/// A thread sleeps until the deadline of the collective under way. The training thread cannot
/// be woken from inside MPI, so on a missed deadline the watchdog itself reports and ends the
/// process. `mpiexec` then stops the other ranks.
private final class Watchdog: @unchecked Sendable {
    /// The rank named in the message, nil until MPI has given it.
    private var rank: Int?
    private let timeout: Double
    private let advice: String
    private let condition = NSCondition()
    /// The collective under way, such as "the sum of the gradients of epoch 2, step 5".
    private var purpose: String?
    private var generation = 0
    private var stopped = false

    /// Starts the watching thread, which keeps the watchdog alive until `stop()`.
    init(rank: Int?, timeout: Double, advice: String) {
        self.rank = rank
        self.timeout = timeout
        self.advice = advice
        let thread = Thread { self.watch() }
        thread.name = "resnet.mpi-watchdog"
        thread.start()
    }

    /// Sets the rank that the message names.
    func name(rank: Int) {
        condition.lock()
        self.rank = rank
        condition.unlock()
    }

    /// Ends the watching thread.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    func guarding(_ purpose: String, _ body: () throws -> Void) throws {
        condition.lock()
        self.purpose = purpose
        generation += 1
        condition.signal()
        condition.unlock()

        defer {
            condition.lock()
            self.purpose = nil
            condition.unlock()
        }
        try body()
    }

    private func watch() {
        condition.lock()
        defer { condition.unlock() }
        while true {
            while purpose == nil, !stopped {
                condition.wait()
            }
            guard !stopped else { return }
            let watched = generation
            let deadline = Date(timeIntervalSinceNow: timeout)
            while purpose != nil, generation == watched, Date() < deadline {
                _ = condition.wait(until: deadline)
            }
            if let purpose, generation == watched {
                let name = rank.map { "rank \($0)" } ?? "this process"
                let message = "error: \(name): waited \(formatSeconds(timeout)) for the other ranks at \(purpose); "
                    + "a rank has died, stalled or failed to start (\(advice))\n"
                FileHandle.standardError.write(Data(message.utf8))
                cmpi_abort(1)
                exit(1)
            }
        }
    }
}

private func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.1f s", seconds)
}
