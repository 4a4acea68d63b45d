// Times the bridge's Winograd F(4x4, 3x3) kernels against oneDNN's direct convolution on the
// same shapes and data, pass by pass, and reports the largest difference between the two.
//
// Usage: compare N C K H [repeats], for N images of C channels at H x H into K channels.
// Built and run by run.sh; the thread count comes from OMP_NUM_THREADS.
#include "Winograd.hpp"
#include "oneapi/dnnl/dnnl.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

namespace winograd = onednn_bridge::winograd;
using dnnl::memory;
using tag = memory::format_tag;

namespace {

double seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Returns the fastest of `repeats` runs, in milliseconds.
double fastest(int repeats, const std::function<void()> &run) {
    double best = 1e30;
    for (int i = 0; i < repeats; ++i) {
        double start = seconds();
        run();
        best = std::min(best, seconds() - start);
    }
    return best * 1e3;
}

/// Returns max |a - b| over max |a|.
double relativeDifference(const float *a, const float *b, size_t count) {
    double difference = 0, largest = 0;
    for (size_t i = 0; i < count; ++i) {
        difference = std::max(difference, static_cast<double>(std::fabs(a[i] - b[i])));
        largest = std::max(largest, static_cast<double>(std::fabs(a[i])));
    }
    return difference / largest;
}

}

int main(int argc, char **argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s N C K H [repeats]\n", argv[0]);
        return 2;
    }
    int64_t n = std::atoll(argv[1]), c = std::atoll(argv[2]), k = std::atoll(argv[3]), h = std::atoll(argv[4]);
    int repeats = argc > 5 ? std::atoi(argv[5]) : 5;
    if (n < 1 || c < 8 || c % 8 != 0 || k < 8 || k % 8 != 0 || h < 1 || repeats < 1) {
        std::fprintf(stderr, "error: invalid arguments: N, H and repeats must be at least 1, C and K multiples of 8\n");
        return 2;
    }

    dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    dnnl::stream stream(engine);
    memory::desc srcDesc({n, c, h, h}, memory::data_type::f32, tag::nChw8c);
    memory::desc dstDesc({n, k, h, h}, memory::data_type::f32, tag::nChw8c);
    memory::desc anyWeights({k, c, 3, 3}, memory::data_type::f32, tag::any);
    memory::desc plainWeights({k, c, 3, 3}, memory::data_type::f32, tag::oihw);
    memory::dims stride{1, 1}, pad{1, 1};
    auto direct = dnnl::algorithm::convolution_direct;
    dnnl::convolution_forward::primitive_desc forward(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, direct, srcDesc, anyWeights, dstDesc,
                                        stride, pad, pad),
        engine);
    dnnl::convolution_backward_data::primitive_desc data(
        dnnl::convolution_backward_data::desc(direct, srcDesc, anyWeights, dstDesc, stride, pad, pad), engine,
        forward);
    dnnl::convolution_backward_weights::primitive_desc weights(
        dnnl::convolution_backward_weights::desc(direct, srcDesc, anyWeights, dstDesc, stride, pad, pad), engine,
        forward);

    memory src(srcDesc, engine), dst(dstDesc, engine), diffDst(dstDesc, engine), diffSrc(srcDesc, engine);
    memory kernel(plainWeights, engine), diffKernel(plainWeights, engine);
    std::mt19937 generator(1);
    std::normal_distribution<float> normal;
    for (memory *m : {&src, &diffDst, &kernel}) {
        float *values = static_cast<float *>(m->get_data_handle());
        for (size_t i = 0; i < m->get_desc().get_size() / sizeof(float); ++i) values[i] = normal(generator);
    }
    memory forwardKernel(forward.weights_desc(), engine), dataKernel(data.weights_desc(), engine);
    memory blockedDiffKernel(weights.diff_weights_desc(), engine);
    dnnl::reorder(kernel, forwardKernel).execute(stream, kernel, forwardKernel);
    dnnl::reorder(kernel, dataKernel).execute(stream, kernel, dataKernel);
    stream.wait();

    winograd::Shape shape{n, c, k, h, h};
    winograd::Workspace workspace;
    std::vector<float> ourDst(dstDesc.get_size() / 4), ourDiffSrc(srcDesc.get_size() / 4), ourDiffKernel(k * c * 9);
    auto *x = static_cast<float *>(src.get_data_handle());
    auto *dy = static_cast<float *>(diffDst.get_data_handle());
    auto *w = static_cast<float *>(kernel.get_data_handle());

    double times[6] = {
        fastest(repeats, [&] {
            dnnl::convolution_forward(forward).execute(
                stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, forwardKernel}, {DNNL_ARG_DST, dst}});
            stream.wait();
        }),
        fastest(repeats, [&] { winograd::forward(shape, x, w, nullptr, ourDst.data(), workspace); }),
        fastest(repeats, [&] {
            dnnl::convolution_backward_data(data).execute(
                stream, {{DNNL_ARG_DIFF_DST, diffDst}, {DNNL_ARG_WEIGHTS, dataKernel}, {DNNL_ARG_DIFF_SRC, diffSrc}});
            stream.wait();
        }),
        fastest(repeats, [&] { winograd::backwardData(shape, dy, w, ourDiffSrc.data(), workspace); }),
        fastest(repeats, [&] {
            dnnl::convolution_backward_weights(weights).execute(
                stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diffDst}, {DNNL_ARG_DIFF_WEIGHTS, blockedDiffKernel}});
            stream.wait();
        }),
        fastest(repeats, [&] { winograd::backwardWeights(shape, x, dy, ourDiffKernel.data(), nullptr, workspace); }),
    };
    dnnl::reorder(blockedDiffKernel, diffKernel).execute(stream, blockedDiffKernel, diffKernel);
    stream.wait();

    double differences[3] = {
        relativeDifference(static_cast<float *>(dst.get_data_handle()), ourDst.data(), ourDst.size()),
        relativeDifference(static_cast<float *>(diffSrc.get_data_handle()), ourDiffSrc.data(), ourDiffSrc.size()),
        relativeDifference(static_cast<float *>(diffKernel.get_data_handle()), ourDiffKernel.data(), ourDiffKernel.size()),
    };
    const char *passes[3] = {"forward", "backward data", "backward weights"};
    double flop = 2.0 * n * k * c * 9 * h * h;
    for (int pass = 0; pass < 3; ++pass) {
        double directMs = times[2 * pass], winogradMs = times[2 * pass + 1];
        std::printf("%lldx%lldx%lldx%lld -> %lld  %-16s direct %8.2f ms (%5.0f GFLOP/s)  winograd %8.2f ms  "
                    "speedup %.2f  difference %.1e\n",
                    static_cast<long long>(n), static_cast<long long>(c), static_cast<long long>(h),
                    static_cast<long long>(h), static_cast<long long>(k), passes[pass], directMs,
                    flop / directMs / 1e6, winogradMs, directMs / winogradMs, differences[pass]);
    }
    return 0;
}
