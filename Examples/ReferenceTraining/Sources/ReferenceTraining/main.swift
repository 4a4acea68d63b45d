import Foundation
import ResNetKit

// Eight classes of oriented gratings at 16x16, one channel: learnable, unlike random labels.
let shape = TensorShape(1, 16, 16)
let train = try SyntheticData.gratings(samples: 256, sampleShape: shape, classes: 8, seed: 1)
let validation = try SyntheticData.gratings(samples: 64, sampleShape: shape, classes: 8, seed: 2)

let network = Sequential {
    Conv2D(filters: 16, kernelSize: 3, padding: .same)
    BatchNorm()
    ReLU()
    ResidualBlock(filters: 16, kernelSize: 3, batchNorm: true)
    ResidualBlock(filters: 32, kernelSize: 3, strides: 2, batchNorm: true)
    GlobalAveragePool2D()
    Dense(units: 8)
}
let backend = ReferenceBackend<Float>()
let model = try Model(name: "example", network: network, inputShape: shape, backend: backend, seed: 1)
let trainer = Trainer(model: model, loss: .crossEntropy, optimizer: Adam(learningRate: 0.01))

print("training \(model.trainableParameterCount) parameters on \(backend.summary)")
let history = try trainer.fit(train, validation: validation, epochs: 4, batchSize: 32, seed: 1)
for epoch in history {
    print("epoch \(epoch.epoch) loss=\(epoch.loss) accuracy=\(epoch.accuracy ?? 0) val_accuracy=\(epoch.validationAccuracy ?? 0)")
}

// Chance is 1/8; a model that learned nothing fails here.
guard let final = history.last?.validationAccuracy, final > 0.5 else {
    print("error: validation accuracy stayed at \(history.last?.validationAccuracy ?? 0), expected above 0.5")
    exit(1)
}
