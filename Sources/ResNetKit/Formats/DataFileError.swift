/// A data file that cannot be read, or whose contents are invalid or unsupported.
///
/// The description is one sentence with the file (and the zip member, for an array inside an
/// NPZ archive) as its subject, stating the value found and the value expected, as in
/// `member y_train.npy of mnist.npz has label 12 at index 7, but the class count is 10; ...`.
public struct DataFileError: Error, CustomStringConvertible, Sendable {
    /// The path of the file as the caller gave it.
    public var file: String
    /// The member of a zip archive, such as `x_train.npy`, or nil for a plain file.
    public var member: String?
    /// The problem, as a predicate that follows the file name, such as "is not an NPY file".
    public var message: String

    public init(file: String, member: String? = nil, _ message: String) {
        self.file = file
        self.member = member
        self.message = message
    }

    public var description: String {
        guard let member else { return "\(file) \(message)" }
        return "member \(member) of \(file) \(message)"
    }
}

/// The name of a data file and, inside an archive, of a member: the place that errors name.
struct DataFileLocation: Sendable {
    var file: String
    var member: String?

    func error(_ message: String) -> DataFileError {
        DataFileError(file: file, member: member, message)
    }
}
