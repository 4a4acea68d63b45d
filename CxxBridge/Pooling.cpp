// Max pooling and global average pooling, forward and backward.
//
// Dimensions: N batch, C channels, H x W input, OH x OW output. src keeps the caller's
// layout and dst follows it. Max pooling never picks a padded position; the training plan
// keeps a workspace (the position of each maximum) for the backward pass.
#include "Common.hpp"

#include <algorithm>
#include <optional>
#include <vector>

namespace onednn_bridge {

using dnnl::algorithm;
using dnnl::prop_kind;
using tag = memory::format_tag;

namespace {

struct PoolPlan final : Plan {
    algorithm kind;
    bool training;
    memory::desc src, dst;
    memory::dims strides, window, padBefore, padAfter;
    dnnl::pooling_forward::primitive_desc forwardDescriptor;

    PoolPlan(std::string description, algorithm kind, bool training, memory::desc src, memory::desc dst,
             memory::dims strides, memory::dims window, memory::dims padBefore, memory::dims padAfter)
        : Plan(std::move(description)), kind(kind), training(training), src(src), dst(dst), strides(strides),
          window(window), padBefore(padBefore), padAfter(padAfter) {}

    void build(Pass pass, PassTable &table) override {
        bool keepsWorkspace = training && kind == algorithm::pooling_max;
        switch (pass) {
        case Pass::forward: {
            auto propagation = training ? prop_kind::forward_training : prop_kind::forward_inference;
            dnnl::pooling_forward::desc desc(propagation, kind, src, dst, strides, window, padBefore, padAfter);
            forwardDescriptor = dnnl::pooling_forward::primitive_desc(desc, cpuEngine());
            table.primitive = dnnl::pooling_forward(forwardDescriptor);
            table.add(Role::src, DNNL_ARG_SRC, forwardDescriptor.src_desc());
            table.add(Role::dst, DNNL_ARG_DST, forwardDescriptor.dst_desc());
            if (keepsWorkspace) table.add(Role::workspace, DNNL_ARG_WORKSPACE, forwardDescriptor.workspace_desc());
            return;
        }
        case Pass::backward: {
            if (!training) break;
            dnnl::pooling_backward::desc desc(kind, forwardDescriptor.src_desc(), forwardDescriptor.dst_desc(),
                                              strides, window, padBefore, padAfter);
            dnnl::pooling_backward::primitive_desc primitiveDesc(desc, cpuEngine(), forwardDescriptor);
            table.primitive = dnnl::pooling_backward(primitiveDesc);
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, primitiveDesc.diff_dst_desc());
            table.add(Role::diffSrc, DNNL_ARG_DIFF_SRC, primitiveDesc.diff_src_desc());
            if (keepsWorkspace) table.add(Role::workspace, DNNL_ARG_WORKSPACE, primitiveDesc.workspace_desc());
            return;
        }
        case Pass::backwardWeights:
            break;
        }
        rejectPass(pass);
    }
};

std::string describePool(const char *name, const PoolShape &s) {
    return std::string(name) + " " + dimsText({s.batch, s.channels, s.inputHeight, s.inputWidth}) + " -> " +
           dimsText({s.batch, s.channels, s.outputHeight, s.outputWidth}) + ", window " +
           dimsText({s.windowHeight, s.windowWidth}) + ", stride " + dimsText({s.strideHeight, s.strideWidth}) +
           ", pads top,bottom,left,right " + std::to_string(s.padTop) + "," + std::to_string(s.padBottom) + "," +
           std::to_string(s.padLeft) + "," + std::to_string(s.padRight);
}

void checkDims(const memory::desc &desc, const memory::dims &expected, const std::string &operation) {
    if (desc.dims() != expected) {
        throw std::invalid_argument(operation + ": layout dims " + dimsText(desc.dims()) + " differ from " +
                                    dimsText(expected));
    }
}

/// The position of element (n, c, h, w) in a plain layout or one that blocks only the channels
/// (aBcd8b, aBcd16b, nhwc). The offset is n * N + (c / B) * C + h * H + w * W + c % B.
struct ChannelBlocking {
    memory::dim block, batchStride, channelStride, rowStride, columnStride;

    static std::optional<ChannelBlocking> of(const memory::desc &desc) {
        const dnnl_memory_desc_t &raw = desc.data;
        if (raw.format_kind != dnnl_blocked || raw.ndims != 4 || raw.offset0 != 0) return std::nullopt;
        const dnnl_blocking_desc_t &blocking = raw.format_desc.blocking;
        memory::dim block = 1;
        if (blocking.inner_nblks == 1 && blocking.inner_idxs[0] == 1) {
            block = blocking.inner_blks[0];
        } else if (blocking.inner_nblks != 0) {
            return std::nullopt;
        }
        return ChannelBlocking{block, blocking.strides[0], blocking.strides[1], blocking.strides[2],
                               blocking.strides[3]};
    }
};

/// Global average pooling by direct loops. oneDNN 2.6 runs a pooling window as large as the
/// whole image with its reference implementation, which took about a seventh of a training
/// step of the tutorial's model at 224x224. These loops read and write each element once.
struct GlobalAveragePlan final : Plan {
    memory::desc src, dst;
    ChannelBlocking layout;
    memory::dim batch, channels, height, width;

    GlobalAveragePlan(std::string description, memory::desc src, memory::desc dst)
        : Plan(std::move(description)), src(src), dst(dst), layout(*ChannelBlocking::of(src)) {
        memory::dims dims = src.dims();
        batch = dims[0];
        channels = dims[1];
        height = dims[2];
        width = dims[3];
    }

    void build(Pass pass, PassTable &table) override {
        switch (pass) {
        case Pass::forward:
            table.add(Role::src, DNNL_ARG_SRC, src);
            table.add(Role::dst, DNNL_ARG_DST, dst);
            table.run = [this](std::unordered_map<int, memory> &memories) {
                forward(static_cast<const float *>(memories[DNNL_ARG_SRC].get_data_handle()),
                        static_cast<float *>(memories[DNNL_ARG_DST].get_data_handle()));
            };
            return;
        case Pass::backward:
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, dst);
            table.add(Role::diffSrc, DNNL_ARG_DIFF_SRC, src);
            table.run = [this](std::unordered_map<int, memory> &memories) {
                backward(static_cast<const float *>(memories[DNNL_ARG_DIFF_DST].get_data_handle()),
                         static_cast<float *>(memories[DNNL_ARG_DIFF_SRC].get_data_handle()));
            };
            return;
        case Pass::backwardWeights:
            break;
        }
        rejectPass(pass);
    }

    /// x: N x C x H x W in `layout`; y: N x C plain.
    void forward(const float *x, float *y) const {
        std::vector<double> sums(static_cast<size_t>(layout.block));
        double scale = 1.0 / static_cast<double>(height * width);
        for (memory::dim n = 0; n < batch; ++n) {
            for (memory::dim first = 0; first < channels; first += layout.block) {
                std::fill(sums.begin(), sums.end(), 0.0);
                const float *base = x + n * layout.batchStride + (first / layout.block) * layout.channelStride;
                for (memory::dim h = 0; h < height; ++h) {
                    for (memory::dim w = 0; w < width; ++w) {
                        const float *cell = base + h * layout.rowStride + w * layout.columnStride;
                        for (memory::dim b = 0; b < layout.block; ++b) sums[b] += cell[b];
                    }
                }
                for (memory::dim b = 0; b < layout.block && first + b < channels; ++b) {
                    y[n * channels + first + b] = static_cast<float>(sums[b] * scale);
                }
            }
        }
    }

    /// dy: N x C plain; dx: N x C x H x W in `layout`. Channels past C in the last block are
    /// set to zero, because oneDNN expects padding to hold zeros.
    void backward(const float *dy, float *dx) const {
        std::vector<float> values(static_cast<size_t>(layout.block));
        float scale = 1.0f / static_cast<float>(height * width);
        for (memory::dim n = 0; n < batch; ++n) {
            for (memory::dim first = 0; first < channels; first += layout.block) {
                for (memory::dim b = 0; b < layout.block; ++b) {
                    values[b] = first + b < channels ? dy[n * channels + first + b] * scale : 0.0f;
                }
                float *base = dx + n * layout.batchStride + (first / layout.block) * layout.channelStride;
                for (memory::dim h = 0; h < height; ++h) {
                    for (memory::dim w = 0; w < width; ++w) {
                        float *cell = base + h * layout.rowStride + w * layout.columnStride;
                        for (memory::dim b = 0; b < layout.block; ++b) cell[b] = values[b];
                    }
                }
            }
        }
    }
};

}

Plan *maxPoolCreate(PoolShape s, int32_t srcLayout, bool training, Status *status) noexcept {
    return createPlan("max pooling", status, [&] {
        std::string description = describePool("max pooling", s);
        memory::desc src = requireLayout(srcLayout, description);
        checkDims(src, {s.batch, s.channels, s.inputHeight, s.inputWidth}, description);
        memory::desc dst({s.batch, s.channels, s.outputHeight, s.outputWidth}, memory::data_type::f32, tag::any);
        return new PoolPlan(description, algorithm::pooling_max, training, src, dst, {s.strideHeight, s.strideWidth},
                            {s.windowHeight, s.windowWidth}, {s.padTop, s.padLeft}, {s.padBottom, s.padRight});
    });
}

Plan *globalAveragePoolCreate(
    int64_t batch, int64_t channels, int64_t height, int64_t width, int32_t srcLayout, Status *status) noexcept {
    return createPlan("global average pooling", status, [&]() -> Plan * {
        std::string description = "global average pooling " + dimsText({batch, channels, height, width});
        memory::desc src = requireLayout(srcLayout, description);
        checkDims(src, {batch, channels, height, width}, description);
        // dst N x C x 1 x 1 in plain order has the same bytes as plain N x C.
        memory::desc dst = plainDescriptor({batch, channels, 1, 1});
        if (ChannelBlocking::of(src)) {
            return new GlobalAveragePlan(description, src, dst);
        }
        return new PoolPlan(description, algorithm::pooling_avg_exclude_padding, true, src, dst, {1, 1},
                            {height, width}, {0, 0}, {0, 0});
    });
}

}
