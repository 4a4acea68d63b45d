/// The networks `resnet` can build by name.
///
/// The standard models follow He et al., "Deep Residual Learning for Image Recognition"
/// (2015), in torchvision's variant: convolutions without bias followed by batch norm, 1x1
/// projection shortcuts with batch norm where the shape changes, and explicit padding of 1
/// around 3x3 convolutions. ResNet-50 and ResNet-101 use bottleneck blocks with the stride on
/// the 3x3 convolution (torchvision's v1.5; see `BottleneckBlock`). The CIFAR models (ResNet-20/32/56) use the paper's three stages of
/// 16, 32 and 64 channels, but with projection shortcuts instead of the paper's zero padding.
public enum Architecture: String, CaseIterable, Sendable {
    /// The Keras tutorial's network: conv 64 7x7 'same', batch norm, ReLU, max pool 3, three
    /// residual blocks of 64 channels with 3x3 kernels and no batch norm, global average
    /// pooling, dense to the classes.
    case tutorial
    case resnet18, resnet34, resnet50, resnet101
    case resnet20, resnet32, resnet56

    public var summary: String {
        switch self {
        case .tutorial: "the Keras tutorial's network: conv 7x7/64, BN, ReLU, max pool 3, 3 residual blocks of 64"
        case .resnet18: "ResNet-18: ImageNet stem, basic blocks 2-2-2-2 of 64-128-256-512"
        case .resnet34: "ResNet-34: ImageNet stem, basic blocks 3-4-6-3 of 64-128-256-512"
        case .resnet50: "ResNet-50: ImageNet stem, bottleneck blocks 3-4-6-3 of 64-128-256-512, 4x wider outputs"
        case .resnet101: "ResNet-101: ImageNet stem, bottleneck blocks 3-4-23-3 of 64-128-256-512, 4x wider outputs"
        case .resnet20: "ResNet-20 for 32x32 images: 3 stages of 3 basic blocks, 16-32-64 channels"
        case .resnet32: "ResNet-32 for 32x32 images: 3 stages of 5 basic blocks, 16-32-64 channels"
        case .resnet56: "ResNet-56 for 32x32 images: 3 stages of 9 basic blocks, 16-32-64 channels"
        }
    }

    /// Builds the layers. `inputSize` is the smaller of the input's height and width: below 64
    /// the ImageNet models replace their 7x7 stride-2 stem and max pool with one 3x3 stride-1
    /// convolution, so that 28x28 and 32x32 images keep enough resolution.
    public func makeNetwork(classes: Int, inputSize: Int = 224) -> Sequential {
        switch self {
        case .tutorial:
            return Sequential {
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
        case .resnet18:
            return imageNet(blocks: [2, 2, 2, 2], classes: classes, inputSize: inputSize)
        case .resnet34:
            return imageNet(blocks: [3, 4, 6, 3], classes: classes, inputSize: inputSize)
        case .resnet50:
            return imageNet(blocks: [3, 4, 6, 3], bottleneck: true, classes: classes, inputSize: inputSize)
        case .resnet101:
            return imageNet(blocks: [3, 4, 23, 3], bottleneck: true, classes: classes, inputSize: inputSize)
        case .resnet20:
            return cifar(blocksPerStage: 3, classes: classes)
        case .resnet32:
            return cifar(blocksPerStage: 5, classes: classes)
        case .resnet56:
            return cifar(blocksPerStage: 9, classes: classes)
        }
    }

    private func imageNet(blocks: [Int], bottleneck: Bool = false, classes: Int, inputSize: Int) -> Sequential {
        let pad1 = Padding.explicit(top: 1, bottom: 1, left: 1, right: 1)
        return Sequential {
            if inputSize >= 64 {
                Conv2D(filters: 64, kernelSize: 7, strides: 2, padding: .explicit(top: 3, bottom: 3, left: 3, right: 3), useBias: false)
                BatchNorm()
                ReLU()
                MaxPool2D(poolSize: 3, strides: 2, padding: pad1)
            } else {
                Conv2D(filters: 64, kernelSize: 3, padding: pad1, useBias: false)
                BatchNorm()
                ReLU()
            }
            for (stage, count) in blocks.enumerated() {
                for block in 0..<count {
                    let strides = stage > 0 && block == 0 ? 2 : 1
                    if bottleneck {
                        BottleneckBlock(filters: 64 << stage, strides: strides)
                    } else {
                        ResidualBlock(filters: 64 << stage, kernelSize: 3, strides: strides, batchNorm: true, padding: pad1)
                    }
                }
            }
            GlobalAveragePool2D()
            Dense(units: classes)
        }
    }

    private func cifar(blocksPerStage: Int, classes: Int) -> Sequential {
        let pad1 = Padding.explicit(top: 1, bottom: 1, left: 1, right: 1)
        return Sequential {
            Conv2D(filters: 16, kernelSize: 3, padding: pad1, useBias: false)
            BatchNorm()
            ReLU()
            for stage in 0..<3 {
                for block in 0..<blocksPerStage {
                    ResidualBlock(
                        filters: 16 << stage, kernelSize: 3, strides: stage > 0 && block == 0 ? 2 : 1,
                        batchNorm: true, padding: pad1)
                }
            }
            GlobalAveragePool2D()
            Dense(units: classes)
        }
    }

    /// Builds the network for `inputShape` (CxHxW) on `backend`.
    public func makeModel(classes: Int, inputShape: TensorShape, backend: Backend, seed: UInt64) throws -> Model {
        guard classes >= 2 else {
            throw BackendError("model \(rawValue)", "needs at least 2 classes, got \(classes)")
        }
        guard inputShape.rank == 3 else {
            throw BackendError("model \(rawValue)", "expected an input shape CxHxW, got \(inputShape)")
        }
        let network = makeNetwork(classes: classes, inputSize: min(inputShape[1], inputShape[2]))
        return try Model(name: rawValue, network: network, inputShape: inputShape, backend: backend, seed: seed)
    }
}
