// 2-D convolution: forward, backward data and backward weights (with bias).
//
// Dimensions: N batch, C input channels, K output channels, H x W input, R x S kernel,
// OH x OW output. src is N x C x H x W, weights K x C x R x S, bias K, dst N x K x OH x OW.
// Pads are given per side because TensorFlow's 'same' pads more at the bottom and right.
#include "Common.hpp"

namespace onednn_bridge {

using dnnl::algorithm;
using dnnl::prop_kind;
using tag = memory::format_tag;

namespace {

struct ConvolutionPlan final : Plan {
    ConvolutionShape shape;
    bool hasBias;
    algorithm kind;
    dnnl::convolution_forward::primitive_desc forwardDescriptor;

    ConvolutionPlan(const ConvolutionShape &shape, bool hasBias, bool winograd)
        : Plan(describe(shape)), shape(shape), hasBias(hasBias),
          kind(winograd ? algorithm::convolution_auto : algorithm::convolution_direct) {}

    static std::string describe(const ConvolutionShape &s) {
        return "convolution " + dimsText({s.batch, s.inputChannels, s.inputHeight, s.inputWidth}) + " -> " +
               dimsText({s.batch, s.outputChannels, s.outputHeight, s.outputWidth}) + ", kernel " +
               dimsText({s.kernelHeight, s.kernelWidth}) + ", stride " + dimsText({s.strideHeight, s.strideWidth}) +
               ", pads top,bottom,left,right " + std::to_string(s.padTop) + "," + std::to_string(s.padBottom) + "," +
               std::to_string(s.padLeft) + "," + std::to_string(s.padRight);
    }

    void build(Pass pass, PassTable &table) override {
        const ConvolutionShape &s = shape;
        memory::desc src({s.batch, s.inputChannels, s.inputHeight, s.inputWidth}, memory::data_type::f32, tag::any);
        memory::desc weights(
            {s.outputChannels, s.inputChannels, s.kernelHeight, s.kernelWidth}, memory::data_type::f32, tag::any);
        memory::desc dst({s.batch, s.outputChannels, s.outputHeight, s.outputWidth}, memory::data_type::f32, tag::any);
        memory::desc bias = plainDescriptor({s.outputChannels});
        memory::dims strides{s.strideHeight, s.strideWidth};
        memory::dims padBefore{s.padTop, s.padLeft};
        memory::dims padAfter{s.padBottom, s.padRight};

        switch (pass) {
        case Pass::forward: {
            auto desc = hasBias ? dnnl::convolution_forward::desc(prop_kind::forward_training, kind, src, weights, bias,
                                                                  dst, strides, padBefore, padAfter)
                                : dnnl::convolution_forward::desc(prop_kind::forward_training, kind, src, weights,
                                                                  dst, strides, padBefore, padAfter);
            forwardDescriptor = dnnl::convolution_forward::primitive_desc(desc, cpuEngine());
            table.primitive = dnnl::convolution_forward(forwardDescriptor);
            table.add(Role::src, DNNL_ARG_SRC, forwardDescriptor.src_desc());
            table.add(Role::weights, DNNL_ARG_WEIGHTS, forwardDescriptor.weights_desc());
            if (hasBias) table.add(Role::bias, DNNL_ARG_BIAS, forwardDescriptor.bias_desc());
            table.add(Role::dst, DNNL_ARG_DST, forwardDescriptor.dst_desc());
            return;
        }
        case Pass::backward: {
            dnnl::convolution_backward_data::desc desc(kind, src, weights, dst, strides, padBefore, padAfter);
            dnnl::convolution_backward_data::primitive_desc primitiveDesc(desc, cpuEngine(), forwardDescriptor);
            table.primitive = dnnl::convolution_backward_data(primitiveDesc);
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, primitiveDesc.diff_dst_desc());
            table.add(Role::weights, DNNL_ARG_WEIGHTS, primitiveDesc.weights_desc());
            table.add(Role::diffSrc, DNNL_ARG_DIFF_SRC, primitiveDesc.diff_src_desc());
            return;
        }
        case Pass::backwardWeights: {
            auto desc = hasBias ? dnnl::convolution_backward_weights::desc(kind, src, weights, bias, dst, strides,
                                                                           padBefore, padAfter)
                                : dnnl::convolution_backward_weights::desc(kind, src, weights, dst, strides,
                                                                           padBefore, padAfter);
            dnnl::convolution_backward_weights::primitive_desc primitiveDesc(desc, cpuEngine(), forwardDescriptor);
            table.primitive = dnnl::convolution_backward_weights(primitiveDesc);
            table.add(Role::src, DNNL_ARG_SRC, primitiveDesc.src_desc());
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, primitiveDesc.diff_dst_desc());
            table.add(Role::diffWeights, DNNL_ARG_DIFF_WEIGHTS, primitiveDesc.diff_weights_desc());
            if (hasBias) table.add(Role::diffBias, DNNL_ARG_DIFF_BIAS, primitiveDesc.diff_bias_desc());
            return;
        }
        }
        rejectPass(pass);
    }
};

}

Plan *convolutionCreate(ConvolutionShape shape, bool hasBias, bool winograd, Status *status) noexcept {
    return createPlan("convolution", status, [&] { return new ConvolutionPlan(shape, hasBias, winograd); });
}

}
