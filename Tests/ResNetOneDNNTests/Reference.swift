// Naive loop implementations in Double, the oracle for the oneDNN backend's results, plus
// seeded random data and comparison helpers. Written to be read, not to be fast.
//
// Dimensions: N batch, C input channels, K output channels, H x W input, R x S kernel,
// OH x OW output. All arrays are in canonical order (NCHW, OIHW, [N, features]).
import ResNetKit
import XCTest

/// SplitMix64, so that every run gets the same inputs.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomValues(_ count: Int, in range: ClosedRange<Float> = -1...1, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float.random(in: range, using: &generator) }
}

func maxAbsDifference(_ actual: [Float], _ expected: [Double]) -> Double {
    zip(actual, expected).map { abs(Double($0) - $1) }.max() ?? 0
}

/// Asserts that `actual` matches `expected` within `tolerance` times the largest magnitude of
/// `expected` (at least 1), and prints the max abs difference on failure.
func assertClose(
    _ actual: [Float], _ expected: [Double], tolerance: Double, _ label: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.count, expected.count, "\(label): element count", file: file, line: line)
    let scale = max(1, expected.map(abs).max() ?? 0)
    let difference = maxAbsDifference(actual, expected)
    XCTAssertLessThanOrEqual(
        difference, tolerance * scale,
        "\(label): max abs difference \(difference), allowed \(tolerance * scale)", file: file, line: line)
}

// MARK: - Convolution

func referenceConvolution(
    _ x: [Float], _ weights: [Float], _ bias: [Float]?, _ g: ConvolutionGeometry, batch: Int
) -> [Double] {
    var y = [Double](repeating: 0, count: g.outputShape(batch: batch).elementCount)
    for n in 0..<batch {
        for k in 0..<g.outputChannels {
            for oh in 0..<g.outputHeight {
                for ow in 0..<g.outputWidth {
                    var sum = Double(bias?[k] ?? 0)
                    for c in 0..<g.inputChannels {
                        for r in 0..<g.kernelHeight {
                            let ih = oh * g.strideHeight - g.padTop + r
                            guard ih >= 0, ih < g.inputHeight else { continue }
                            for s in 0..<g.kernelWidth {
                                let iw = ow * g.strideWidth - g.padLeft + s
                                guard iw >= 0, iw < g.inputWidth else { continue }
                                let xIndex = ((n * g.inputChannels + c) * g.inputHeight + ih) * g.inputWidth + iw
                                let wIndex = ((k * g.inputChannels + c) * g.kernelHeight + r) * g.kernelWidth + s
                                sum += Double(x[xIndex]) * Double(weights[wIndex])
                            }
                        }
                    }
                    y[((n * g.outputChannels + k) * g.outputHeight + oh) * g.outputWidth + ow] = sum
                }
            }
        }
    }
    return y
}

/// Returns dx, dw and db of a convolution.
func referenceConvolutionBackward(
    _ dy: [Float], _ x: [Float], _ weights: [Float], _ g: ConvolutionGeometry, batch: Int
) -> (dx: [Double], dw: [Double], db: [Double]) {
    var dx = [Double](repeating: 0, count: x.count)
    var dw = [Double](repeating: 0, count: weights.count)
    var db = [Double](repeating: 0, count: g.outputChannels)
    for n in 0..<batch {
        for k in 0..<g.outputChannels {
            for oh in 0..<g.outputHeight {
                for ow in 0..<g.outputWidth {
                    let gradient = Double(dy[((n * g.outputChannels + k) * g.outputHeight + oh) * g.outputWidth + ow])
                    db[k] += gradient
                    for c in 0..<g.inputChannels {
                        for r in 0..<g.kernelHeight {
                            let ih = oh * g.strideHeight - g.padTop + r
                            guard ih >= 0, ih < g.inputHeight else { continue }
                            for s in 0..<g.kernelWidth {
                                let iw = ow * g.strideWidth - g.padLeft + s
                                guard iw >= 0, iw < g.inputWidth else { continue }
                                let xIndex = ((n * g.inputChannels + c) * g.inputHeight + ih) * g.inputWidth + iw
                                let wIndex = ((k * g.inputChannels + c) * g.kernelHeight + r) * g.kernelWidth + s
                                dx[xIndex] += gradient * Double(weights[wIndex])
                                dw[wIndex] += gradient * Double(x[xIndex])
                            }
                        }
                    }
                }
            }
        }
    }
    return (dx, dw, db)
}

// MARK: - Dense

func referenceDense(_ x: [Float], _ weights: [Float], _ bias: [Float]?, batch: Int, inputs: Int, outputs: Int)
    -> [Double]
{
    var y = [Double](repeating: 0, count: batch * outputs)
    for n in 0..<batch {
        for o in 0..<outputs {
            var sum = Double(bias?[o] ?? 0)
            for i in 0..<inputs {
                sum += Double(x[n * inputs + i]) * Double(weights[o * inputs + i])
            }
            y[n * outputs + o] = sum
        }
    }
    return y
}

func referenceDenseBackward(_ dy: [Float], _ x: [Float], _ weights: [Float], batch: Int, inputs: Int, outputs: Int)
    -> (dx: [Double], dw: [Double], db: [Double])
{
    var dx = [Double](repeating: 0, count: batch * inputs)
    var dw = [Double](repeating: 0, count: outputs * inputs)
    var db = [Double](repeating: 0, count: outputs)
    for n in 0..<batch {
        for o in 0..<outputs {
            let gradient = Double(dy[n * outputs + o])
            db[o] += gradient
            for i in 0..<inputs {
                dx[n * inputs + i] += gradient * Double(weights[o * inputs + i])
                dw[o * inputs + i] += gradient * Double(x[n * inputs + i])
            }
        }
    }
    return (dx, dw, db)
}

// MARK: - Batch normalization

/// Per-channel statistics over N and the spatial positions; `spatial` is H * W (1 for [N, C]).
func referenceStatistics(_ x: [Float], batch: Int, channels: Int, spatial: Int) -> (mean: [Double], variance: [Double]) {
    var mean = [Double](repeating: 0, count: channels)
    var variance = [Double](repeating: 0, count: channels)
    let count = Double(batch * spatial)
    for c in 0..<channels {
        var sum = 0.0
        for n in 0..<batch {
            for p in 0..<spatial {
                sum += Double(x[(n * channels + c) * spatial + p])
            }
        }
        mean[c] = sum / count
        var squares = 0.0
        for n in 0..<batch {
            for p in 0..<spatial {
                let centered = Double(x[(n * channels + c) * spatial + p]) - mean[c]
                squares += centered * centered
            }
        }
        variance[c] = squares / count
    }
    return (mean, variance)
}

func referenceBatchNorm(
    _ x: [Float], scale: [Float], shift: [Float], mean: [Double], variance: [Double], epsilon: Double,
    batch: Int, channels: Int, spatial: Int
) -> [Double] {
    var y = [Double](repeating: 0, count: x.count)
    for n in 0..<batch {
        for c in 0..<channels {
            let inverse = 1 / (variance[c] + epsilon).squareRoot()
            for p in 0..<spatial {
                let index = (n * channels + c) * spatial + p
                y[index] = Double(scale[c]) * (Double(x[index]) - mean[c]) * inverse + Double(shift[c])
            }
        }
    }
    return y
}

/// Backward of batch normalization with batch statistics: dx, dscale and dshift.
func referenceBatchNormBackward(
    _ dy: [Float], _ x: [Float], scale: [Float], epsilon: Double, batch: Int, channels: Int, spatial: Int
) -> (dx: [Double], dscale: [Double], dshift: [Double]) {
    let (mean, variance) = referenceStatistics(x, batch: batch, channels: channels, spatial: spatial)
    var dx = [Double](repeating: 0, count: x.count)
    var dscale = [Double](repeating: 0, count: channels)
    var dshift = [Double](repeating: 0, count: channels)
    let count = Double(batch * spatial)
    for c in 0..<channels {
        let inverse = 1 / (variance[c] + epsilon).squareRoot()
        for n in 0..<batch {
            for p in 0..<spatial {
                let index = (n * channels + c) * spatial + p
                let normalized = (Double(x[index]) - mean[c]) * inverse
                dshift[c] += Double(dy[index])
                dscale[c] += Double(dy[index]) * normalized
            }
        }
        for n in 0..<batch {
            for p in 0..<spatial {
                let index = (n * channels + c) * spatial + p
                let normalized = (Double(x[index]) - mean[c]) * inverse
                dx[index] =
                    Double(scale[c]) * inverse / count
                    * (count * Double(dy[index]) - dshift[c] - normalized * dscale[c])
            }
        }
    }
    return (dx, dscale, dshift)
}

// MARK: - Pooling

/// Max pooling that skips padded positions; returns y and, per output, the input index of its
/// maximum (the first one on ties).
func referenceMaxPool(_ x: [Float], _ g: PoolGeometry, batch: Int) -> (y: [Double], argmax: [Int]) {
    let count = g.outputShape(batch: batch).elementCount
    var y = [Double](repeating: 0, count: count)
    var argmax = [Int](repeating: -1, count: count)
    for n in 0..<batch {
        for c in 0..<g.channels {
            for oh in 0..<g.outputHeight {
                for ow in 0..<g.outputWidth {
                    var best = -Double.infinity
                    var bestIndex = -1
                    for r in 0..<g.windowHeight {
                        let ih = oh * g.strideHeight - g.padTop + r
                        guard ih >= 0, ih < g.inputHeight else { continue }
                        for s in 0..<g.windowWidth {
                            let iw = ow * g.strideWidth - g.padLeft + s
                            guard iw >= 0, iw < g.inputWidth else { continue }
                            let index = ((n * g.channels + c) * g.inputHeight + ih) * g.inputWidth + iw
                            if Double(x[index]) > best {
                                best = Double(x[index])
                                bestIndex = index
                            }
                        }
                    }
                    let outputIndex = ((n * g.channels + c) * g.outputHeight + oh) * g.outputWidth + ow
                    y[outputIndex] = best
                    argmax[outputIndex] = bestIndex
                }
            }
        }
    }
    return (y, argmax)
}

func referenceMaxPoolBackward(_ dy: [Float], argmax: [Int], inputCount: Int) -> [Double] {
    var dx = [Double](repeating: 0, count: inputCount)
    for (outputIndex, inputIndex) in argmax.enumerated() {
        dx[inputIndex] += Double(dy[outputIndex])
    }
    return dx
}

func referenceGlobalAveragePool(_ x: [Float], batch: Int, channels: Int, spatial: Int) -> [Double] {
    (0..<(batch * channels)).map { plane in
        (0..<spatial).reduce(0.0) { $0 + Double(x[plane * spatial + $1]) } / Double(spatial)
    }
}

// MARK: - Inputs in a blocked layout

/// Returns `x` ([N, C, H, W]) passed through a 1 x 1 identity convolution, so that it holds
/// the same values in the layout oneDNN picks for convolution outputs (blocked by 8 or 16
/// channels, depending on the ISA). Each output sums one product with 1 and zeros, so the
/// values are exact.
func blockedCopy(_ x: Tensor, backend: any Backend) throws -> Tensor {
    let channels = x.shape[1]
    let geometry = try ConvolutionGeometry(
        inputChannels: channels, inputHeight: x.shape[2], inputWidth: x.shape[3], outputChannels: channels,
        kernel: (1, 1), stride: (1, 1), padding: .valid)
    var identity = [Float](repeating: 0, count: channels * channels)
    for c in 0..<channels {
        identity[c * channels + c] = 1
    }
    let weights = try backend.makeTensor(identity, shape: geometry.weightShape)
    return try backend.convolution(x, weights: weights, bias: nil, geometry: geometry)
}
