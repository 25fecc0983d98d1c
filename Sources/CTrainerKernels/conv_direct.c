// A "same"-padded convolution without im2row, over zero-padded images (docs/benchmarks.md, "Direct convolutions").
//
// With the input padded to Hp × Wp and the images of the batch one after the other, the K·C floats that kernel row ky
// of output position q = (b·Hp + oy)·Wp + ox reads (stride 1) are contiguous and start at (q + ky·Wp)·C: the patches
// of consecutive positions are overlapping rows with stride C. So
//     y[q][co] = Σ_ky Σ_{j < K·C} x[(q + ky·Wp)·C + j] · w[ky][j][co]
// over every q of the padded grid. The grid form (emc_conv_direct) computes every q; the dense form
// (emc_conv_direct_dense, what the layers call) walks each image's output rows only, each output stored straight into
// its row of the NHWC output. At stride S, output (oy, ox) reads rows S·oy + ky from column S·ox: the same walk with
// patches S·C apart.
// OpenBLAS cannot read such rows (it requires lda ≥ k), and im2row writes them out 9 times over, which at 8–32
// channels made the convolution bound by memory traffic. The same kernel gives the input gradient (the padded output
// gradient with the flipped kernel).
//
// Every output element is one fused multiply-add chain over (ky, j) in order, from zero (or G such chains, below), at
// both levels: the same bits.
#include "emc_trainer_kernels.h"
#include "pairs512.h"
#include <immintrin.h>

// Output widths of at most 8 channels fill a quarter or half of a 16-lane vector. There the kernels split each output's
// chain into G = 4 (cout ≤ 4) or G = 2 (cout ≤ 8) partial chains, partial g taking the taps j ≡ g (mod G) of each kernel
// row, and add the partials in order at the end, ((p₀ + p₁) + p₂) + p₃: the AVX-512 version then puts G consecutive taps
// of a patch in the lanes of one broadcast (a 64- or 128-bit load) against weights packed [ky][j / G][co·G + j mod G],
// and every lane does useful work. The AVX2 version keeps the G partials in G registers: the same bits.
static inline int groups_for(int cout) { return cout <= 4 ? 4 : cout <= 8 ? 2 : 1; }

size_t emc_conv_direct_scratch(int cout, int kernel, int channels) {
    int g = groups_for(cout);
    if (g == 1) return 0;
    size_t kc = (size_t)kernel * channels;
    return (size_t)kernel * ((kc + g - 1) / g) * 16;
}

// Every tile computes P consecutive outputs of a row, whose patches start at x + p·step (step = S·C), and writes them
// to y + p·ystep; its weights are w + ky·(row of the kernel) and the bias, when there is one, is added after the chain
// (the same bits as adding it afterwards). A strip covers `count` consecutive outputs with tiles of P1, P2, P3 and 1.
#define STRIP_ARGS(q) x + (q) * step, step, KC, K, rowStep, w, y + (q) * ystep, ystep, cout, bias, mask
#define STRIP(TARGET, MASK, NAME, TILE, P1, P2, P3)                                                                    \
    __attribute__((target(TARGET))) static void NAME(size_t count, const float *x, size_t step, size_t KC, int K,     \
                                                     size_t rowStep, const float *w, float *y, size_t ystep,          \
                                                     size_t cout, const float *bias, MASK mask) {                     \
        size_t q = 0;                                                                                                  \
        for (; q + P1 <= count; q += P1) TILE(P1)(STRIP_ARGS(q));                                                      \
        for (; q + P2 <= count; q += P2) TILE(P2)(STRIP_ARGS(q));                                                      \
        for (; q + P3 <= count; q += P3) TILE(P3)(STRIP_ARGS(q));                                                      \
        for (; q < count; q++) TILE(1)(STRIP_ARGS(q));                                                                 \
    }

// Which outputs a call computes: `rows` rows of `count` outputs in each of `images` images; row i of image b reads
// its patches from x + b·xImage + i·xRow (then `step` apart, kernel rows `rowStep` apart) and writes to
// y + b·yImage + i·yRow (then `ystep` apart).
struct walk { size_t images, rows, count, xImage, xRow, step, rowStep, yImage, yRow, ystep; };

#define RUN_STRIPS(TARGET, MASK, NAME, STRIP_TYPE)                                                                     \
    __attribute__((target(TARGET))) static void NAME(STRIP_TYPE strip, const struct walk *at, const float *x,         \
                                                     size_t KC, int K, const float *w, float *y, size_t cout,         \
                                                     const float *bias, MASK mask) {                                  \
        for (size_t b = 0; b < at->images; b++)                                                                        \
            for (size_t i = 0; i < at->rows; i++)                                                                      \
                strip(at->count, x + b * at->xImage + i * at->xRow, at->step, KC, K, at->rowStep, w,                   \
                      y + b * at->yImage + i * at->yRow, at->ystep, cout, bias, mask);                                 \
    }

// ---- AVX-512 ----

static inline __attribute__((always_inline, target("avx512f"))) __m512 broadcast_taps(const float *x, int g) {
    return g == 2 ? broadcast_pair512(x) : _mm512_broadcast_f32x4(_mm_loadu_ps(x));
}

// The last group of a kernel row, `count` < G taps, the missing ones zero. Built in registers: written to a stack array
// and reloaded as one 64- or 128-bit value it stalled on store forwarding (a first layer of 3 channels ran at 21 GFLOP/s).
static inline __attribute__((always_inline, target("avx512f"))) __m512 broadcast_tail(const float *x, size_t count, int g) {
    if (g == 2) return broadcast_single512(x);
    __m512 taps = _mm512_maskz_loadu_ps((__mmask16)((1u << count) - 1), x);
    return _mm512_shuffle_f32x4(taps, taps, 0);
}

// Lane co of the result: ((lane co·G + 0) + lane co·G + 1) + … for co < 16 / G.
static inline __attribute__((always_inline, target("avx512f"))) __m512 add_partials(__m512 acc, int g) {
    const __m512i first = _mm512_setr_epi32(0, g, 2 * g, 3 * g, 4 * g, 5 * g, 6 * g, 7 * g, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 sum = _mm512_permutexvar_ps(first, acc);
    for (int i = 1; i < g; i++) sum = _mm512_add_ps(sum, _mm512_permutexvar_ps(_mm512_add_epi32(first, _mm512_set1_epi32(i)), acc));
    return sum;
}

// The grouped tile: one accumulator per output, lane co·G + g holding partial g of channel co; w is packed.
#define TILE512_GROUPED(P, G)                                                                                          \
    static inline __attribute__((always_inline, target("avx512f"))) void convg512_##P##_##G(                         \
        const float *x, size_t step, size_t KC, int K, size_t rowStep, const float *w, float *y, size_t ystep,        \
        size_t cout, const float *bias, __mmask16 mask) {                                                                           \
        const size_t full = KC / G, groups = (KC + G - 1) / G;                                                         \
        __m512 acc[P];                                                                                                 \
        for (int p = 0; p < P; p++) acc[p] = _mm512_setzero_ps();                                                      \
        for (int ky = 0; ky < K; ky++) {                                                                               \
            const float *xr = x + ky * rowStep;                                                                        \
            const float *wr = w + (size_t)ky * groups * 16;                                                            \
            for (size_t jg = 0; jg < full; jg++) {                                                                     \
                __m512 wv = _mm512_loadu_ps(wr + jg * 16);                                                             \
                for (int p = 0; p < P; p++)                                                                            \
                    acc[p] = _mm512_fmadd_ps(broadcast_taps(xr + p * step + jg * G, G), wv, acc[p]);                   \
            }                                                                                                          \
            if (full < groups) {                                                                                       \
                __m512 wv = _mm512_loadu_ps(wr + full * 16);                                                           \
                for (int p = 0; p < P; p++)                                                                            \
                    acc[p] = _mm512_fmadd_ps(broadcast_tail(xr + p * step + full * G, KC - full * G, G), wv, acc[p]);  \
            }                                                                                                          \
        }                                                                                                              \
        for (int p = 0; p < P; p++) {                                                                                  \
            __m512 value = add_partials(acc[p], G);                                                                    \
            if (bias) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, bias));                                 \
            _mm512_mask_storeu_ps(y + p * ystep, mask, value);                                                          \
        }                                                                                                              \
    }

// The plain tile: V vectors of 16 output channels (the last masked by `mask`); w is [ky][j][co].
#define TILE512(P, V)                                                                                                  \
    static inline __attribute__((always_inline, target("avx512f"))) void conv512_##P##_##V(                          \
        const float *x, size_t step, size_t KC, int K, size_t rowStep, const float *w, float *y, size_t ystep,        \
        size_t cout, const float *bias, __mmask16 mask) {                                                                           \
        __m512 acc[P][V];                                                                                              \
        for (int p = 0; p < P; p++)                                                                                    \
            for (int v = 0; v < V; v++) acc[p][v] = _mm512_setzero_ps();                                               \
        for (int ky = 0; ky < K; ky++) {                                                                               \
            const float *xr = x + ky * rowStep;                                                                        \
            const float *wr = w + (size_t)ky * KC * cout;                                                              \
            for (size_t j = 0; j < KC; j++) {                                                                          \
                __m512 wv[V];                                                                                          \
                for (int v = 0; v < V; v++)                                                                            \
                    wv[v] = _mm512_maskz_loadu_ps(v == V - 1 ? mask : 0xFFFF, wr + j * cout + v * 16);                \
                for (int p = 0; p < P; p++) {                                                                          \
                    __m512 a = _mm512_set1_ps(xr[p * step + j]);                                                       \
                    for (int v = 0; v < V; v++) acc[p][v] = _mm512_fmadd_ps(a, wv[v], acc[p][v]);                      \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        for (int p = 0; p < P; p++) {                                                                                  \
            for (int v = 0; v < V; v++) {                                                                              \
                __mmask16 m = v == V - 1 ? mask : 0xFFFF;                                                              \
                __m512 value = bias ? _mm512_add_ps(acc[p][v], _mm512_maskz_loadu_ps(m, bias + v * 16)) : acc[p][v];   \
                _mm512_mask_storeu_ps(y + p * ystep + v * 16, m, value);                                                \
            }                                                                                                          \
        }                                                                                                              \
    }

TILE512_GROUPED(16, 4)
TILE512_GROUPED(8, 4)
TILE512_GROUPED(4, 4)
TILE512_GROUPED(1, 4)
TILE512_GROUPED(16, 2)
TILE512_GROUPED(8, 2)
TILE512_GROUPED(4, 2)
TILE512_GROUPED(1, 2)
TILE512(16, 1)
TILE512(8, 1)
TILE512(4, 1)
TILE512(1, 1)
TILE512(12, 2)
TILE512(8, 2)
TILE512(4, 2)
TILE512(1, 2)
TILE512(6, 3)
TILE512(4, 3)
TILE512(2, 3)
TILE512(1, 3)
TILE512(6, 4)
TILE512(4, 4)
TILE512(2, 4)
TILE512(1, 4)

#define G4_512(P) convg512_##P##_4
#define G2_512(P) convg512_##P##_2
#define V1_512(P) conv512_##P##_1
#define V2_512(P) conv512_##P##_2
#define V3_512(P) conv512_##P##_3
#define V4_512(P) conv512_##P##_4
typedef void (*strip512)(size_t, const float *, size_t, size_t, int, size_t, const float *, float *, size_t, size_t,
                         const float *, __mmask16);
STRIP("avx512f", __mmask16, strip512_g4, G4_512, 16, 8, 4)
STRIP("avx512f", __mmask16, strip512_g2, G2_512, 16, 8, 4)
STRIP("avx512f", __mmask16, strip512_v1, V1_512, 16, 8, 4)
STRIP("avx512f", __mmask16, strip512_v2, V2_512, 12, 8, 4)
STRIP("avx512f", __mmask16, strip512_v3, V3_512, 6, 4, 2)
STRIP("avx512f", __mmask16, strip512_v4, V4_512, 6, 4, 2)
RUN_STRIPS("avx512f", __mmask16, run512, strip512)

// The grouped weights: [ky][j / G][co·G + j mod G], zero past cout·G lanes and past the kernel row's K·C taps.
static void pack_groups(const float *w, float *packed, int cout, int K, size_t KC, int g) {
    size_t groups = (KC + g - 1) / g;
    for (int ky = 0; ky < K; ky++) {
        for (size_t jg = 0; jg < groups; jg++) {
            float *to = packed + (ky * groups + jg) * 16;
            for (int lane = 0; lane < 16; lane++) to[lane] = 0;
            for (int co = 0; co < cout; co++)
                for (int i = 0; i < g; i++)
                    if (jg * g + i < KC) to[co * g + i] = w[(ky * KC + jg * g + i) * cout + co];
        }
    }
}

// K kernel rows of KC floats each, cout outputs per position, over the walk `at`.
__attribute__((target("avx512f"))) static void conv_avx512(const struct walk *at, int cout, int K, size_t KC, const float *x,
                                                           const float *w, float *y, const float *bias, float *scratch) {
    const int g = groups_for(cout);
    if (g > 1) {
        pack_groups(w, scratch, cout, K, KC, g);
        run512(g == 4 ? strip512_g4 : strip512_g2, at, x, KC, K, scratch, y, cout, bias, (__mmask16)((1u << cout) - 1));
        return;
    }
    for (int co = 0; co < cout; co += 64) {
        int width = cout - co < 64 ? cout - co : 64;
        int vectors = (width + 15) / 16;
        int rest = width - (vectors - 1) * 16;
        __mmask16 tail = (__mmask16)(rest == 16 ? 0xFFFF : (1u << rest) - 1);
        strip512 strip = vectors == 1 ? strip512_v1 : vectors == 2 ? strip512_v2 : vectors == 3 ? strip512_v3 : strip512_v4;
        run512(strip, at, x, KC, K, w + co, y + co, cout, bias ? bias + co : NULL, tail);
    }
}

// ---- AVX2 ----

// The grouped tile at AVX2 (cout ≤ 8, one vector): G accumulators per output, partial g taking the taps j ≡ g (mod G)
// of each kernel row in order, added in order at the store; w is [ky][j][co] as for the plain tile.
#define TILE256_GROUPED(P, G)                                                                                          \
    static inline __attribute__((always_inline, target("avx2,fma"))) void convg256_##P##_##G(                       \
        const float *x, size_t step, size_t KC, int K, size_t rowStep, const float *w, float *y, size_t ystep,        \
        size_t cout, const float *bias, __m256i mask) {                                                                             \
        __m256 acc[P][G];                                                                                              \
        for (int p = 0; p < P; p++)                                                                                    \
            for (int i = 0; i < G; i++) acc[p][i] = _mm256_setzero_ps();                                               \
        for (int ky = 0; ky < K; ky++) {                                                                               \
            const float *xr = x + ky * rowStep;                                                                        \
            const float *wr = w + (size_t)ky * KC * cout;                                                              \
            for (size_t j = 0; j < KC; j += G) {                                                                       \
                for (int i = 0; i < G && j + i < KC; i++) {                                                            \
                    __m256 wv = _mm256_maskload_ps(wr + (j + i) * cout, mask);                                         \
                    for (int p = 0; p < P; p++)                                                                        \
                        acc[p][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(xr + p * step + j + i), wv, acc[p][i]);        \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        for (int p = 0; p < P; p++) {                                                                                  \
            __m256 value = acc[p][0];                                                                                  \
            for (int i = 1; i < G; i++) value = _mm256_add_ps(value, acc[p][i]);                                       \
            if (bias) value = _mm256_add_ps(value, _mm256_maskload_ps(bias, mask));                                    \
            _mm256_maskstore_ps(y + p * ystep, mask, value);                                                            \
        }                                                                                                              \
    }

#define TILE256(P, V)                                                                                                  \
    static inline __attribute__((always_inline, target("avx2,fma"))) void conv256_##P##_##V(                        \
        const float *x, size_t step, size_t KC, int K, size_t rowStep, const float *w, float *y, size_t ystep,        \
        size_t cout, const float *bias, __m256i mask) {                                                                             \
        const __m256i all = _mm256_set1_epi32(-1);                                                                     \
        __m256 acc[P][V];                                                                                              \
        for (int p = 0; p < P; p++)                                                                                    \
            for (int v = 0; v < V; v++) acc[p][v] = _mm256_setzero_ps();                                               \
        for (int ky = 0; ky < K; ky++) {                                                                               \
            const float *xr = x + ky * rowStep;                                                                        \
            const float *wr = w + (size_t)ky * KC * cout;                                                              \
            for (size_t j = 0; j < KC; j++) {                                                                          \
                __m256 wv[V];                                                                                          \
                for (int v = 0; v < V; v++)                                                                            \
                    wv[v] = _mm256_maskload_ps(wr + j * cout + v * 8, v == V - 1 ? mask : all);                        \
                for (int p = 0; p < P; p++) {                                                                          \
                    __m256 a = _mm256_broadcast_ss(xr + p * step + j);                                                 \
                    for (int v = 0; v < V; v++) acc[p][v] = _mm256_fmadd_ps(a, wv[v], acc[p][v]);                      \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        for (int p = 0; p < P; p++) {                                                                                  \
            for (int v = 0; v < V; v++) {                                                                              \
                __m256i m = v == V - 1 ? mask : all;                                                                   \
                __m256 value = bias ? _mm256_add_ps(acc[p][v], _mm256_maskload_ps(bias + v * 8, m)) : acc[p][v];       \
                _mm256_maskstore_ps(y + p * ystep + v * 8, m, value);                                                   \
            }                                                                                                          \
        }                                                                                                              \
    }

TILE256_GROUPED(3, 4)
TILE256_GROUPED(2, 4)
TILE256_GROUPED(1, 4)
TILE256_GROUPED(6, 2)
TILE256_GROUPED(4, 2)
TILE256_GROUPED(2, 2)
TILE256_GROUPED(1, 2)
TILE256(12, 1)
TILE256(8, 1)
TILE256(4, 1)
TILE256(1, 1)
TILE256(6, 2)
TILE256(4, 2)
TILE256(2, 2)
TILE256(1, 2)

#define G4_256(P) convg256_##P##_4
#define G2_256(P) convg256_##P##_2
#define V1_256(P) conv256_##P##_1
#define V2_256(P) conv256_##P##_2
typedef void (*strip256)(size_t, const float *, size_t, size_t, int, size_t, const float *, float *, size_t, size_t,
                         const float *, __m256i);
STRIP("avx2,fma", __m256i, strip256_g4, G4_256, 3, 2, 2)
STRIP("avx2,fma", __m256i, strip256_g2, G2_256, 6, 4, 2)
STRIP("avx2,fma", __m256i, strip256_v1, V1_256, 12, 8, 4)
STRIP("avx2,fma", __m256i, strip256_v2, V2_256, 6, 4, 2)
RUN_STRIPS("avx2,fma", __m256i, run256, strip256)

__attribute__((target("avx2,fma"))) static void conv_avx2(const struct walk *at, int cout, int K, size_t KC, const float *x,
                                                          const float *w, float *y, const float *bias) {
    const int g = groups_for(cout);
    for (int co = 0; co < cout; co += 16) {
        int width = cout - co < 16 ? cout - co : 16;
        int vectors = (width + 7) / 8;
        int rest = width - (vectors - 1) * 8;
        __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        strip256 strip = g == 4 ? strip256_g4 : g == 2 ? strip256_g2 : vectors == 1 ? strip256_v1 : strip256_v2;
        run256(strip, at, x, KC, K, w + co, y + co, cout, bias ? bias + co : NULL, tail);
    }
}

static int convolve(int level, const struct walk *at, int cout, int K, size_t KC, const float *x, const float *w, float *y,
                    const float *bias, float *scratch) {
    if (level >= 2) { conv_avx512(at, cout, K, KC, x, w, y, bias, scratch); return 1; }
    if (level == 1) { conv_avx2(at, cout, K, KC, x, w, y, bias); return 1; }
    return 0;
}

int emc_conv_direct_dense(int level, size_t images, int cout, int kernel, int channels, const emc_grid_shape *grid,
                          const float *x, const float *w, float *y, const float *bias, float *scratch) {
    const size_t C = channels, wp = grid->paddedWidth;
    struct walk at = {images, grid->height, grid->width, grid->paddedHeight * wp * C, grid->stride * wp * C,
                      grid->stride * C, wp * C, grid->height * grid->width * cout, grid->width * cout, cout};
    return convolve(level, &at, cout, kernel, (size_t)kernel * C, x, w, y, bias, scratch);
}

int emc_conv_direct(int level, size_t m, int cout, int kernel, int channels, size_t paddedWidth, const float *x,
                    const float *w, float *y, float *scratch) {
    const size_t C = channels;
    struct walk at = {1, 1, m, 0, 0, C, paddedWidth * C, 0, 0, cout};
    return convolve(level, &at, cout, kernel, (size_t)kernel * C, x, w, y, NULL, scratch);
}

// The input gradient of a strided convolution, by phases. Input row iy = S·a + r_y − P (r_y = (iy + P) mod S) is reached
// by the kernel rows ky = r_y + S·t' only, from output rows a − t'; likewise columns. So each of the S² phases
// (r_y, r_x) is a stride-1 convolution of dy with the flipped sub-kernel w'[t][u][co][ci] = W[co][r_y + S(T_y − 1 − t)]
// [r_x + S(T_x − 1 − u)][ci] (T_y = ⌈(K − r_y) / S⌉ taps), whose outputs are every S-th input position: the same tiles,
// writing S·cin apart. A phase with no taps (a 1×1 kernel's odd positions at stride 2) gets zeros.
size_t emc_conv_transposed_scratch(int cin, int kernel, int cout) {
    return (size_t)kernel * kernel * cout * cin + emc_conv_direct_scratch(cin, kernel, cout);
}

int emc_conv_transposed(int level, size_t images, int cin, int kernel, int cout, int stride, int padding, size_t height,
                        size_t width, const float *dyGrid, size_t gridHeight, size_t gridWidth, const float *w, float *dx,
                        float *scratch) {
    if (level < 1) return 0;
    const int S = stride, K = kernel, P = padding, pad = (K + S - 1) / S - 1;
    float *sub = scratch, *packed = scratch + (size_t)K * K * cout * cin;
    // Phase r has taps iff r < K: at S > K (a 1×1 kernel at stride 2) some have none. Then dx is cleared once, and the
    // phases with taps overwrite their positions.
    if (S > K) __builtin_memset(dx, 0, images * height * width * cin * sizeof(float));
    for (int ry = 0; ry < S; ry++) {
        for (int rx = 0; rx < S; rx++) {
            const int ty = ry < K ? (K - ry + S - 1) / S : 0, tx = rx < K ? (K - rx + S - 1) / S : 0;
            const size_t iy0 = (size_t)(((ry - P) % S + S) % S), ix0 = (size_t)(((rx - P) % S + S) % S);
            if (iy0 >= height || ix0 >= width) continue;
            const size_t ny = (height - 1 - iy0) / S + 1, nx = (width - 1 - ix0) / S + 1;
            if (ty == 0 || tx == 0) continue; // zeroed below
            for (int t = 0; t < ty; t++)
                for (int u = 0; u < tx; u++)
                    for (int co = 0; co < cout; co++)
                        for (int ci = 0; ci < cin; ci++)
                            sub[((size_t)(t * tx + u) * cout + co) * cin + ci] =
                                w[(((size_t)co * K + ry + S * (ty - 1 - t)) * K + rx + S * (tx - 1 - u)) * cin + ci];
            const size_t a0 = (iy0 + P - ry) / S, c0 = (ix0 + P - rx) / S;
            const size_t row0 = a0 + pad - (ty - 1), col0 = c0 + pad - (tx - 1), C = cout;
            struct walk at = {images, ny, nx, gridHeight * gridWidth * C, gridWidth * C, C, gridWidth * C,
                              height * width * cin, S * width * cin, (size_t)S * cin};
            convolve(level, &at, cin, ty, (size_t)tx * C, dyGrid + (row0 * gridWidth + col0) * C, sub,
                     dx + (iy0 * width + ix0) * cin, NULL, packed);
        }
    }
    return 1;
}
