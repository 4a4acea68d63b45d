// 2-D convolution: forward, backward data and backward weights (with bias).
//
// Dimensions: N batch, C input channels, K output channels, H x W input, R x S kernel,
// OH x OW output. src is N x C x H x W, weights K x C x R x S, bias K, dst N x K x OH x OW.
// Pads are given per side because TensorFlow's 'same' pads more at the bottom and right.
//
// With Winograd allowed, oneDNN picks its own Winograd kernels where it has them (AVX-512).
// On AVX2, where it has none, 3x3 convolutions at stride 1 run the bridge's (Winograd.cpp).
#include "Common.hpp"
#include "Winograd.hpp"

namespace onednn_bridge {

using dnnl::algorithm;
using dnnl::prop_kind;
using tag = memory::format_tag;

namespace {

struct ConvolutionPlan final : Plan {
    ConvolutionShape shape;
    bool hasBias;
    algorithm kind;
    bool ownWinograd;
    dnnl::convolution_forward::primitive_desc forwardDescriptor;
    winograd::Workspace workspace;

    ConvolutionPlan(const ConvolutionShape &shape, bool hasBias, bool winograd)
        : Plan(describe(shape)), shape(shape), hasBias(hasBias),
          kind(winograd ? algorithm::convolution_auto : algorithm::convolution_direct),
          ownWinograd(winograd && usesOwnWinograd(shape)) {
        if (ownWinograd) description += ", Winograd F(4x4, 3x3) on AVX2";
    }

    static bool usesOwnWinograd(const ConvolutionShape &s) {
        dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
        return (isa == dnnl_cpu_isa_avx2 || isa == dnnl_cpu_isa_avx2_vnni) && winograd::applies(s);
    }

    static std::string describe(const ConvolutionShape &s) {
        return "convolution " + dimsText({s.batch, s.inputChannels, s.inputHeight, s.inputWidth}) + " -> " +
               dimsText({s.batch, s.outputChannels, s.outputHeight, s.outputWidth}) + ", kernel " +
               dimsText({s.kernelHeight, s.kernelWidth}) + ", stride " + dimsText({s.strideHeight, s.strideWidth}) +
               ", pads top,bottom,left,right " + std::to_string(s.padTop) + "," + std::to_string(s.padBottom) + "," +
               std::to_string(s.padLeft) + "," + std::to_string(s.padRight);
    }

    void build(Pass pass, PassTable &table) override {
        if (ownWinograd) {
            buildWinograd(pass, table);
            return;
        }
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

    void buildWinograd(Pass pass, PassTable &table) {
        const ConvolutionShape &s = shape;
        memory::desc src({s.batch, s.inputChannels, s.inputHeight, s.inputWidth}, memory::data_type::f32, tag::nChw8c);
        memory::desc dst({s.batch, s.outputChannels, s.outputHeight, s.outputWidth}, memory::data_type::f32,
                         tag::nChw8c);
        memory::desc weights = plainDescriptor({s.outputChannels, s.inputChannels, 3, 3});
        memory::desc bias = plainDescriptor({s.outputChannels});
        winograd::Shape sizes{s.batch, s.inputChannels, s.outputChannels, s.inputHeight, s.inputWidth};
        auto data = [](std::unordered_map<int, memory> &memories, int argument) {
            return static_cast<float *>(memories.at(argument).get_data_handle());
        };

        switch (pass) {
        case Pass::forward:
            table.add(Role::src, DNNL_ARG_SRC, src);
            table.add(Role::weights, DNNL_ARG_WEIGHTS, weights);
            if (hasBias) table.add(Role::bias, DNNL_ARG_BIAS, bias);
            table.add(Role::dst, DNNL_ARG_DST, dst);
            table.run = [this, sizes, data](std::unordered_map<int, memory> &memories) {
                winograd::forward(sizes, data(memories, DNNL_ARG_SRC), data(memories, DNNL_ARG_WEIGHTS),
                                  hasBias ? data(memories, DNNL_ARG_BIAS) : nullptr, data(memories, DNNL_ARG_DST),
                                  workspace);
            };
            return;
        case Pass::backward:
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, dst);
            table.add(Role::weights, DNNL_ARG_WEIGHTS, weights);
            table.add(Role::diffSrc, DNNL_ARG_DIFF_SRC, src);
            table.run = [this, sizes, data](std::unordered_map<int, memory> &memories) {
                winograd::backwardData(sizes, data(memories, DNNL_ARG_DIFF_DST), data(memories, DNNL_ARG_WEIGHTS),
                                       data(memories, DNNL_ARG_DIFF_SRC), workspace);
            };
            return;
        case Pass::backwardWeights:
            if (!winograd::appliesToWeightsGradient(s)) {
                buildDirectWeightsGradient(src, dst, weights, bias, table);
                return;
            }
            table.add(Role::src, DNNL_ARG_SRC, src);
            table.add(Role::diffDst, DNNL_ARG_DIFF_DST, dst);
            table.add(Role::diffWeights, DNNL_ARG_DIFF_WEIGHTS, weights);
            if (hasBias) table.add(Role::diffBias, DNNL_ARG_DIFF_BIAS, bias);
            table.run = [this, sizes, data](std::unordered_map<int, memory> &memories) {
                winograd::backwardWeights(sizes, data(memories, DNNL_ARG_SRC), data(memories, DNNL_ARG_DIFF_DST),
                                          data(memories, DNNL_ARG_DIFF_WEIGHTS),
                                          hasBias ? data(memories, DNNL_ARG_DIFF_BIAS) : nullptr, workspace);
            };
            return;
        }
        rejectPass(pass);
    }

    /// Builds the kernel-gradient pass of a Winograd plan on oneDNN's direct kernel. oneDNN
    /// writes the gradient in its own blocked layout, and the pass reorders it into the plain one.
    void buildDirectWeightsGradient(const memory::desc &src, const memory::desc &dst, const memory::desc &weights,
                                    const memory::desc &bias, PassTable &table) {
        memory::dims strides{1, 1}, pads{1, 1};
        memory::desc anyWeights(weights.dims(), memory::data_type::f32, tag::any);
        dnnl::convolution_forward::primitive_desc hint(
            dnnl::convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, src,
                                            anyWeights, dst, strides, pads, pads),
            cpuEngine());
        auto desc = hasBias ? dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, src, anyWeights,
                                                                       bias, dst, strides, pads, pads)
                            : dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, src, anyWeights,
                                                                       dst, strides, pads, pads);
        dnnl::convolution_backward_weights::primitive_desc primitiveDesc(desc, cpuEngine(), hint);
        dnnl::convolution_backward_weights primitive(primitiveDesc);
        memory blocked(primitiveDesc.diff_weights_desc(), cpuEngine());
        dnnl::reorder toPlain(blocked, memory(weights, cpuEngine(), DNNL_MEMORY_NONE));

        table.add(Role::src, DNNL_ARG_SRC, src);
        table.add(Role::diffDst, DNNL_ARG_DIFF_DST, dst);
        table.add(Role::diffWeights, DNNL_ARG_DIFF_WEIGHTS, weights);
        if (hasBias) table.add(Role::diffBias, DNNL_ARG_DIFF_BIAS, bias);
        table.run = [primitive, toPlain, blocked](std::unordered_map<int, memory> &memories) mutable {
            memory plain = memories.at(DNNL_ARG_DIFF_WEIGHTS);
            memories[DNNL_ARG_DIFF_WEIGHTS] = blocked;
            primitive.execute(cpuStream(), memories);
            toPlain.execute(cpuStream(), blocked, plain);
            cpuStream().wait();
        };
    }
};

}

Plan *convolutionCreate(ConvolutionShape shape, bool hasBias, bool winograd, Status *status) noexcept {
    return createPlan("convolution", status, [&] { return new ConvolutionPlan(shape, hasBias, winograd); });
}

bool convolutionUsesBridgeWinograd(ConvolutionShape shape) noexcept {
    return ConvolutionPlan::usesOwnWinograd(shape);
}

}
