// ReLU, forward and backward. The backward pass reads the forward output (dst), so the input
// need not be kept: dx = dy where dst > 0, else 0. All tensors share the caller's layout.
#include "Common.hpp"

namespace onednn_bridge {

using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

struct ReluPlan final : Plan {
    memory::desc data;
    dnnl::eltwise_forward::primitive_desc forwardDescriptor;

    explicit ReluPlan(const memory::desc &data) : Plan("relu " + dimsText(data.dims())), data(data) {}

    void build(Pass pass, PassTable &table) override {
        switch (pass) {
        case Pass::forward: {
            dnnl::eltwise_forward::desc desc(
                prop_kind::forward_training, algorithm::eltwise_relu_use_dst_for_bwd, data, 0.0f, 0.0f);
            forwardDescriptor = dnnl::eltwise_forward::primitive_desc(desc, cpuEngine());
            table.primitive = dnnl::eltwise_forward(forwardDescriptor);
            table.add(Role::src, DNNL_ARG_SRC, forwardDescriptor.src_desc());
            table.add(Role::dst, DNNL_ARG_DST, forwardDescriptor.dst_desc());
            return;
        }
        case Pass::backward: {
            dnnl::eltwise_backward::desc desc(algorithm::eltwise_relu_use_dst_for_bwd, data, data, 0.0f, 0.0f);
            dnnl::eltwise_backward::primitive_desc primitiveDesc(desc, cpuEngine(), forwardDescriptor);
            table.primitive = dnnl::eltwise_backward(primitiveDesc);
            table.add(Role::dst, DNNL_ARG_DST, primitiveDesc.dst_desc());
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, primitiveDesc.diff_dst_desc());
            table.add(Role::diffSrc, DNNL_ARG_DIFF_SRC, primitiveDesc.diff_src_desc());
            return;
        }
        case Pass::backwardWeights:
            break;
        }
        rejectPass(pass);
    }
};

}

Plan *reluCreate(int32_t dataLayout, Status *status) noexcept {
    return createPlan("relu", status, [&] { return new ReluPlan(requireLayout(dataLayout, "relu")); });
}

}
