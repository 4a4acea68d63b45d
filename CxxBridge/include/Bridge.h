// The C++ bridge between Swift and oneDNN 2.6.
//
// Swift imports only this header: opaque handles, plain structs and `noexcept` free functions.
// Every function catches oneDNN's exceptions inside, returns a Status, and leaves a message
// naming the operation, the shapes and oneDNN's status in `lastErrorMessage()`.
//
// Tensor data crosses as raw pointers to buffers laid out as a layout id describes. A layout id is
// an index into the bridge's table of oneDNN memory descriptors (f32 throughout).
#pragma once
#include <cstddef>
#include <cstdint>

namespace onednn_bridge {

enum class Status : int32_t { ok = 0, invalidArgument = 1, unimplemented = 2, outOfMemory = 3, failed = 4 };

/// The message of the last failed call on this thread.
const char *lastErrorMessage() noexcept;

// MARK: - Engine (Engine.cpp)

/// Creates the CPU engine and stream on first use.
Status engineInitialize() noexcept;
int32_t versionMajor() noexcept;
int32_t versionMinor() noexcept;
int32_t versionPatch() noexcept;
/// The instruction set oneDNN dispatches to, such as `avx512_core_bf16`.
const char *effectiveIsaName() noexcept;
/// OpenMP's thread count, or 0 when no OpenMP runtime is loaded.
int32_t threadCount() noexcept;
/// Sets OpenMP's thread count for the whole process. Fails when no OpenMP runtime is loaded.
Status setThreadCount(int32_t count) noexcept;

// MARK: - Layouts (Layouts.cpp)

/// Returns the id of the dense row-major f32 layout of `dims`, or -1 on failure.
int32_t layoutPlain(const int64_t *dims, int32_t rank, Status *status) noexcept;
/// Returns the size in bytes of a buffer in `layout`, padding included; 0 for an unknown id.
int64_t layoutByteCount(int32_t layout) noexcept;
/// Returns whether `layout` is dense row-major, so that its bytes are in canonical order.
bool layoutIsPlain(int32_t layout) noexcept;
/// Copies `source` in `sourceLayout` into `destination` in `destinationLayout`. Both layouts
/// must describe the same dims; blocked destinations get zeros in their padding.
Status reorder(int32_t sourceLayout, const void *source, int32_t destinationLayout, void *destination) noexcept;

// MARK: - Plans

/// A set of oneDNN primitives for one operation at one shape, built once and run many times.
struct Plan;

/// The passes of a plan. Pooling, normalization, ReLU and inner product use `backward` for the
/// input gradient; convolution and inner product use `backwardWeights` for the kernel gradient.
enum class Pass : int32_t { forward = 0, backward = 1, backwardWeights = 2 };

/// The tensors a pass reads or writes, in oneDNN's names.
enum class Role : int32_t {
    src = 0, src1, weights, bias, dst,
    diffSrc, diffWeights, diffBias, diffDst,
    mean, variance, scale, shift, diffScale, diffShift,
    workspace,
};

struct Argument {
    Role role;
    void *data;
};

/// Returns the layout id a pass expects for `role`, building the pass on first use; -1 and a
/// failed status when the pass does not use the role or cannot be built.
int32_t planLayout(Plan *plan, Pass pass, Role role, Status *status) noexcept;
/// Runs a pass on buffers already in the layouts `planLayout` gives; waits for completion.
Status planExecute(Plan *plan, Pass pass, const Argument *arguments, int32_t count) noexcept;
void planDestroy(Plan *plan) noexcept;

// MARK: - Plan families

/// Convolution sizes, as in Swift's ConvolutionGeometry plus the batch.
struct ConvolutionShape {
    int64_t batch, inputChannels, outputChannels;
    int64_t inputHeight, inputWidth, kernelHeight, kernelWidth;
    int64_t strideHeight, strideWidth, padTop, padBottom, padLeft, padRight;
    int64_t outputHeight, outputWidth;
};

/// Pooling sizes; global average pooling uses the input sizes only.
struct PoolShape {
    int64_t batch, channels, inputHeight, inputWidth, windowHeight, windowWidth;
    int64_t strideHeight, strideWidth, padTop, padBottom, padLeft, padRight;
    int64_t outputHeight, outputWidth;
};

/// Convolution.cpp. src, weights and dst layouts are the primitive's choice. `winograd` lets
/// oneDNN pick Winograd where it has an implementation (convolution_auto, AVX-512), and runs
/// 3x3 convolutions at stride 1 with the bridge's own Winograd kernels on AVX2.
Plan *convolutionCreate(ConvolutionShape shape, bool hasBias, bool winograd, Status *status) noexcept;
/// Whether a convolution plan of `shape` with Winograd allowed runs the bridge's own kernels.
bool convolutionUsesBridgeWinograd(ConvolutionShape shape) noexcept;

/// BatchNorm.cpp. Normalizes each channel (axis 1) of a tensor in `dataLayout`. `training`
/// plans use batch statistics and have a backward pass; the others use given statistics.
Plan *batchNormCreate(int32_t dataLayout, float epsilon, bool training, Status *status) noexcept;

/// Eltwise.cpp. ReLU whose backward reads the forward output.
Plan *reluCreate(int32_t dataLayout, Status *status) noexcept;

/// Pooling.cpp. Max pooling keeps a workspace for its backward pass when `training`.
Plan *maxPoolCreate(PoolShape shape, int32_t srcLayout, bool training, Status *status) noexcept;
/// Pooling.cpp. Mean over the whole spatial extent; dst is plain [N, C].
Plan *globalAveragePoolCreate(
    int64_t batch, int64_t channels, int64_t height, int64_t width, int32_t srcLayout, Status *status) noexcept;

/// InnerProduct.cpp. Plain layouts: src [N, I], weights [O, I], bias [O], dst [N, O].
Plan *innerProductCreate(int64_t batch, int64_t inputs, int64_t outputs, bool hasBias, Status *status) noexcept;

/// Binary.cpp. dst = src + src1, all three in `dataLayout`.
Plan *addCreate(int32_t dataLayout, Status *status) noexcept;

}
