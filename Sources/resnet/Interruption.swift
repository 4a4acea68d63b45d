import Foundation

/// Catches SIGINT and SIGTERM during training so that the current step can finish and a
/// checkpoint can be written before the process exits.
///
/// The first signal only records its number, and the handler then restores the default action,
/// so a second signal ends the process at once. Checkpoints are written to a temporary name and
/// renamed, so that cannot leave a damaged one behind.
enum Interruption {
    private static let received: UnsafeMutablePointer<Int32> = {
        let pointer = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return pointer
    }()

    /// Installs the handlers; call once before training starts.
    static func install() {
        _ = received
        for number in [SIGINT, SIGTERM] {
            Glibc.signal(number) { number in
                Interruption.received.pointee = number
                Glibc.signal(number, SIG_DFL)
            }
        }
    }

    /// The signal received so far, or nil.
    static var receivedSignal: Int32? {
        let number = received.pointee
        return number == 0 ? nil : number
    }

    /// Returns the exit code a shell reports for a process ended by `number`: 128 plus the number.
    static func exitCode(for number: Int32) -> Int32 {
        128 + number
    }

    static func name(of number: Int32) -> String {
        switch number {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(number)"
        }
    }
}
