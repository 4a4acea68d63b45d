/// The networks `resnet` can build by name.
public enum Architecture: String, CaseIterable, Sendable {
    /// The Keras tutorial's network: conv 64 7x7 'same', batch norm, ReLU, max pool 3, three
    /// residual blocks of 64 channels with 3x3 kernels and no batch norm, global average
    /// pooling, dense to the classes.
    case tutorial

    public var summary: String {
        switch self {
        case .tutorial: "conv 7x7/64, BN, ReLU, max pool 3, 3 residual blocks of 64, GAP, dense"
        }
    }

    public func makeNetwork(classes: Int) -> Sequential {
        switch self {
        case .tutorial:
            Sequential {
                Conv2D(filters: 64, kernelSize: 7, padding: .same)
                BatchNorm()
                ReLU()
                MaxPool2D(poolSize: 3)
                for _ in 0..<3 {
                    ResidualBlock(filters: 64, kernelSize: 3)
                }
                GlobalAveragePool2D()
                Dense(units: classes)
            }
        }
    }

    /// Builds the network for `inputShape` (CxHxW) on `backend`.
    public func makeModel(classes: Int, inputShape: TensorShape, backend: Backend, seed: UInt64) throws -> Model {
        guard classes >= 2 else {
            throw BackendError("model \(rawValue)", "needs at least 2 classes, got \(classes)")
        }
        return try Model(
            name: rawValue, network: makeNetwork(classes: classes), inputShape: inputShape, backend: backend,
            seed: seed)
    }
}
