import ResNetKit
import XCTest

// Shared tools of the reference backend tests: seeded random inputs, tensor helpers and the
// central finite-difference check that every backward pass is held to.

/// SplitMix64, so that every test gets the same inputs on every run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}

func randomValues(_ count: Int, in range: ClosedRange<Double> = -1...1, using generator: inout SeededGenerator)
    -> [Double]
{
    (0..<count).map { _ in Double.random(in: range, using: &generator) }
}

/// Distinct values spaced 0.01 apart in random order, so that no max-pool window contains a tie
/// that a finite-difference step of 1e-6 could flip.
func distinctValues(_ count: Int, using generator: inout SeededGenerator) -> [Double] {
    (0..<count).map { Double($0) * 0.01 - Double(count) * 0.005 }.shuffled(using: &generator)
}

func maxAbsDifference(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "compared arrays have \(a.count) and \(b.count) elements")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

func dot(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).map { $0 * $1 }.reduce(0, +)
}

extension ReferenceBackend where Scalar == Double {
    func tensor(_ values: [Double], _ dims: Int...) throws -> Tensor {
        try makeTensor(scalars: values, shape: TensorShape(dims))
    }
}

/// Relative step of the central differences: h = 1e-6 * max(1, |x|).
let finiteDifferenceStep = 1e-6

/// Allowed error of a finite-difference derivative, relative to max(1, |derivative|).
///
/// In Double the central difference has a truncation error of about h² * f''' ≈ 1e-12 for the
/// smooth operations here (zero for the piecewise linear ones away from their kinks, and the
/// tests keep inputs away from kinks). Its rounding error is about ε * |L| / h, with ε ≈ 1e-16
/// and losses |L| below 1e3, so under 1e-7. A tolerance of 1e-5 leaves a margin of 100, while a
/// missing or wrong term in a backward formula moves a derivative by far more than 1e-3.
let finiteDifferenceTolerance = 1e-5

/// Checks `analytic`, the gradient of `loss` at `point`, against central differences.
///
/// It differentiates along up to `sampleCount` coordinates, always including the first and the
/// last because they sit at borders. It also differentiates once along a random direction that
/// moves every coordinate at once. Failures print the max abs difference for the tensor.
func checkGradient(
    _ name: String, analytic: [Double], at point: [Double], context: String, sampleCount: Int = 12,
    loss: ([Double]) throws -> Double, file: StaticString = #filePath, line: UInt = #line
) throws {
    guard analytic.count == point.count else {
        XCTFail("\(context): \(name) has \(analytic.count) gradient values for \(point.count) inputs", file: file, line: line)
        return
    }
    var generator = SeededGenerator(seed: UInt64(point.count) &* 31 &+ UInt64(name.count))

    var coordinates = Set([0, point.count - 1])
    if point.count <= sampleCount {
        coordinates = Set(point.indices)
    } else {
        while coordinates.count < sampleCount { coordinates.insert(Int.random(in: point.indices, using: &generator)) }
    }

    var maxDifference = 0.0
    var failures: [String] = []
    for index in coordinates.sorted() {
        let step = finiteDifferenceStep * max(1, abs(point[index]))
        var plus = point
        plus[index] += step
        var minus = point
        minus[index] -= step
        let numeric = (try loss(plus) - loss(minus)) / (plus[index] - minus[index])

        let difference = abs(numeric - analytic[index])
        maxDifference = max(maxDifference, difference)
        if difference > finiteDifferenceTolerance * max(1, abs(analytic[index])) {
            failures.append("index \(index): finite difference \(numeric), backward \(analytic[index])")
        }
    }
    XCTAssertTrue(
        failures.isEmpty,
        "\(context): \(name) max abs difference \(maxDifference) over \(coordinates.count) coordinates; "
            + failures.prefix(3).joined(separator: "; "),
        file: file, line: line)

    let direction = randomValues(point.count, using: &generator)
    let scale = point.map(abs).max() ?? 0
    let step = finiteDifferenceStep * max(1, scale)
    let plus = zip(point, direction).map { $0 + step * $1 }
    let minus = zip(point, direction).map { $0 - step * $1 }
    let numeric = (try loss(plus) - loss(minus)) / (2 * step)
    let expected = dot(analytic, direction)
    let magnitude = zip(analytic, direction).map { abs($0 * $1) }.reduce(0, +)
    let difference = abs(numeric - expected)
    XCTAssertLessThanOrEqual(
        difference, finiteDifferenceTolerance * max(1, magnitude),
        "\(context): \(name) along a random direction, finite difference \(numeric), backward \(expected), "
            + "abs difference \(difference)",
        file: file, line: line)
}
