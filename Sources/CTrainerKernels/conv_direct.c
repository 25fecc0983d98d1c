// A stride-1 "same" convolution without im2row, over zero-padded images (docs/benchmarks.md, "Direct convolutions").
//
// With the input padded to Hp × Wp (Hp = H + K − 1, Wp = W + K − 1) and the images of the batch one after the other, the
// K·C floats that kernel row ky of output position q = (b·Hp + oy)·Wp + ox reads are contiguous and start at
// (q + ky·Wp)·C: the patches of consecutive positions are overlapping rows with stride C. So
//     y[q][co] = Σ_ky Σ_{j < K·C} x[(q + ky·Wp)·C + j] · w[ky][j][co]
// over every q of the padded grid. The positions with ox ≥ W or oy ≥ H are computed and thrown away: the dense form
// (emc_conv_direct_dense, what the layers call) stores only the others, each straight into its row of the NHWC output.
// OpenBLAS cannot read such rows (it requires lda ≥ k), and im2row writes them out 9 times over, which at 8–32
// channels made the convolution bound by memory traffic. The same kernel gives the input gradient (the padded output
// gradient with the flipped kernel).
//
// Every output element is one fused multiply-add chain over (ky, j) in order, from zero, at both levels: the same bits.
#include "emc_trainer_kernels.h"
#include <immintrin.h>

// A tile at grid position q writes to y + q·cout, or with a grid shape to the dense output row of each position that
// lies in an image's top-left H × W (nothing for the others), and adds the bias when there is one: after the chain, so
// the same bits as adding it afterwards.
struct position { size_t b, oy, ox; };

static inline struct position locate(const emc_grid_shape *grid, size_t q) {
    size_t image = grid->paddedHeight * grid->paddedWidth, r = q % image;
    return (struct position){q / image, r / grid->paddedWidth, r % grid->paddedWidth};
}

// The output row of the position `at`, or NULL outside the valid H × W; then steps `at` to the next position.
static inline float *target(const emc_grid_shape *grid, struct position *at, float *y, size_t cout) {
    float *to = at->oy < grid->height && at->ox < grid->width ? y + ((at->b * grid->height + at->oy) * grid->width + at->ox) * cout : NULL;
    if (++at->ox == grid->paddedWidth) {
        at->ox = 0;
        if (++at->oy == grid->paddedHeight) { at->oy = 0; at->b++; }
    }
    return to;
}
// A tile's arguments at grid position q and output channel co + o (inside the drivers below).
#define TILE_ARGS(q, o)                                                                                                \
    x + (q) * C, C, KC, K, rowStep, wc + (o), cout, (grid ? yc : yc + (q) * cout) + (o), grid, (q), (bc ? bc + (o) : NULL)

#define TILE512(P, V)                                                                                                  \
    static inline __attribute__((always_inline, target("avx512f"))) void conv512_##P##_##V(                          \
        const float *x, size_t C, size_t KC, int K, size_t rowStep, const float *w, size_t cout, float *y,           \
        const emc_grid_shape *grid, size_t q, const float *bias, __mmask16 tail) {                                    \
        __m512 acc[P][V];                                                                                              \
        for (int p = 0; p < P; p++)                                                                                    \
            for (int v = 0; v < V; v++) acc[p][v] = _mm512_setzero_ps();                                               \
        for (int ky = 0; ky < K; ky++) {                                                                               \
            const float *xr = x + ky * rowStep;                                                                        \
            const float *wr = w + (size_t)ky * KC * cout;                                                              \
            for (size_t j = 0; j < KC; j++) {                                                                          \
                __m512 wv[V];                                                                                          \
                for (int v = 0; v < V; v++)                                                                            \
                    wv[v] = _mm512_maskz_loadu_ps(v == V - 1 ? tail : 0xFFFF, wr + j * cout + v * 16);                \
                for (int p = 0; p < P; p++) {                                                                          \
                    __m512 a = _mm512_set1_ps(xr[p * C + j]);                                                          \
                    for (int v = 0; v < V; v++) acc[p][v] = _mm512_fmadd_ps(a, wv[v], acc[p][v]);                      \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        struct position at = grid ? locate(grid, q) : (struct position){0, 0, 0};                                      \
        for (int p = 0; p < P; p++) {                                                                                  \
            float *to = y + p * cout;                                                                                  \
            if (grid) {                                                                                                \
                to = target(grid, &at, y, cout);                                                                       \
                if (!to) continue;                                                                                     \
            }                                                                                                          \
            for (int v = 0; v < V; v++) {                                                                              \
                __mmask16 mask = v == V - 1 ? tail : 0xFFFF;                                                           \
                __m512 value = bias ? _mm512_add_ps(acc[p][v], _mm512_maskz_loadu_ps(mask, bias + v * 16)) : acc[p][v];\
                _mm512_mask_storeu_ps(to + v * 16, mask, value);                                                       \
            }                                                                                                          \
        }                                                                                                              \
    }

TILE512(16, 1)
TILE512(1, 1)
TILE512(12, 2)
TILE512(1, 2)
TILE512(6, 4)
TILE512(1, 4)
TILE512(6, 2)
TILE512(6, 1)

__attribute__((target("avx512f"))) static void conv_avx512(size_t m, int cout, int K, int C, size_t wp, const float *x,
                                                           const float *w, float *y, const emc_grid_shape *grid, const float *bias) {
    const size_t KC = (size_t)K * C, rowStep = wp * C;
    for (int co = 0; co < cout; co += 64) {
        const float *bc = bias ? bias + co : NULL;
        int width = cout - co < 64 ? cout - co : 64;
        int vectors = (width + 15) / 16;
        int rest = width - (vectors - 1) * 16;
        __mmask16 tail = (__mmask16)(rest == 16 ? 0xFFFF : (1u << rest) - 1);
        const float *wc = w + co;
        float *yc = y + co;
        size_t q = 0;
        switch (vectors) {
        case 1:
            for (; q + 16 <= m; q += 16) conv512_16_1(TILE_ARGS(q, 0), tail);
            for (; q < m; q++) conv512_1_1(TILE_ARGS(q, 0), tail);
            break;
        case 2:
            for (; q + 12 <= m; q += 12) conv512_12_2(TILE_ARGS(q, 0), tail);
            for (; q < m; q++) conv512_1_2(TILE_ARGS(q, 0), tail);
            break;
        default: {
            // 3 or 4 vectors: a 4-vector tile with the missing vectors masked off entirely.
            for (; q + 6 <= m; q += 6) {
                if (vectors == 4) conv512_6_4(TILE_ARGS(q, 0), tail);
                else {
                    conv512_6_2(TILE_ARGS(q, 0), 0xFFFF);
                    conv512_6_1(TILE_ARGS(q, 32), tail);
                }
            }
            for (; q < m; q++) {
                if (vectors == 4) conv512_1_4(TILE_ARGS(q, 0), tail);
                else {
                    conv512_1_2(TILE_ARGS(q, 0), 0xFFFF);
                    conv512_1_1(TILE_ARGS(q, 32), tail);
                }
            }
        }
        }
    }
}

#define TILE256(P, V)                                                                                                  \
    static inline __attribute__((always_inline, target("avx2,fma"))) void conv256_##P##_##V(                        \
        const float *x, size_t C, size_t KC, int K, size_t rowStep, const float *w, size_t cout, float *y,           \
        const emc_grid_shape *grid, size_t q, const float *bias, __m256i tail) {                                      \
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
                    wv[v] = _mm256_maskload_ps(wr + j * cout + v * 8, v == V - 1 ? tail : all);                        \
                for (int p = 0; p < P; p++) {                                                                          \
                    __m256 a = _mm256_broadcast_ss(xr + p * C + j);                                                    \
                    for (int v = 0; v < V; v++) acc[p][v] = _mm256_fmadd_ps(a, wv[v], acc[p][v]);                      \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        struct position at = grid ? locate(grid, q) : (struct position){0, 0, 0};                                      \
        for (int p = 0; p < P; p++) {                                                                                  \
            float *to = y + p * cout;                                                                                  \
            if (grid) {                                                                                                \
                to = target(grid, &at, y, cout);                                                                       \
                if (!to) continue;                                                                                     \
            }                                                                                                          \
            for (int v = 0; v < V; v++) {                                                                              \
                __m256i mask = v == V - 1 ? tail : all;                                                                \
                __m256 value = bias ? _mm256_add_ps(acc[p][v], _mm256_maskload_ps(bias + v * 8, mask)) : acc[p][v];    \
                _mm256_maskstore_ps(to + v * 8, mask, value);                                                          \
            }                                                                                                          \
        }                                                                                                              \
    }

TILE256(12, 1)
TILE256(1, 1)
TILE256(6, 2)
TILE256(1, 2)

__attribute__((target("avx2,fma"))) static void conv_avx2(size_t m, int cout, int K, int C, size_t wp, const float *x,
                                                          const float *w, float *y, const emc_grid_shape *grid, const float *bias) {
    const size_t KC = (size_t)K * C, rowStep = wp * C;
    for (int co = 0; co < cout; co += 16) {
        const float *bc = bias ? bias + co : NULL;
        int width = cout - co < 16 ? cout - co : 16;
        int vectors = (width + 7) / 8;
        int rest = width - (vectors - 1) * 8;
        __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const float *wc = w + co;
        float *yc = y + co;
        size_t q = 0;
        if (vectors == 1) {
            for (; q + 12 <= m; q += 12) conv256_12_1(TILE_ARGS(q, 0), tail);
            for (; q < m; q++) conv256_1_1(TILE_ARGS(q, 0), tail);
        } else {
            for (; q + 6 <= m; q += 6) conv256_6_2(TILE_ARGS(q, 0), tail);
            for (; q < m; q++) conv256_1_2(TILE_ARGS(q, 0), tail);
        }
    }
}

int emc_conv_direct_dense(int level, size_t m, int cout, int kernel, int channels, const emc_grid_shape *grid,
                          const float *x, const float *w, float *y, const float *bias) {
    if (level >= 2) { conv_avx512(m, cout, kernel, channels, grid->paddedWidth, x, w, y, grid, bias); return 1; }
    if (level == 1) { conv_avx2(m, cout, kernel, channels, grid->paddedWidth, x, w, y, grid, bias); return 1; }
    return 0;
}

int emc_conv_direct(int level, size_t m, int cout, int kernel, int channels, size_t paddedWidth, const float *x,
                    const float *w, float *y) {
    if (level >= 2) { conv_avx512(m, cout, kernel, channels, paddedWidth, x, w, y, NULL, NULL); return 1; }
    if (level == 1) { conv_avx2(m, cout, kernel, channels, paddedWidth, x, w, y, NULL, NULL); return 1; }
    return 0;
}
