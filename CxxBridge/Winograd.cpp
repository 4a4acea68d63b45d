// Winograd F(4x4, 3x3): each 4x4 block of output (a tile) comes from a 6x6 block of input
// through 36 element-wise products per channel pair instead of 144 multiply-adds.
//
// With d a 6x6 input block, g a 3x3 kernel and y the 4x4 output block,
//     y = A' [(G g G') * (B' d B)] A
// where * is the element-wise product and the matrices are Lavin and Gray's for the points
// 0, 1, -1, 2, -2 and infinity. The sum over input channels of the element-wise products is 36
// independent matrix products, one per position xi of the 6x6 block, which run as AVX2 GEMMs.
//
// Backward data is the forward algorithm with the kernel rotated by 180 degrees and its two
// channel axes swapped. Backward weights is the exact adjoint of the forward formula. The
// output gradient of each tile goes through A (...) A' and is multiplied with the transformed
// input. The products are summed over tiles, and the 6x6 sums go back through G' (...) G.
#include "Winograd.hpp"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <dlfcn.h>

namespace onednn_bridge::winograd {

namespace {

constexpr int64_t alpha = 6;          // side of an input block
constexpr int64_t tileSide = 4;       // side of an output block
constexpr int64_t positions = alpha * alpha;
constexpr int64_t lanes = 8;          // floats per AVX2 register, and channels per nChw8c block

// MARK: - Threads

// libdnnl runs on libgomp's thread pool, and sharing it keeps the two from competing for cores.
// The functions are looked up at run time, as Engine.cpp does, so nothing links OpenMP twice.
struct OpenMP {
    using Parallel = void (*)(void (*)(void *), void *, unsigned, unsigned);
    using Query = int (*)();
    Parallel parallel = nullptr;
    Query threadNumber = nullptr;
    Query threadCount = nullptr;
    Query maxThreads = nullptr;

    OpenMP() {
        parallel = reinterpret_cast<Parallel>(dlsym(RTLD_DEFAULT, "GOMP_parallel"));
        threadNumber = reinterpret_cast<Query>(dlsym(RTLD_DEFAULT, "omp_get_thread_num"));
        threadCount = reinterpret_cast<Query>(dlsym(RTLD_DEFAULT, "omp_get_num_threads"));
        maxThreads = reinterpret_cast<Query>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
        if (!threadNumber || !threadCount || !maxThreads) parallel = nullptr;
    }

    int available() const { return parallel ? std::max(1, maxThreads()) : 1; }
};

const OpenMP &openMP() {
    static OpenMP runtime;
    return runtime;
}

/// Runs body(thread, threads) on each thread of a team of at most `threads`.
template <typename Body>
void inParallel(int threads, Body &body) {
    const OpenMP &runtime = openMP();
    if (threads <= 1 || !runtime.parallel) {
        body(0, 1);
        return;
    }
    auto trampoline = [](void *context) {
        const OpenMP &runtime = openMP();
        (*static_cast<Body *>(context))(runtime.threadNumber(), runtime.threadCount());
    };
    runtime.parallel(trampoline, &body, static_cast<unsigned>(threads), 0);
}

/// Returns the half-open range of `count` items that `part` of `parts` takes.
inline std::pair<int64_t, int64_t> share(int64_t count, int part, int parts) {
    return {count * part / parts, count * (part + 1) / parts};
}

// MARK: - Kernel transforms (scalar; kernels are small)

constexpr float G[alpha][3] = {
    {1.0f / 4, 0, 0},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6},
    {1.0f / 24, -1.0f / 12, 1.0f / 6},
    {0, 0, 1},
};

/// g = G' u G for one 6x6 sum u: the adjoint of the kernel transform u = G g G'.
void untransformKernel(const float u[alpha][alpha], float g[3][3]) {
    float half[3][alpha];
    for (int r = 0; r < 3; ++r)
        for (int j = 0; j < alpha; ++j) {
            float sum = 0;
            for (int i = 0; i < alpha; ++i) sum += G[i][r] * u[i][j];
            half[r][j] = sum;
        }
    for (int r = 0; r < 3; ++r)
        for (int s = 0; s < 3; ++s) {
            float sum = 0;
            for (int j = 0; j < alpha; ++j) sum += half[r][j] * G[j][s];
            g[r][s] = sum;
        }
}

}

bool appliesToWeightsGradient(const ConvolutionShape &s) {
    return s.inputChannels * s.outputChannels <= 256 * 256;
}

}

// Everything below uses AVX2 and FMA. `applies` checks the CPU before any of it runs.
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)

namespace onednn_bridge::winograd {

namespace {

// MARK: - Tile transforms (one register is 8 channels)

/// Applies B' along one axis: 6 values in, 6 out.
inline void inputRow(const __m256 d[6], __m256 r[6]) {
    const __m256 four = _mm256_set1_ps(4), five = _mm256_set1_ps(5), two = _mm256_set1_ps(2);
    r[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
    __m256 sum12 = _mm256_add_ps(d[1], d[2]), dif12 = _mm256_sub_ps(d[1], d[2]);
    r[1] = _mm256_fnmadd_ps(four, sum12, _mm256_add_ps(d[3], d[4]));
    r[2] = _mm256_fmadd_ps(four, dif12, _mm256_sub_ps(d[4], d[3]));
    __m256 dif42 = _mm256_sub_ps(d[4], d[2]), dif31 = _mm256_sub_ps(d[3], d[1]);
    r[3] = _mm256_fmadd_ps(two, dif31, dif42);
    r[4] = _mm256_fnmadd_ps(two, dif31, dif42);
    r[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
}

/// Applies A' along one axis: 6 values in, 4 out.
inline void outputRow(const __m256 m[6], __m256 y[4]) {
    const __m256 two = _mm256_set1_ps(2), four = _mm256_set1_ps(4), eight = _mm256_set1_ps(8);
    __m256 sum12 = _mm256_add_ps(m[1], m[2]), dif12 = _mm256_sub_ps(m[1], m[2]);
    __m256 sum34 = _mm256_add_ps(m[3], m[4]), dif34 = _mm256_sub_ps(m[3], m[4]);
    y[0] = _mm256_add_ps(_mm256_add_ps(m[0], sum12), sum34);
    y[1] = _mm256_fmadd_ps(two, dif34, dif12);
    y[2] = _mm256_fmadd_ps(four, sum34, sum12);
    y[3] = _mm256_add_ps(_mm256_fmadd_ps(eight, dif34, dif12), m[5]);
}

/// Applies A along one axis, the adjoint of outputRow: 4 values in, 6 out.
inline void gradientRow(const __m256 y[4], __m256 m[6]) {
    const __m256 two = _mm256_set1_ps(2), four = _mm256_set1_ps(4), eight = _mm256_set1_ps(8);
    __m256 even = _mm256_add_ps(y[0], y[2]), odd = _mm256_add_ps(y[1], y[3]);
    m[0] = y[0];
    m[1] = _mm256_add_ps(even, odd);
    m[2] = _mm256_sub_ps(even, odd);
    __m256 evenScaled = _mm256_fmadd_ps(four, y[2], y[0]);
    __m256 oddScaled = _mm256_fmadd_ps(eight, y[3], _mm256_mul_ps(two, y[1]));
    m[3] = _mm256_add_ps(evenScaled, oddScaled);
    m[4] = _mm256_sub_ps(evenScaled, oddScaled);
    m[5] = y[3];
}

/// A tile's position: its image and its top-left output pixel.
struct Tile {
    int64_t image, row, column;
};

struct Grid {
    int64_t height, width, tileRows, tileColumns;

    Grid(int64_t height, int64_t width)
        : height(height), width(width), tileRows((height + tileSide - 1) / tileSide),
          tileColumns((width + tileSide - 1) / tileSide) {}

    int64_t perImage() const { return tileRows * tileColumns; }

    Tile tile(int64_t index) const {
        int64_t image = index / perImage(), within = index % perImage();
        return {image, within / tileColumns * tileSide, within % tileColumns * tileSide};
    }
};

/// The rows and columns of a 6x6 input block that lie inside the image; the rest read as zeros.
struct Window {
    int64_t firstRow, endRow, firstColumn, endColumn;

    bool whole() const { return firstRow == 0 && endRow == alpha && firstColumn == 0 && endColumn == alpha; }
};

/// Writes B' d B of one 6x6 block of 8 channels, whose rows start `rowStride` floats apart,
/// into v, one position every `xiStride` floats. With `clipped`, pixels outside `window` read
/// as zeros.
template <bool clipped>
inline void transformBlock(const float *d, int64_t rowStride, Window window, float *v, int64_t xiStride) {
    __m256 columns[alpha][alpha], column[alpha], rows[alpha];
    for (int64_t j = 0; j < alpha; ++j) {
        bool inside = !clipped || (j >= window.firstColumn && j < window.endColumn);
        for (int64_t i = 0; i < alpha; ++i) {
            column[i] = inside && (!clipped || (i >= window.firstRow && i < window.endRow))
                            ? _mm256_loadu_ps(d + i * rowStride + j * lanes)
                            : _mm256_setzero_ps();
        }
        inputRow(column, rows);
        for (int64_t i = 0; i < alpha; ++i) columns[i][j] = rows[i];
    }
    for (int64_t i = 0; i < alpha; ++i) {
        inputRow(columns[i], rows);
        for (int64_t j = 0; j < alpha; ++j) _mm256_storeu_ps(v + (i * alpha + j) * xiStride, rows[j]);
    }
}

/// Writes B' d B of the 6x6 input block around `tile` (zeros outside the image) for every
/// channel block into v[xi][slot][channels].
void transformInput(const float *src, int64_t channels, const Grid &grid, Tile tile, float *v, int64_t slot,
                    int64_t slots) {
    int64_t blocks = channels / lanes;
    int64_t plane = grid.height * grid.width * lanes;
    int64_t rowStride = grid.width * lanes;
    int64_t top = tile.row - 1, left = tile.column - 1;
    Window window{std::max<int64_t>(0, -top), std::min<int64_t>(alpha, grid.height - top),
                  std::max<int64_t>(0, -left), std::min<int64_t>(alpha, grid.width - left)};
    float *out = v + slot * channels;
    int64_t xiStride = slots * channels;
    for (int64_t block = 0; block < blocks; ++block) {
        // `corner` may lie outside the image, but a clipped block reads only inside it.
        const float *corner = src + (tile.image * blocks + block) * plane + top * rowStride + left * lanes;
        if (window.whole()) {
            transformBlock<false>(corner, rowStride, window, out + block * lanes, xiStride);
        } else {
            transformBlock<true>(corner, rowStride, window, out + block * lanes, xiStride);
        }
    }
}

/// Writes A' m A of the products at `slot`, plus the bias when there is one, into the 4x4
/// output block of `tile`, cropped to the image.
void transformOutput(const float *m, int64_t channels, int64_t slot, int64_t slots, const Grid &grid, Tile tile,
                     const float *bias, float *dst) {
    int64_t blocks = channels / lanes;
    int64_t plane = grid.height * grid.width * lanes;
    for (int64_t block = 0; block < blocks; ++block) {
        __m256 half[tileSide][alpha];
        for (int64_t j = 0; j < alpha; ++j) {
            __m256 column[alpha], out[tileSide];
            for (int64_t i = 0; i < alpha; ++i) {
                column[i] = _mm256_loadu_ps(m + ((i * alpha + j) * slots + slot) * channels + block * lanes);
            }
            outputRow(column, out);
            for (int64_t i = 0; i < tileSide; ++i) half[i][j] = out[i];
        }
        float *base = dst + (tile.image * blocks + block) * plane;
        __m256 offset = bias ? _mm256_loadu_ps(bias + block * lanes) : _mm256_setzero_ps();
        for (int64_t i = 0; i < tileSide; ++i) {
            int64_t y = tile.row + i;
            if (y >= grid.height) break;
            __m256 out[tileSide];
            outputRow(half[i], out);
            for (int64_t j = 0; j < tileSide; ++j) {
                int64_t x = tile.column + j;
                if (x >= grid.width) break;
                _mm256_storeu_ps(base + (y * grid.width + x) * lanes, _mm256_add_ps(out[j], offset));
            }
        }
    }
}

/// Writes A y A' of the 4x4 output gradient of `tile` (zeros past the image's edge) into
/// m[xi][slot][channels].
void transformGradient(const float *diffDst, int64_t channels, const Grid &grid, Tile tile, float *m, int64_t slot,
                       int64_t slots) {
    int64_t blocks = channels / lanes;
    int64_t plane = grid.height * grid.width * lanes;
    int64_t rowStride = grid.width * lanes;
    int64_t endRow = std::min<int64_t>(tileSide, grid.height - tile.row);
    int64_t endColumn = std::min<int64_t>(tileSide, grid.width - tile.column);
    bool whole = endRow == tileSide && endColumn == tileSide;
    for (int64_t block = 0; block < blocks; ++block) {
        const float *base = diffDst + (tile.image * blocks + block) * plane + tile.row * rowStride + tile.column * lanes;
        __m256 half[tileSide][alpha];
        for (int64_t i = 0; i < tileSide; ++i) {
            __m256 row[tileSide], out[alpha];
            for (int64_t j = 0; j < tileSide; ++j) {
                row[j] = whole || (i < endRow && j < endColumn) ? _mm256_loadu_ps(base + i * rowStride + j * lanes)
                                                                : _mm256_setzero_ps();
            }
            gradientRow(row, out);
            for (int64_t j = 0; j < alpha; ++j) half[i][j] = out[j];
        }
        for (int64_t j = 0; j < alpha; ++j) {
            __m256 column[tileSide], out[alpha];
            for (int64_t i = 0; i < tileSide; ++i) column[i] = half[i][j];
            gradientRow(column, out);
            for (int64_t i = 0; i < alpha; ++i) {
                _mm256_storeu_ps(m + ((i * alpha + j) * slots + slot) * channels + block * lanes, out[i]);
            }
        }
    }
}

/// Transforms OIHW kernels into U[xi][outBlock][in][8], the layout the GEMM reads, eight
/// output channels at a time. With `forData`, the kernel is rotated and its axes swapped
/// first, for the backward-data pass.
void transformKernels(const float *weights, int64_t outputs, int64_t inputs, bool forData, float *u) {
    int64_t to = forData ? inputs : outputs;
    int64_t from = forData ? outputs : inputs;
    // Lane l reads the kernel of output channel o + l: 9 floats apart for the data pass's
    // swapped axes, one kernel row of the weights apart otherwise.
    int64_t laneStride = forData ? 9 : inputs * 9;
    const __m256i lanesOffsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                     _mm256_set1_epi32(static_cast<int>(laneStride)));
    for (int64_t o = 0; o < to; o += lanes) {
        for (int64_t i = 0; i < from; ++i) {
            int64_t k = forData ? i : o, c = forData ? o : i;
            const float *kernel = weights + (k * inputs + c) * 9;
            __m256 g[3][3];
            for (int r = 0; r < 3; ++r)
                for (int s = 0; s < 3; ++s) {
                    int offset = forData ? (2 - r) * 3 + (2 - s) : r * 3 + s;
                    g[r][s] = _mm256_i32gather_ps(kernel + offset, lanesOffsets, 4);
                }
            __m256 half[alpha][3];
            for (int a = 0; a < alpha; ++a)
                for (int s = 0; s < 3; ++s) {
                    __m256 sum = _mm256_mul_ps(_mm256_set1_ps(G[a][0]), g[0][s]);
                    sum = _mm256_fmadd_ps(_mm256_set1_ps(G[a][1]), g[1][s], sum);
                    half[a][s] = _mm256_fmadd_ps(_mm256_set1_ps(G[a][2]), g[2][s], sum);
                }
            for (int a = 0; a < alpha; ++a)
                for (int b = 0; b < alpha; ++b) {
                    __m256 sum = _mm256_mul_ps(half[a][0], _mm256_set1_ps(G[b][0]));
                    sum = _mm256_fmadd_ps(half[a][1], _mm256_set1_ps(G[b][1]), sum);
                    sum = _mm256_fmadd_ps(half[a][2], _mm256_set1_ps(G[b][2]), sum);
                    _mm256_storeu_ps(u + (((a * alpha + b) * (to / lanes) + o / lanes) * from + i) * lanes, sum);
                }
        }
    }
}

// MARK: - GEMM kernels

/// Computes c[r][j] = sum over i < depth of a[r * aRow + i * aStep] * b[i * bStep + j], for
/// `rows` rows and `columns` blocks of 8 values j, the blocks `bBlock` floats apart in b and 8
/// apart in c. With `add`, the sums are added to c instead of replacing it.
template <int rows, int columns, bool add>
inline void gemmBlock(int64_t depth, const float *a, int64_t aRow, int64_t aStep, const float *b, int64_t bStep,
                      int64_t bBlock, float *c, int64_t cRow) {
    __m256 sum[rows][columns];
    for (int r = 0; r < rows; ++r)
        for (int j = 0; j < columns; ++j) sum[r][j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < depth; ++i) {
        __m256 w[columns];
        for (int j = 0; j < columns; ++j) w[j] = _mm256_loadu_ps(b + i * bStep + j * bBlock);
        for (int r = 0; r < rows; ++r) {
            __m256 x = _mm256_broadcast_ss(a + r * aRow + i * aStep);
            for (int j = 0; j < columns; ++j) sum[r][j] = _mm256_fmadd_ps(x, w[j], sum[r][j]);
        }
    }
    for (int r = 0; r < rows; ++r)
        for (int j = 0; j < columns; ++j) {
            float *target = c + r * cRow + j * lanes;
            _mm256_storeu_ps(target, add ? _mm256_add_ps(_mm256_loadu_ps(target), sum[r][j]) : sum[r][j]);
        }
}

/// m[rows][outputs block of 8 * columns] = v[rows][inputs] x u[inputs][8] (per block).
template <int rows, int columns>
inline void multiplyBlock(const float *v, int64_t inputs, const float *u, int64_t uBlockStride, float *m,
                          int64_t outputs) {
    gemmBlock<rows, columns, false>(inputs, v, inputs, 1, u, lanes, uBlockStride, m, outputs);
}

template <int columns>
void multiplyRows(int64_t count, const float *v, int64_t inputs, const float *u, int64_t uBlockStride, float *m,
                  int64_t outputs) {
    int64_t row = 0;
    for (; row + 6 <= count; row += 6) {
        multiplyBlock<6, columns>(v + row * inputs, inputs, u, uBlockStride, m + row * outputs, outputs);
    }
    const float *vRest = v + row * inputs;
    float *mRest = m + row * outputs;
    switch (count - row) {
    case 1: multiplyBlock<1, columns>(vRest, inputs, u, uBlockStride, mRest, outputs); break;
    case 2: multiplyBlock<2, columns>(vRest, inputs, u, uBlockStride, mRest, outputs); break;
    case 3: multiplyBlock<3, columns>(vRest, inputs, u, uBlockStride, mRest, outputs); break;
    case 4: multiplyBlock<4, columns>(vRest, inputs, u, uBlockStride, mRest, outputs); break;
    case 5: multiplyBlock<5, columns>(vRest, inputs, u, uBlockStride, mRest, outputs); break;
    default: break;
    }
}

/// For each position xi in [firstXi, endXi): m[xi][slots][outputs] = v[xi][slots][inputs] x U[xi].
void multiply(int64_t count, int64_t slots, const float *v, int64_t inputs, const float *u, float *m,
              int64_t outputs, int64_t firstXi = 0, int64_t endXi = positions) {
    int64_t blocks = outputs / lanes;
    int64_t uBlockStride = inputs * lanes;
    for (int64_t xi = firstXi; xi < endXi; ++xi) {
        const float *vXi = v + xi * slots * inputs;
        const float *uXi = u + xi * outputs * inputs;
        float *mXi = m + xi * slots * outputs;
        int64_t block = 0;
        for (; block + 2 <= blocks; block += 2) {
            multiplyRows<2>(count, vXi, inputs, uXi + block * uBlockStride, uBlockStride, mXi + block * lanes, outputs);
        }
        if (block < blocks) {
            multiplyRows<1>(count, vXi, inputs, uXi + block * uBlockStride, uBlockStride, mXi + block * lanes, outputs);
        }
    }
}

/// sums[rows][inputs block] += sum over slots of dm[slot][row] * v[slot][inputs block].
template <int rows, int columns>
inline void accumulateBlock(int64_t count, const float *dm, int64_t outputs, const float *v, int64_t inputs,
                            float *sums) {
    gemmBlock<rows, columns, true>(count, dm, 1, outputs, v, inputs, lanes, sums, inputs);
}

/// For each position xi in [firstXi, endXi): sums[xi][outputs][inputs] += dm[xi]' x v[xi] over
/// `count` slots.
void accumulate(int64_t count, int64_t slots, const float *dm, int64_t outputs, const float *v, int64_t inputs,
                float *sums, int64_t firstXi = 0, int64_t endXi = positions) {
    for (int64_t xi = firstXi; xi < endXi; ++xi) {
        const float *dmXi = dm + xi * slots * outputs;
        const float *vXi = v + xi * slots * inputs;
        float *sumsXi = sums + xi * outputs * inputs;
        for (int64_t row = 0; row < outputs; row += 4) {
            int64_t column = 0;
            for (; column + 2 * lanes <= inputs; column += 2 * lanes) {
                accumulateBlock<4, 2>(count, dmXi + row, outputs, vXi + column, inputs, sumsXi + row * inputs + column);
            }
            if (column < inputs) {
                accumulateBlock<4, 1>(count, dmXi + row, outputs, vXi + column, inputs, sumsXi + row * inputs + column);
            }
        }
    }
}

// MARK: - Passes

/// Tiles per batch of work: enough to keep the GEMMs busy, few enough that the transformed
/// tiles of one batch stay in a 512 KiB L2 cache.
int64_t tilesPerBatch(int64_t inputs, int64_t outputs) {
    int64_t fit = (256 * 1024 / 4) / (positions * (inputs + outputs));
    return std::clamp<int64_t>(fit, 6, 96);
}

/// Whether a convolution runs in three phases over all its tiles at once: transform every
/// tile, one GEMM per position, transform back. Wide layers have large kernels and few tiles,
/// and streaming their transformed kernels once per batch of tiles would cost more than the
/// GEMMs themselves.
bool isWide(int64_t inputs, int64_t outputs) { return inputs * outputs > 128 * 128; }

/// Runs body(index) for every index in [0, count) on a team of threads that take the next
/// `grain` indices as they finish.
template <typename Body>
void forEach(int64_t count, int64_t grain, Body body) {
    std::atomic<int64_t> next{0};
    auto worker = [&](int, int) {
        for (int64_t first = next.fetch_add(grain); first < count; first = next.fetch_add(grain)) {
            for (int64_t index = first; index < std::min(count, first + grain); ++index) body(index);
        }
    };
    int threads = static_cast<int>(std::min<int64_t>(openMP().available(), (count + grain - 1) / grain));
    inParallel(threads, worker);
}

/// The convolution of a wide layer, in three phases (see isWide).
void convolveWide(const Shape &shape, int64_t inputs, int64_t outputs, const float *src, const float *u,
                  const float *bias, float *dst, Workspace &workspace) {
    Grid grid(shape.height, shape.width);
    int64_t tiles = shape.batch * grid.perImage();
    size_t size = static_cast<size_t>(positions * tiles * (inputs + outputs));
    if (workspace.scratch.size() < size) workspace.scratch.resize(size);
    float *v = workspace.scratch.data();
    float *m = v + positions * tiles * inputs;

    forEach(tiles, 8, [&](int64_t tile) { transformInput(src, inputs, grid, grid.tile(tile), v, tile, tiles); });
    forEach(positions, 1, [&](int64_t xi) { multiply(tiles, tiles, v, inputs, u, m, outputs, xi, xi + 1); });
    forEach(tiles, 8, [&](int64_t tile) {
        transformOutput(m, outputs, tile, tiles, grid, grid.tile(tile), bias, dst);
    });
}

/// The convolution of `src` (inputs channels) with kernels already in U, into `dst`.
void convolve(const Shape &shape, int64_t inputs, int64_t outputs, const float *src, const float *u,
              const float *bias, float *dst, Workspace &workspace) {
    if (isWide(inputs, outputs)) {
        convolveWide(shape, inputs, outputs, src, u, bias, dst, workspace);
        return;
    }
    Grid grid(shape.height, shape.width);
    int64_t tiles = shape.batch * grid.perImage();
    int64_t slots = tilesPerBatch(inputs, outputs);
    int64_t batches = (tiles + slots - 1) / slots;
    int threads = static_cast<int>(std::min<int64_t>(openMP().available(), batches));
    int64_t perThread = positions * slots * (inputs + outputs);
    if (workspace.scratch.size() < static_cast<size_t>(perThread * threads)) {
        workspace.scratch.resize(static_cast<size_t>(perThread * threads));
    }
    float *scratch = workspace.scratch.data();

    // Each output tile depends on its own input only, so threads take batches as they finish
    // the last, and the result does not depend on which thread ran what.
    std::atomic<int64_t> nextBatch{0};
    auto body = [&](int thread, int) {
        float *v = scratch + thread * perThread;
        float *m = v + positions * slots * inputs;
        for (int64_t batch = nextBatch++; batch < batches; batch = nextBatch++) {
            int64_t start = batch * slots, count = std::min(slots, tiles - start);
            for (int64_t slot = 0; slot < count; ++slot) {
                transformInput(src, inputs, grid, grid.tile(start + slot), v, slot, slots);
            }
            multiply(count, slots, v, inputs, u, m, outputs);
            for (int64_t slot = 0; slot < count; ++slot) {
                transformOutput(m, outputs, slot, slots, grid, grid.tile(start + slot), bias, dst);
            }
        }
    };
    inParallel(threads, body);
}

}

bool applies(const ConvolutionShape &s) {
    static const bool cpuHasAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    bool geometry = s.kernelHeight == 3 && s.kernelWidth == 3 && s.strideHeight == 1 && s.strideWidth == 1 &&
                    s.padTop == 1 && s.padBottom == 1 && s.padLeft == 1 && s.padRight == 1 &&
                    s.outputHeight == s.inputHeight && s.outputWidth == s.inputWidth;
    bool channels = s.inputChannels % lanes == 0 && s.outputChannels % lanes == 0;
    // Wide layers transform all their tiles at once; past 1 GiB of transformed tiles, oneDNN's
    // direct kernels run instead.
    Grid grid(s.inputHeight, s.inputWidth);
    int64_t tiles = s.batch * grid.perImage();
    bool fits = !isWide(s.inputChannels, s.outputChannels) ||
                positions * tiles * (s.inputChannels + s.outputChannels) * 4 <= (int64_t(1) << 30);
    return cpuHasAvx2 && geometry && channels && fits;
}

void forward(const Shape &shape, const float *src, const float *weights, const float *bias, float *dst,
             Workspace &workspace) {
    int64_t c = shape.inputChannels, k = shape.outputChannels;
    workspace.transformedWeights.resize(static_cast<size_t>(positions * c * k));
    transformKernels(weights, k, c, false, workspace.transformedWeights.data());
    convolve(shape, c, k, src, workspace.transformedWeights.data(), bias, dst, workspace);
}

void backwardData(const Shape &shape, const float *diffDst, const float *weights, float *diffSrc,
                  Workspace &workspace) {
    int64_t c = shape.inputChannels, k = shape.outputChannels;
    workspace.transformedWeights.resize(static_cast<size_t>(positions * c * k));
    transformKernels(weights, k, c, true, workspace.transformedWeights.data());
    convolve(shape, k, c, diffDst, workspace.transformedWeights.data(), nullptr, diffSrc, workspace);
}

namespace {

/// Sums dm' x v over all tiles for each position of a wide layer (see isWide), one position per
/// thread at a time. Returns sums[xi][K][C].
float *sumWide(const Shape &shape, const float *src, const float *diffDst, Workspace &workspace) {
    int64_t c = shape.inputChannels, k = shape.outputChannels;
    Grid grid(shape.height, shape.width);
    int64_t tiles = shape.batch * grid.perImage();
    size_t size = static_cast<size_t>(positions * (tiles * (c + k) + k * c));
    if (workspace.scratch.size() < size) workspace.scratch.resize(size);
    float *v = workspace.scratch.data();
    float *dm = v + positions * tiles * c;
    float *sums = dm + positions * tiles * k;

    forEach(tiles, 8, [&](int64_t index) {
        Tile tile = grid.tile(index);
        transformInput(src, c, grid, tile, v, index, tiles);
        transformGradient(diffDst, k, grid, tile, dm, index, tiles);
    });
    forEach(positions, 1, [&](int64_t xi) {
        std::memset(sums + xi * k * c, 0, static_cast<size_t>(k * c) * sizeof(float));
        accumulate(tiles, tiles, dm, k, v, c, sums, xi, xi + 1);
    });
    return sums;
}

/// Sums dm' x v over all tiles for each position, each thread over its share of the tiles in
/// batches that fit the cache, then adds the threads' sums. Returns sums[xi][K][C].
float *sumInBatches(const Shape &shape, const float *src, const float *diffDst, Workspace &workspace) {
    int64_t c = shape.inputChannels, k = shape.outputChannels;
    Grid grid(shape.height, shape.width);
    int64_t tiles = shape.batch * grid.perImage();
    int64_t slots = tilesPerBatch(c, k);
    int64_t batches = (tiles + slots - 1) / slots;
    int threads = static_cast<int>(std::min<int64_t>(openMP().available(), batches));
    int64_t sumsSize = positions * k * c;
    int64_t perThread = sumsSize + positions * slots * (c + k);
    if (workspace.scratch.size() < static_cast<size_t>(perThread * threads)) {
        workspace.scratch.resize(static_cast<size_t>(perThread * threads));
    }
    float *scratch = workspace.scratch.data();

    auto body = [&](int thread, int team) {
        float *sums = scratch + thread * perThread;
        float *v = sums + sumsSize;
        float *dm = v + positions * slots * c;
        std::memset(sums, 0, static_cast<size_t>(sumsSize) * sizeof(float));
        auto [first, last] = share(batches, thread, team);
        for (int64_t batch = first; batch < last; ++batch) {
            int64_t start = batch * slots, count = std::min(slots, tiles - start);
            for (int64_t slot = 0; slot < count; ++slot) {
                Tile tile = grid.tile(start + slot);
                transformInput(src, c, grid, tile, v, slot, slots);
                transformGradient(diffDst, k, grid, tile, dm, slot, slots);
            }
            accumulate(count, slots, dm, k, v, c, sums);
        }
    };
    // The team may be smaller than requested, and threads that never ran must not be summed.
    std::vector<char> ran(static_cast<size_t>(threads), 0);
    auto marked = [&](int thread, int team) {
        ran[static_cast<size_t>(thread)] = 1;
        body(thread, team);
    };
    inParallel(threads, marked);

    float *total = scratch;
    for (int thread = 1; thread < threads; ++thread) {
        if (!ran[static_cast<size_t>(thread)]) continue;
        const float *part = scratch + thread * perThread;
        for (int64_t i = 0; i < sumsSize; ++i) total[i] += part[i];
    }
    return total;
}

}

void backwardWeights(const Shape &shape, const float *src, const float *diffDst, float *diffWeights,
                     float *diffBias, Workspace &workspace) {
    int64_t c = shape.inputChannels, k = shape.outputChannels;
    const float *total = isWide(c, k) ? sumWide(shape, src, diffDst, workspace)
                                      : sumInBatches(shape, src, diffDst, workspace);
    for (int64_t o = 0; o < k; ++o) {
        for (int64_t i = 0; i < c; ++i) {
            float u[alpha][alpha], g[3][3];
            for (int64_t xi = 0; xi < positions; ++xi) u[xi / alpha][xi % alpha] = total[(xi * k + o) * c + i];
            untransformKernel(u, g);
            std::memcpy(diffWeights + (o * c + i) * 9, g, sizeof(g));
        }
    }

    if (diffBias) {
        int64_t plane = shape.height * shape.width;
        for (int64_t block = 0; block < k / lanes; ++block) {
            __m256 sum = _mm256_setzero_ps();
            for (int64_t image = 0; image < shape.batch; ++image) {
                const float *base = diffDst + (image * (k / lanes) + block) * plane * lanes;
                for (int64_t pixel = 0; pixel < plane; ++pixel) sum = _mm256_add_ps(sum, _mm256_loadu_ps(base + pixel * lanes));
            }
            _mm256_storeu_ps(diffBias + block * lanes, sum);
        }
    }
}

}

#pragma clang attribute pop
