// Batch normalization over N, H and W, per channel.
//
// Dimensions: N batch, C channels, H x W spatial. src, dst and their gradients are
// N x C x H x W (or N x C) in the layout the caller's activations already have. Mean,
// variance, scale, shift and their gradients are plain C.
#include "Common.hpp"

#include <algorithm>

namespace onednn_bridge {

using dnnl::normalization_flags;
using dnnl::prop_kind;

namespace {

struct BatchNormPlan final : Plan {
    memory::desc data;
    memory::desc perChannel;
    float epsilon;
    bool training;
    dnnl::batch_normalization_forward::primitive_desc forwardDescriptor;

    BatchNormPlan(const memory::desc &data, int64_t channels, float epsilon, bool training)
        : Plan(std::string("batch normalization ") + (training ? "training " : "inference ") +
               dimsText(data.dims()) + ", epsilon " + std::to_string(epsilon)),
          data(data), perChannel(plainDescriptor({channels})), epsilon(epsilon), training(training) {}

    void build(Pass pass, PassTable &table) override {
        auto affine = normalization_flags::use_scale | normalization_flags::use_shift;
        switch (pass) {
        case Pass::forward: {
            auto flags = training ? affine : affine | normalization_flags::use_global_stats;
            auto kind = training ? prop_kind::forward_training : prop_kind::forward_inference;
            dnnl::batch_normalization_forward::desc desc(kind, data, epsilon, flags);
            forwardDescriptor = dnnl::batch_normalization_forward::primitive_desc(desc, cpuEngine());
            table.primitive = dnnl::batch_normalization_forward(forwardDescriptor);
            table.add(Role::src, DNNL_ARG_SRC, forwardDescriptor.src_desc());
            table.add(Role::dst, DNNL_ARG_DST, forwardDescriptor.dst_desc());
            table.add(Role::scale, DNNL_ARG_SCALE, perChannel);
            table.add(Role::shift, DNNL_ARG_SHIFT, perChannel);
            table.add(Role::mean, DNNL_ARG_MEAN, perChannel);
            table.add(Role::variance, DNNL_ARG_VARIANCE, perChannel);
            return;
        }
        case Pass::backward: {
            if (!training) break;
            dnnl::batch_normalization_backward::desc desc(prop_kind::backward, data, data, epsilon, affine);
            dnnl::batch_normalization_backward::primitive_desc primitiveDesc(desc, cpuEngine(), forwardDescriptor);
            table.primitive = dnnl::batch_normalization_backward(primitiveDesc);
            table.add(Role::src, DNNL_ARG_SRC, primitiveDesc.src_desc());
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, primitiveDesc.diff_dst_desc());
            table.add(Role::scale, DNNL_ARG_SCALE, perChannel);
            table.add(Role::mean, DNNL_ARG_MEAN, perChannel);
            table.add(Role::variance, DNNL_ARG_VARIANCE, perChannel);
            table.add(Role::diffSrc, DNNL_ARG_DIFF_SRC, primitiveDesc.diff_src_desc());
            table.add(Role::diffScale, DNNL_ARG_DIFF_SCALE, perChannel);
            table.add(Role::diffShift, DNNL_ARG_DIFF_SHIFT, perChannel);

            // The gradients do not depend on the shift, but oneDNN 2.6.3 rejects the execution
            // without a shift argument, so the plan passes zeros it allocates itself.
            memory zeros(perChannel, cpuEngine());
            std::fill_n(static_cast<float *>(zeros.get_data_handle()), perChannel.dims()[0], 0.0f);
            table.ownArguments[DNNL_ARG_SHIFT] = zeros;
            return;
        }
        case Pass::backwardWeights:
            break;
        }
        rejectPass(pass);
    }
};

}

Plan *batchNormCreate(int32_t dataLayout, float epsilon, bool training, Status *status) noexcept {
    return createPlan("batch normalization", status, [&] {
        memory::desc data = requireLayout(dataLayout, "batch normalization");
        if (data.dims().size() < 2) {
            throw std::invalid_argument("batch normalization: x needs a channel axis (rank 2 or more), got dims " + dimsText(data.dims()));
        }
        return new BatchNormPlan(data, data.dims()[1], epsilon, training);
    });
}

}
