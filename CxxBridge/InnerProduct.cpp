// Inner product (dense layer): dst = src * weights^T + bias.
//
// Dimensions: N batch, I inputs, O outputs. src N x I, weights O x I, bias O, dst N x O, all
// plain row-major, so values cross to Swift without reorders.
#include "Common.hpp"

namespace onednn_bridge {

using dnnl::prop_kind;

namespace {

struct InnerProductPlan final : Plan {
    memory::desc src, weights, bias, dst;
    bool hasBias;
    dnnl::inner_product_forward::primitive_desc forwardDescriptor;

    InnerProductPlan(int64_t batch, int64_t inputs, int64_t outputs, bool hasBias)
        : Plan("inner product " + dimsText({batch, inputs}) + " -> " + dimsText({batch, outputs})),
          src(plainDescriptor({batch, inputs})), weights(plainDescriptor({outputs, inputs})),
          bias(plainDescriptor({outputs})), dst(plainDescriptor({batch, outputs})), hasBias(hasBias) {}

    void build(Pass pass, PassTable &table) override {
        switch (pass) {
        case Pass::forward: {
            auto desc = hasBias ? dnnl::inner_product_forward::desc(prop_kind::forward_training, src, weights, bias, dst)
                                : dnnl::inner_product_forward::desc(prop_kind::forward_training, src, weights, dst);
            forwardDescriptor = dnnl::inner_product_forward::primitive_desc(desc, cpuEngine());
            table.primitive = dnnl::inner_product_forward(forwardDescriptor);
            table.add(Role::src, DNNL_ARG_SRC, src);
            table.add(Role::weights, DNNL_ARG_WEIGHTS, weights);
            if (hasBias) table.add(Role::bias, DNNL_ARG_BIAS, bias);
            table.add(Role::dst, DNNL_ARG_DST, dst);
            return;
        }
        case Pass::backward: {
            dnnl::inner_product_backward_data::desc desc(src, weights, dst);
            dnnl::inner_product_backward_data::primitive_desc primitiveDesc(desc, cpuEngine(), forwardDescriptor);
            table.primitive = dnnl::inner_product_backward_data(primitiveDesc);
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, dst);
            table.add(Role::weights, DNNL_ARG_WEIGHTS, weights);
            table.add(Role::diffSrc, DNNL_ARG_DIFF_SRC, src);
            return;
        }
        case Pass::backwardWeights: {
            auto desc = hasBias ? dnnl::inner_product_backward_weights::desc(src, weights, bias, dst)
                                : dnnl::inner_product_backward_weights::desc(src, weights, dst);
            dnnl::inner_product_backward_weights::primitive_desc primitiveDesc(desc, cpuEngine(), forwardDescriptor);
            table.primitive = dnnl::inner_product_backward_weights(primitiveDesc);
            table.add(Role::src, DNNL_ARG_SRC, src);
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, dst);
            table.add(Role::diffWeights, DNNL_ARG_DIFF_WEIGHTS, weights);
            if (hasBias) table.add(Role::diffBias, DNNL_ARG_DIFF_BIAS, bias);
            return;
        }
        }
        rejectPass(pass);
    }
};

}

Plan *innerProductCreate(int64_t batch, int64_t inputs, int64_t outputs, bool hasBias, Status *status) noexcept {
    return createPlan("inner product", status, [&] {
        if (batch < 1 || inputs < 1 || outputs < 1) {
            throw std::invalid_argument("inner product: sizes must be positive, got N=" + std::to_string(batch) +
                                        " I=" + std::to_string(inputs) + " O=" + std::to_string(outputs));
        }
        return new InnerProductPlan(batch, inputs, outputs, hasBias);
    });
}

}
