/// A residual multilayer perceptron for flat features, such as the tutorial's regression data.
///
/// Layers: dense to `width` units, ReLU, `blocks` dense residual blocks of `width` units
/// (dense, ReLU, dense, add the block's input, ReLU: the post-activation form, see
/// `DenseResidualBlock`), and a dense layer to the outputs with no activation. The outputs are
/// the class logits for classification or the predicted values for regression.
public struct ResidualMLP: Sendable {
    /// The name `resnet train --model` takes.
    public static let name = "mlp"

    public var width: Int
    public var blocks: Int

    public init(width: Int = 64, blocks: Int = 2) {
        self.width = width
        self.blocks = blocks
    }

    public var summary: String {
        "residual MLP: dense \(width), ReLU, \(blocks) blocks of dense-ReLU-dense plus identity then ReLU, dense output"
    }

    /// Builds the layers, ending in `outputs` units.
    public func makeNetwork(outputs: Int) -> Sequential {
        Sequential {
            Dense(units: width)
            ReLU()
            for _ in 0..<blocks {
                DenseResidualBlock(units: width)
            }
            Dense(units: outputs)
        }
    }

    /// Builds the network for `features` inputs per sample on `backend`.
    public func makeModel(features: Int, outputs: Int, backend: Backend, seed: UInt64) throws -> Model {
        guard features > 0, outputs > 0, width > 0, blocks >= 0 else {
            throw BackendError(
                "model \(Self.name)",
                "needs positive features, outputs and width, got \(features), \(outputs) and \(width)")
        }
        return try Model(
            name: Self.name, network: makeNetwork(outputs: outputs), inputShape: TensorShape(features),
            backend: backend, seed: seed)
    }
}
