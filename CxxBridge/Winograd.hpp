// Winograd F(4x4, 3x3) convolutions for AVX2 machines, where oneDNN 2.6 has none.
//
// Internal to the bridge. Activations are in oneDNN's nChw8c layout (channel blocks of 8, one
// AVX2 register), kernels in plain OIHW. Only 3x3 kernels at stride 1 with one pixel of
// padding on every side qualify; the output then has the input's height and width.
#pragma once
#include "Bridge.h"

#include <cstdint>
#include <vector>

namespace onednn_bridge::winograd {

/// N images of C input channels and K output channels, H x W before and after.
struct Shape {
    int64_t batch, inputChannels, outputChannels, height, width;
};

/// Whether `shape` qualifies and this CPU runs AVX2 with FMA.
bool applies(const ConvolutionShape &shape);

/// Whether the kernel gradient of a qualifying shape runs Winograd too. Past 256 x 256
/// channels oneDNN's direct kernel computes it faster (bench/winograd/run.sh).
bool appliesToWeightsGradient(const ConvolutionShape &shape);

/// Scratch memory a plan keeps between calls, so that a step allocates nothing.
struct Workspace {
    std::vector<float> transformedWeights;
    /// Transformed tiles and partial sums: one region per thread, or one for the whole layer.
    std::vector<float> scratch;
};

/// dst = conv(src, weights) + bias; src is N x C x H x W and dst N x K x H x W, both nChw8c.
/// `bias` (K values) may be null.
void forward(const Shape &shape, const float *src, const float *weights, const float *bias, float *dst,
             Workspace &workspace);

/// diffSrc = the gradient of the forward pass's input, from diffDst and the same weights.
void backwardData(const Shape &shape, const float *diffDst, const float *weights, float *diffSrc,
                  Workspace &workspace);

/// diffWeights (plain K x C x 3 x 3) = the gradient of the kernel, from src and diffDst; and
/// diffBias (K values) unless it is null.
void backwardWeights(const Shape &shape, const float *src, const float *diffDst, float *diffWeights,
                     float *diffBias, Workspace &workspace);

}
