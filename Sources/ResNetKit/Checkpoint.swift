import Foundation

/// A model's parameters in a safetensors file, with the metadata needed to rebuild the model.
///
/// Every parameter, batch-norm running statistics included, is an F32 tensor in canonical
/// layout (OIHW convolution kernels, `[outputs, inputs]` dense kernels) named by its dotted
/// path, such as `residual_block_1.conv2d_1.kernel`. The `__metadata__` object contains:
///
///     format                swift-resnet-checkpoint
///     format_version        1
///     architecture          an `Architecture` raw value, such as resnet20
///     input_shape           the per-sample input shape as a JSON list: C, H, W, such as [3, 32, 32], or
///                           the feature count of flat inputs, such as [2]
///     classes               the number of outputs
///     batch_norm_momentum   such as 0.99
///     batch_norm_epsilon    such as 0.001
///     batch_norm_variance   biased (batch variance divided by N*H*W)
///     data_crc32            CRC-32 of the data section, 8 lowercase hex digits
///
/// and any free-form entries the writer adds, such as the training data and optimizer
/// settings. Tensors named `optimizer.<...>` hold optimizer state; loading parameters skips them.
public struct Checkpoint {
    public static let formatName = "swift-resnet-checkpoint"
    public static let formatVersion = 1
    /// The name prefix of tensors that hold optimizer state rather than parameters.
    public static let stateTensorPrefix = "optimizer."

    enum Key {
        static let format = "format"
        static let formatVersion = "format_version"
        static let architecture = "architecture"
        static let inputShape = "input_shape"
        static let classes = "classes"
        static let batchNormMomentum = "batch_norm_momentum"
        static let batchNormEpsilon = "batch_norm_epsilon"
        static let batchNormVariance = "batch_norm_variance"
        static let checksum = "data_crc32"
        static let all: Set<String> = [
            format, formatVersion, architecture, inputShape, classes, batchNormMomentum, batchNormEpsilon,
            batchNormVariance, checksum,
        ]
    }

    public let path: String
    /// The model's name, an `Architecture` raw value for the models `resnet` builds.
    public let architecture: String
    /// Per-sample input shape, CxHxW.
    public let inputShape: TensorShape
    public let classCount: Int
    public let batchNorm: BatchNormSettings
    /// The free-form metadata: every entry besides the ones listed in the type's documentation.
    public let entries: [String: String]
    /// The file as read, for its tensors.
    public let file: SafeTensorsFile

    // MARK: - Saving

    /// Saves every parameter of `model` to `url`, with free-form `entries` in the metadata and
    /// optional optimizer state tensors, whose names must start with `optimizer.`.
    ///
    /// The file is written atomically (see `writeFileAtomically`). Unless `replacingExisting`
    /// is true, an existing file is left unchanged and `FileWriteError` of kind `.exists` is thrown.
    public static func save(
        _ model: Model, to url: URL, entries: [String: String] = [:],
        stateTensors: [(name: String, shape: TensorShape, values: [Float])] = [], replacingExisting: Bool = false
    ) throws {
        let path = url.path
        if let reserved = entries.keys.sorted().first(where: Key.all.contains) {
            throw CheckpointError(path: path, kind: .invalidEntry, message: "metadata entry '\(reserved)' is reserved for the checkpoint format; choose another key")
        }
        var writer = SafeTensorsWriter()
        for parameter in model.parameters {
            let values = try model.backend.values(of: parameter.value)
            try writer.append(parameter.name, shape: parameter.shape.dims, values: values)
        }
        for state in stateTensors {
            guard state.name.hasPrefix(stateTensorPrefix) else {
                throw CheckpointError(
                    path: path, kind: .invalidEntry,
                    message: "state tensor '\(state.name)' must be named \(stateTensorPrefix)<...> to stay apart from the parameters")
            }
            try writer.append(state.name, shape: state.shape.dims, values: state.values)
        }

        let batchNorm = try BatchNormSettings(of: model)
        var metadata = entries
        metadata[Key.format] = formatName
        metadata[Key.formatVersion] = String(formatVersion)
        metadata[Key.architecture] = model.name
        metadata[Key.inputShape] = "[" + model.inputShape.dims.map(String.init).joined(separator: ", ") + "]"
        metadata[Key.classes] = String(model.outputShape.elementCount)
        metadata[Key.batchNormMomentum] = "\(batchNorm.momentum)"
        metadata[Key.batchNormEpsilon] = "\(batchNorm.epsilon)"
        metadata[Key.batchNormVariance] = batchNorm.biasedVariance ? "biased" : "unbiased"
        metadata[Key.checksum] = hexadecimal(CRC32.checksum(writer.data))
        try writeFileAtomically(writer.encoded(metadata: metadata), to: url, replacingExisting: replacingExisting)
    }

    // MARK: - Loading

    /// Reads the checkpoint at `url` and checks its format, version, metadata and the CRC-32
    /// of its data. Throws `SafeTensorsError` for a damaged file and `CheckpointError` for one
    /// that is not a valid checkpoint.
    public init(contentsOf url: URL) throws {
        let file = try SafeTensorsFile(contentsOf: url)
        let path = file.path
        let metadata = file.metadata
        func failure(_ kind: CheckpointError.Kind, _ message: String) -> CheckpointError {
            CheckpointError(path: path, kind: kind, message: message)
        }

        guard metadata[Key.format] == Self.formatName else {
            throw failure(
                .notACheckpoint,
                "a safetensors file, but not a swift-resnet checkpoint: its metadata has no "
                    + "\(Key.format) '\(Self.formatName)'; pass a file that resnet train --save wrote")
        }
        guard let version = metadata[Key.formatVersion].flatMap({ Int($0) }) else {
            throw failure(.invalidMetadata, "metadata \(Key.formatVersion) is missing or not an integer; the file is damaged")
        }
        guard version <= Self.formatVersion else {
            throw failure(
                .unsupportedVersion,
                "checkpoint format version \(version) is newer than this build reads (\(Self.formatVersion)); "
                    + "use a newer swift-resnet")
        }

        guard let recorded = metadata[Key.checksum], recorded.count == 8, let expected = UInt32(recorded, radix: 16) else {
            throw failure(.invalidMetadata, "metadata \(Key.checksum) is missing or not 8 hex digits; the file is damaged")
        }
        let actual = CRC32.checksum(file.data)
        guard actual == expected else {
            throw failure(
                .checksumMismatch,
                "the data's CRC-32 is \(hexadecimal(actual)) but the header records \(recorded), so the tensors "
                    + "changed after the file was written; restore the file from a copy or save the model again")
        }

        func required(_ key: String) throws -> String {
            guard let value = metadata[key], !value.isEmpty else {
                throw failure(.invalidMetadata, "metadata \(key) is missing; the file is damaged or was not written by swift-resnet")
            }
            return value
        }
        architecture = try required(Key.architecture)
        let shapeText = try required(Key.inputShape)
        guard let shape = parseShape(shapeText), shape.count == 3 || shape.count == 1 else {
            throw failure(
                .invalidMetadata,
                "metadata \(Key.inputShape) is '\(shapeText)', expected a list of positive integers: [C, H, W] or [features]")
        }
        inputShape = TensorShape(shape)
        let classesText = try required(Key.classes)
        guard let classes = Int(classesText), classes >= 1 else {
            throw failure(.invalidMetadata, "metadata \(Key.classes) is '\(classesText)', expected a positive integer")
        }
        classCount = classes

        let momentumText = try required(Key.batchNormMomentum)
        let epsilonText = try required(Key.batchNormEpsilon)
        let varianceText = try required(Key.batchNormVariance)
        guard let momentum = Float(momentumText), let epsilon = Float(epsilonText),
            ["biased", "unbiased"].contains(varianceText)
        else {
            throw failure(
                .invalidMetadata,
                "batch-norm metadata momentum '\(momentumText)', epsilon '\(epsilonText)', variance '\(varianceText)' "
                    + "is invalid; expected two numbers and biased or unbiased")
        }
        batchNorm = BatchNormSettings(momentum: momentum, epsilon: epsilon, biasedVariance: varianceText == "biased")

        self.path = path
        self.file = file
        self.entries = metadata.filter { !Key.all.contains($0.key) }
    }

    /// Copies the checkpoint's parameters into `model`, whose architecture, input shape, class
    /// count, batch-norm settings, parameter names and shapes must all match.
    ///
    /// Everything is checked, and every new tensor created, before the first parameter
    /// changes, so a failure leaves the model as it was. Parameters come back in the plain
    /// layout: call `model.prepare(batch:)` afterwards to run at full speed.
    public func restore(into model: Model) throws {
        func failure(_ kind: CheckpointError.Kind, _ message: String) -> CheckpointError {
            CheckpointError(path: path, kind: kind, message: message)
        }
        let rebuild = "rebuild the model from the checkpoint's metadata"

        guard architecture == model.name else {
            throw failure(.architectureMismatch, "the checkpoint contains a \(architecture) model, but the target model is \(model.name); \(rebuild)")
        }
        guard inputShape == model.inputShape else {
            throw failure(
                .architectureMismatch,
                "the checkpoint's input shape is \(inputShape) (CxHxW), but the target model takes \(model.inputShape); \(rebuild)")
        }
        guard classCount == model.outputShape.elementCount else {
            throw failure(
                .architectureMismatch,
                "the checkpoint has \(classCount) classes, but the target model has \(model.outputShape.elementCount); \(rebuild)")
        }
        let modelBatchNorm = try BatchNormSettings(of: model)
        guard batchNorm == modelBatchNorm else {
            throw failure(
                .architectureMismatch,
                "the checkpoint's batch norm (\(batchNorm)) differs from the target model's (\(modelBatchNorm)); \(rebuild)")
        }

        let parameters = model.parameters
        let missing = parameters.filter { file.entry(named: $0.name) == nil }.map(\.name)
        guard missing.isEmpty else {
            throw failure(
                .missingParameter,
                "the checkpoint lacks \(listed(missing, "parameter")) of the \(model.name) model; the file was "
                    + "edited or written by another program")
        }
        let names = Set(parameters.map(\.name))
        let unexpected = file.entries.map(\.name).filter { !names.contains($0) && !$0.hasPrefix(Self.stateTensorPrefix) }
        guard unexpected.isEmpty else {
            throw failure(
                .unexpectedTensor,
                "the checkpoint has \(listed(unexpected, "tensor")) that the \(model.name) model does not have; "
                    + "the file was edited or written by another program")
        }
        for parameter in parameters {
            let entry = file.entry(named: parameter.name)!
            guard entry.shape == parameter.shape.dims else {
                throw failure(
                    .shapeMismatch,
                    "parameter \(parameter.name) has shape \(TensorShape(entry.shape)) in the checkpoint but "
                        + "\(parameter.shape) in the \(model.name) model; the file was edited or written by another program")
            }
            guard entry.dtype == .f32 || entry.dtype == .f64 else {
                throw failure(.shapeMismatch, "parameter \(parameter.name) has dtype \(entry.dtype.rawValue); expected F32 or F64")
            }
        }

        let tensors = try parameters.map { parameter in
            try model.backend.makeTensor(try file.floats(named: parameter.name), shape: parameter.shape)
        }
        for (parameter, tensor) in zip(parameters, tensors) {
            parameter.value = tensor
        }
    }

    /// Builds the checkpoint's architecture on `backend` and loads the parameters into it.
    public func makeModel(backend: Backend) throws -> Model {
        guard let architecture = Architecture(rawValue: architecture) else {
            let known = Architecture.allCases.map(\.rawValue).joined(separator: ", ")
            throw CheckpointError(
                path: path, kind: .architectureMismatch,
                message: "architecture '\(self.architecture)' is not one this build defines (\(known)); use the swift-resnet version that wrote it")
        }
        let model: Model
        do {
            model = try architecture.makeModel(classes: classCount, inputShape: inputShape, backend: backend, seed: 0)
        } catch let error as BackendError {
            throw CheckpointError(
                path: path, kind: .invalidMetadata,
                message: "cannot build \(architecture.rawValue) for input \(inputShape) and \(classCount) classes: \(error)")
        }
        try restore(into: model)
        return model
    }

    // MARK: - Optimizer state

    /// Names of the tensors that hold optimizer state, in file order.
    public var stateTensorNames: [String] {
        file.entries.map(\.name).filter { $0.hasPrefix(Self.stateTensorPrefix) }
    }

    /// Returns the shape and values of a state tensor.
    public func stateTensor(named name: String) throws -> (shape: TensorShape, values: [Float]) {
        guard name.hasPrefix(Self.stateTensorPrefix), let entry = file.entry(named: name) else {
            throw CheckpointError(path: path, kind: .missingParameter, message: "the checkpoint has no state tensor '\(name)'")
        }
        return (TensorShape(entry.shape), try file.floats(named: name))
    }
}

/// A checkpoint that is readable but invalid, or that does not fit the model it is loaded into.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// A safetensors file without the checkpoint's format entry.
        case notACheckpoint
        case unsupportedVersion
        /// A metadata entry is missing or malformed.
        case invalidMetadata
        /// The data section's CRC-32 differs from the recorded one.
        case checksumMismatch
        /// Architecture, input shape, class count or batch-norm settings differ from the model's.
        case architectureMismatch
        case missingParameter
        case unexpectedTensor
        case shapeMismatch
        /// A save request with a reserved metadata key or a badly named state tensor.
        case invalidEntry
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

/// The batch-norm convention a checkpoint records, so that it is loaded into layers that
/// compute the same function.
public struct BatchNormSettings: Equatable, Sendable, CustomStringConvertible {
    public var momentum: Float
    public var epsilon: Float
    /// Whether the batch variance divides by N*H*W rather than N*H*W - 1.
    public var biasedVariance: Bool

    public init(momentum: Float, epsilon: Float, biasedVariance: Bool) {
        self.momentum = momentum
        self.epsilon = epsilon
        self.biasedVariance = biasedVariance
    }

    /// Reads the settings of the model's batch-norm layers, which must agree; a model without
    /// batch norm gets `BatchNormConvention`'s.
    public init(of model: Model) throws {
        let layers = model.network.allLayers.compactMap { $0 as? BatchNorm }
        let momentum = layers.first?.momentum ?? BatchNormConvention.momentum
        let epsilon = layers.first?.epsilon ?? BatchNormConvention.epsilon
        guard layers.allSatisfy({ $0.momentum == momentum && $0.epsilon == epsilon }) else {
            throw BackendError(
                "checkpoint", "the batch-norm layers of \(model.name) use different momentum or epsilon; a checkpoint records one setting")
        }
        self.init(momentum: momentum, epsilon: epsilon, biasedVariance: true)
    }

    public var description: String {
        "momentum \(momentum), epsilon \(epsilon), \(biasedVariance ? "biased" : "unbiased") variance"
    }
}

/// Parses a JSON list of positive integers such as `[3, 32, 32]`.
private func parseShape(_ text: String) -> [Int]? {
    guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let list = object as? [Any] else {
        return nil
    }
    let dims = list.compactMap { $0 as? Int }
    guard dims.count == list.count, dims.allSatisfy({ $0 > 0 }) else { return nil }
    return dims
}

/// Counts and lists names, the first three in full: "2 parameters (a, b)".
private func listed(_ names: [String], _ noun: String) -> String {
    let shown = names.prefix(3).joined(separator: ", ")
    let more = names.count > 3 ? " and \(names.count - 3) more" : ""
    return "\(names.count) \(noun)\(names.count == 1 ? "" : "s") (\(shown)\(more))"
}

private func hexadecimal(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}
