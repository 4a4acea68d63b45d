import XCTest
import ResNetKit
import ResNetOneDNN

/// Whole models on both backends through `BackendComparison`, the check behind `resnet compare`.
final class ComparisonTests: XCTestCase {
    private func comparison(_ architecture: Architecture, size: Int, batch: Int, mode: ComparisonMode = .train, steps: Int = 0)
        -> BackendComparison
    {
        BackendComparison(
            makeModel: { backend in
                try architecture.makeModel(
                    classes: 10, inputShape: TensorShape(3, size, size), backend: backend, seed: 3)
            },
            batch: batch, mode: mode, steps: steps, seed: 5, timingRepeats: 1)
    }

    private func failures(_ report: ComparisonReport) -> String {
        (report.outputs + report.gradients + report.weights + (report.stepLossDifference.map { [$0] } ?? []))
            .filter { !$0.passed }
            .map { "\($0.name): max abs \($0.maxAbsolute), relative \($0.maxRelative)" }
            .joined(separator: "; ")
    }

    func testTutorialModelMatchesInTraining() throws {
        let report = try comparison(.tutorial, size: 32, batch: 3).run(
            candidate: try OneDNNBackend(threads: 2), reference: ReferenceBackend<Float>(threads: 2))
        XCTAssertEqual(report.outputs.count, 10, "9 top-level layers and the loss")
        XCTAssertEqual(report.gradients.count, 18)
        XCTAssertTrue(report.passed, failures(report))
    }

    func testProjectionShortcutsAndStrideMatch() throws {
        let report = try comparison(.resnet20, size: 16, batch: 2).run(
            candidate: try OneDNNBackend(threads: 2), reference: ReferenceBackend<Float>(threads: 2))
        XCTAssertTrue(report.passed, failures(report))
    }

    func testInferenceModeMatches() throws {
        let report = try comparison(.tutorial, size: 24, batch: 2, mode: .inference).run(
            candidate: try OneDNNBackend(threads: 2), reference: ReferenceBackend<Float>(threads: 2))
        XCTAssertTrue(report.gradients.isEmpty)
        XCTAssertTrue(report.passed, failures(report))
    }

    func testTwentyAdamStepsGiveTheSameLossCurve() throws {
        let report = try comparison(.tutorial, size: 32, batch: 4, steps: 20).run(
            candidate: try OneDNNBackend(threads: 2), reference: ReferenceBackend<Float>(threads: 2))
        XCTAssertEqual(report.stepLosses.count, 20)
        let losses = report.stepLosses
        XCTAssertLessThan(losses[19].0, losses[0].0, "20 steps on one batch must lower its loss")
        XCTAssertTrue(report.passed, failures(report))
    }

    func testPerturbedBackendFailsTheComparison() throws {
        let perturbed = PerturbedBackend(wrapping: try OneDNNBackend(threads: 2), offset: 1e-2)
        let report = try comparison(.tutorial, size: 16, batch: 2).run(
            candidate: perturbed, reference: ReferenceBackend<Float>(threads: 2))
        XCTAssertFalse(report.passed, "an offset of 1e-2 on every convolution output must be caught")
        XCTAssertFalse(report.outputs[0].passed, "the first convolution's output is where the offset starts")
    }
}

/// A backend that adds `offset` to every convolution output and otherwise forwards to another.
final class PerturbedBackend: Backend {
    private let base: Backend
    private let offset: Float

    init(wrapping base: Backend, offset: Float) {
        self.base = base
        self.offset = offset
    }

    var name: String { "perturbed \(base.name)" }
    var summary: String { "perturbed \(base.summary)" }

    func convolution(_ x: Tensor, weights: Tensor, bias: Tensor?, geometry: ConvolutionGeometry) throws -> Tensor {
        let y = try base.convolution(x, weights: weights, bias: bias, geometry: geometry)
        return try base.makeTensor(try base.values(of: y).map { $0 + offset }, shape: y.shape)
    }

    func makeTensor(_ values: [Float], shape: TensorShape) throws -> Tensor { try base.makeTensor(values, shape: shape) }
    func makeTensor(copying values: UnsafeBufferPointer<Float>, shape: TensorShape) throws -> Tensor {
        try base.makeTensor(copying: values, shape: shape)
    }
    func values(of tensor: Tensor) throws -> [Float] { try base.values(of: tensor) }
    func zeros(like tensor: Tensor) throws -> Tensor { try base.zeros(like: tensor) }
    func update(_ tensors: [Tensor], with update: ElementwiseUpdate) throws { try base.update(tensors, with: update) }
    func convolutionBackward(
        _ dy: Tensor, x: Tensor, weights: Tensor, hasBias: Bool, geometry: ConvolutionGeometry, computeInputGradient: Bool
    ) throws -> LinearGradients {
        try base.convolutionBackward(
            dy, x: x, weights: weights, hasBias: hasBias, geometry: geometry, computeInputGradient: computeInputGradient)
    }
    func dense(_ x: Tensor, weights: Tensor, bias: Tensor?) throws -> Tensor { try base.dense(x, weights: weights, bias: bias) }
    func denseBackward(_ dy: Tensor, x: Tensor, weights: Tensor, hasBias: Bool, computeInputGradient: Bool) throws
        -> LinearGradients
    {
        try base.denseBackward(dy, x: x, weights: weights, hasBias: hasBias, computeInputGradient: computeInputGradient)
    }
    func batchNormTraining(_ x: Tensor, scale: Tensor, shift: Tensor, epsilon: Float) throws -> BatchNormOutput {
        try base.batchNormTraining(x, scale: scale, shift: shift, epsilon: epsilon)
    }
    func batchNormInference(_ x: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor, epsilon: Float)
        throws -> Tensor
    {
        try base.batchNormInference(x, scale: scale, shift: shift, mean: mean, variance: variance, epsilon: epsilon)
    }
    func batchNormBackward(_ dy: Tensor, x: Tensor, scale: Tensor, mean: Tensor, variance: Tensor, epsilon: Float)
        throws -> BatchNormGradients
    {
        try base.batchNormBackward(dy, x: x, scale: scale, mean: mean, variance: variance, epsilon: epsilon)
    }
    func relu(_ x: Tensor) throws -> Tensor { try base.relu(x) }
    func reluBackward(_ dy: Tensor, y: Tensor) throws -> Tensor { try base.reluBackward(dy, y: y) }
    func maxPool(_ x: Tensor, geometry: PoolGeometry, training: Bool) throws -> MaxPoolOutput {
        try base.maxPool(x, geometry: geometry, training: training)
    }
    func maxPoolBackward(_ dy: Tensor, x: Tensor, forward: MaxPoolOutput, geometry: PoolGeometry) throws -> Tensor {
        try base.maxPoolBackward(dy, x: x, forward: forward, geometry: geometry)
    }
    func globalAveragePool(_ x: Tensor) throws -> Tensor { try base.globalAveragePool(x) }
    func globalAveragePoolBackward(_ dy: Tensor, inputShape: TensorShape) throws -> Tensor {
        try base.globalAveragePoolBackward(dy, inputShape: inputShape)
    }
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try base.add(a, b) }
    func reshape(_ x: Tensor, to shape: TensorShape) throws -> Tensor { try base.reshape(x, to: shape) }
    func prepareConvolutionWeights(_ weights: Tensor, geometry: ConvolutionGeometry, batch: Int) throws -> Tensor {
        try base.prepareConvolutionWeights(weights, geometry: geometry, batch: batch)
    }
}
