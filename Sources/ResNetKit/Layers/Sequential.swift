/// Collects layers written one per line into an array.
@resultBuilder
public enum LayerBuilder {
    public static func buildExpression(_ layer: Layer) -> [Layer] { [layer] }
    public static func buildExpression(_ layers: [Layer]) -> [Layer] { layers }
    public static func buildBlock(_ parts: [Layer]...) -> [Layer] { parts.flatMap { $0 } }
    public static func buildArray(_ parts: [[Layer]]) -> [Layer] { parts.flatMap { $0 } }
    public static func buildOptional(_ part: [Layer]?) -> [Layer] { part ?? [] }
    public static func buildEither(first part: [Layer]) -> [Layer] { part }
    public static func buildEither(second part: [Layer]) -> [Layer] { part }
}

/// Layers applied one after another. Each is named after its kind and how many of that kind
/// came before it, as Keras names them: `conv2d`, `conv2d_1`, `residual_block`, ...
public final class Sequential: Layer {
    public let kind = "sequential"
    public let layers: [Layer]
    public let names: [String]

    public convenience init(@LayerBuilder _ content: () -> [Layer]) {
        self.init(layers: content())
    }

    public init(layers: [Layer]) {
        self.layers = layers
        var seen: [String: Int] = [:]
        names = layers.map { layer in
            let count = seen[layer.kind, default: 0]
            seen[layer.kind] = count + 1
            return count == 0 ? layer.kind : "\(layer.kind)_\(count)"
        }
    }

    public func build(inputShape: TensorShape, context: BuildContext) throws -> TensorShape {
        var shape = inputShape
        for (layer, name) in zip(layers, names) {
            shape = try context.scoped(name) {
                do {
                    return try layer.build(inputShape: shape, context: context)
                } catch let error as BackendError {
                    throw BackendError("\(name) (\(error.operation))", error.message)
                }
            }
        }
        return shape
    }

    public func forward(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        var y = x
        for (layer, name) in zip(layers, names) {
            y = try layer.forward(y, context: context)
            context.observer?(name, y)
        }
        return y
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    public var sublayers: [Layer] { layers }

    public func prepare(batch: Int, backend: Backend) throws {
        for layer in layers {
            try layer.prepare(batch: batch, backend: backend)
        }
    }

    public func summaryRows(name: String) -> [SummaryRow] {
        zip(layers, names).flatMap { layer, child in
            layer.summaryRows(name: name.isEmpty ? child : "\(name).\(child)")
        }
    }
}
