import Foundation
import ResNetKit
import ResNetMPI

/// The options of `resnet train` for data-parallel training over MPI.
let distributedOptions = [
    Option(
        flag: "distributed",
        help: "train data-parallel across the processes that mpiexec started (mpiexec -n N resnet train ... --distributed): "
            + "--batch-size is the whole batch, split evenly among the ranks, whose gradients are summed before each step; "
            + "batch norm normalizes over each rank's share and updates per-rank running statistics, as MLPerf's ResNet does, "
            + "and every rank takes rank 0's before each validation; rank 0 alone prints, logs and saves"),
    Option(
        "collective-timeout", placeholder: "SECONDS",
        help: "with --distributed, end the run when a sum across the ranks, or MPI's start, waits longer than this "
            + "for them (1 to 86400), which means a rank died, stalled or failed",
        default: "300"),
    Option(
        flag: "check-replicas",
        help: "with --distributed, compare a checksum of the weights across the ranks after every step instead of after every epoch"),
]

/// The options of the distributed group, read before anything else of a run.
struct DistributedSettings {
    var timeout: Double
    var checksEveryStep: Bool

    /// Returns nil when `--distributed` is absent, and rejects its companions without it.
    static func parse(_ arguments: ParsedArguments) throws(UsageError) -> DistributedSettings? {
        guard arguments.flag("distributed") else {
            let processes = ProcessInfo.processInfo.environment["PMI_SIZE"].flatMap { Int($0) } ?? 1
            if processes > 1 {
                throw UsageError(
                    "mpiexec started \(processes) processes, but without --distributed each would train alone and write "
                        + "the same files; add --distributed, or run one process")
            }
            for name in ["collective-timeout", "check-replicas"] where arguments.contains(name) {
                throw UsageError("--\(name) applies to distributed training; add --distributed and start the run with mpiexec")
            }
            return nil
        }
        let timeout = try arguments.double("collective-timeout", in: .from(1, to: 86_400))
        return DistributedSettings(timeout: timeout, checksEveryStep: arguments.flag("check-replicas"))
    }
}

/// This process's place in a distributed run.
final class DistributedRun {
    let group: MPIGroup
    /// Each rank's process ID and host, so that a launcher's message about a process ID can be
    /// read as a rank.
    let processes: [(pid: Int, host: String)]

    /// The rank of the current process once MPI is up, or nil outside distributed runs; error
    /// messages of other ranks than 0 name it.
    nonisolated(unsafe) static var currentRank: Int?

    /// The rank that MPICH's launcher gave this process in its environment, before MPI is up.
    static let launchRank = ProcessInfo.processInfo.environment["PMI_RANK"].flatMap { Int($0) }

    /// Initializes MPI and learns where the other ranks run. Output of ranks other than 0 is
    /// discarded from here on; their errors still reach standard error.
    init(_ settings: DistributedSettings) throws {
        do {
            group = try MPIGroup(timeout: settings.timeout, timeoutAdvice: "raise --collective-timeout if one step takes longer")
        } catch {
            throw UsageError("--distributed: \(error)")
        }
        Self.currentRank = group.rank
        if group.rank != 0 {
            fflush(stdout)
            _ = freopen("/dev/null", "w", stdout)
        }
        let host = hostName()
        let pids = try group.gather([Double(getpid())], purpose: "process IDs").map { Int($0[0]) }
        let hosts = try group.gather(text: host, purpose: "host names")
        processes = Array(zip(pids, hosts))
    }

    var isLeader: Bool { group.rank == 0 }

    /// Checks that every rank loaded the same training and validation data: the same counts
    /// and the same values, compared by checksum.
    func checkData(_ data: LoadedData) throws {
        let local = fingerprint(data.train) + fingerprint(data.validation)
        let all = try group.gather(local, purpose: "data checksums")
        let differing = all.indices.filter { all[$0] != all[0] }
        guard differing.isEmpty else {
            let describe = { (values: [Double]) in "\(Int(values[0])) training and \(Int(values[3])) validation samples" }
            let listing = ([0] + differing).map { "rank \($0): \(describe(all[$0]))" }.joined(separator: "; ")
            throw UsageError(
                "the data differs between ranks (\(listing), compared with checksums of the values); every rank must "
                    + "read the same files with the same --samples, --validation-samples and --seed")
        }
    }

    /// The ranks on this process's host, which share its cores and memory.
    var localRankCount: Int {
        let host = processes[group.rank].host
        return processes.filter { $0.host == host }.count
    }

    /// Checks that the batch splits evenly and returns each rank's share. A resumed run keeps
    /// its batch size, so the advice is then about the rank count.
    func shareOfBatch(_ batchSize: Int, resumed: Bool) throws(UsageError) -> Int {
        let size = group.size
        guard batchSize % size != 0 else { return batchSize / size }

        if resumed {
            let counts = (1...batchSize).filter { batchSize % $0 == 0 }
            let nearest = counts.sorted { abs($0 - size) < abs($1 - size) }.prefix(2).sorted()
            throw UsageError(
                "the resumed run's batch of \(batchSize) does not split evenly among \(size) ranks; start it on a "
                    + "number of ranks that divides \(batchSize), such as " + nearest.map(String.init).joined(separator: " or "))
        }
        let lower = batchSize / size * size
        let choices = (lower > 0 ? [lower] : []) + [lower + size]
        throw UsageError(
            "--batch-size \(batchSize) does not split evenly among \(size) ranks; use a multiple of \(size), such as "
                + choices.map(String.init).joined(separator: " or "))
    }

    /// Threads per rank when `--threads` is absent: this host's cores shared among its ranks.
    var defaultThreads: Int {
        max(1, ProcessInfo.processInfo.activeProcessorCount / localRankCount)
    }

    /// Checks that every rank runs the same backend on the same instruction set, because the
    /// gradients are summed in the backend's own memory layout.
    func checkBackends(_ backend: Backend) throws {
        let kinds = try group.gather(text: backendKind(backend), purpose: "backend descriptions")
        guard Set(kinds).count == 1 else {
            let listing = kinds.enumerated().map { "rank \($0.offset): \($0.element)" }.joined(separator: "; ")
            throw UsageError(
                "the ranks run different backends or instruction sets (\(listing)); run every rank with the same "
                    + "--backend on machines of the same CPU family")
        }
    }

    func configurationRows(batchSize: Int) -> [(String, String)] {
        let ranks = processes.enumerated().map { "\($0.offset): pid \($0.element.pid) on \($0.element.host)" }
        return [
            ("distributed", "\(counted(group.size, "rank")) over MPI, \(batchSize / group.size) samples per rank per step"),
            ("ranks", ranks.joined(separator: ", ")),
        ]
    }

    /// Waits for the other ranks at the end of the run and shuts MPI down.
    func finish() throws {
        do {
            try group.finalize()
        } catch {
            throw UsageError("--distributed: \(error)")
        }
    }
}

/// Returns the sample count and a 64-bit hash of the inputs and targets of `dataset`, the hash
/// split into halves that a Double represents exactly. Without a data set, returns zeros.
private func fingerprint(_ dataset: InMemoryDataset?) -> [Double] {
    guard let dataset else { return [0, 0, 0] }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ word: UInt64) {
        hash = (hash ^ word) &* 0x0000_0100_0000_01b3
    }
    for value in dataset.inputs {
        mix(UInt64(value.bitPattern))
    }
    for label in dataset.labels ?? [] {
        mix(UInt64(bitPattern: Int64(label)))
    }
    for value in dataset.values ?? [] {
        mix(UInt64(value.bitPattern))
    }
    return [Double(dataset.count), Double(hash >> 32), Double(hash & 0xffff_ffff)]
}

/// Returns the backend's name and instruction set, without the thread count, which may differ by rank.
private func backendKind(_ backend: Backend) -> String {
    backend.summary.split(separator: ",").filter { !$0.contains("thread") }.joined(separator: ",")
}

/// Returns the machine's name as `gethostname` gives it, without the DNS lookup that
/// `ProcessInfo.hostName` may make.
private func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown host" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Returns "1 rank" or "2 ranks": the count with the noun in the number it needs.
func counted(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}
