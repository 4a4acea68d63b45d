// Max pooling and global average pooling, forward and backward.
//
// Dimensions: N batch, C channels, H x W input, OH x OW output. src keeps the caller's
// layout and dst follows it. Max pooling never picks a padded position; the training plan
// keeps a workspace (the position of each maximum) for the backward pass.
#include "Common.hpp"

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
    return createPlan("global average pooling", status, [&] {
        std::string description = "global average pooling " + dimsText({batch, channels, height, width});
        memory::desc src = requireLayout(srcLayout, description);
        checkDims(src, {batch, channels, height, width}, description);
        // dst N x C x 1 x 1 in plain order has the same bytes as plain N x C.
        memory::desc dst = plainDescriptor({batch, channels, 1, 1});
        return new PoolPlan(description, algorithm::pooling_avg_exclude_padding, true, src, dst, {1, 1},
                            {height, width}, {0, 0}, {0, 0});
    });
}

}
