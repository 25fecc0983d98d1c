// C += Aᵀ·B for a small C (m×n) and a long summation (k): the weight gradient of a convolution, where k is every output
// pixel of the batch (B·Ho·Wo, 10⁴–10⁵) and m, n are the output channels and the patch size (4–64, 9–300).
//
// OpenBLAS packs both k-long operands before its kernel runs; with m and n this small the packing costs as much as the
// arithmetic (docs/benchmarks.md, "The weight-gradient product"). This kernel reads A and B in place, row by row, and
// keeps a tile of C in registers over a cache-sized slab of k.
//
// Every element of C is one fused multiply-add chain over k in order: c = fma(a[k][i], b[k][j], c) for k = 0, 1, …
// The AVX-512 and AVX2 versions do exactly that per lane, so they give the same bits as each other, whatever the tile.
#include "emc_trainer_kernels.h"
#include "pairs512.h"
#include <immintrin.h>

#define SLAB 256

// The summation runs over `runs` runs of `length` rows each: run r is `length` rows of A from element offset as[r] and of
// B from bs[r], lda and ldb apart (a convolution's weight gradient skips the padded grid's border positions this way,
// and reads every S-th position at stride S); a plain product is one run per slab. A tile keeps its block of C in
// registers over a slab of about SLAB rows.

// One tile: rows i0..i0+R of C, columns n0..n0+V·16 (the last vector masked by `tail`), over `runs` runs (a and b point
// at the tile's first column of A and of B).
#define TILE_AVX512(R, V)                                                                                              \
    static inline __attribute__((always_inline, target("avx512f"))) void tile512_##R##_##V(                         \
        const float *a, size_t lda, const size_t *as, const float *b, size_t ldb, const size_t *bs, size_t runs,      \
        size_t length, float *c, size_t ldc, __mmask16 tail) {                                                         \
        __m512 acc[R][V];                                                                                              \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int v = 0; v < V; v++)                                                                                \
                acc[r][v] = _mm512_maskz_loadu_ps(v == V - 1 ? tail : 0xFFFF, c + r * ldc + v * 16);                  \
        for (size_t run = 0; run < runs; run++) {                                                                      \
            const float *ar = a + as[run], *br = b + bs[run];                                                          \
            for (size_t k = 0; k < length; k++) {                                                                      \
                __m512 bv[V];                                                                                          \
                for (int v = 0; v < V; v++) bv[v] = _mm512_maskz_loadu_ps(v == V - 1 ? tail : 0xFFFF, br + v * 16);  \
                for (int r = 0; r < R; r++) {                                                                          \
                    __m512 av = _mm512_set1_ps(ar[r]);                                                                 \
                    for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);                     \
                }                                                                                                      \
                ar += lda;                                                                                             \
                br += ldb;                                                                                             \
            }                                                                                                          \
        }                                                                                                              \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int v = 0; v < V; v++)                                                                                \
                _mm512_mask_storeu_ps(c + r * ldc + v * 16, v == V - 1 ? tail : 0xFFFF, acc[r][v]);                   \
    }

TILE_AVX512(8, 2)
TILE_AVX512(4, 2)
TILE_AVX512(1, 2)
TILE_AVX512(8, 1)
TILE_AVX512(4, 1)
TILE_AVX512(1, 1)

#define RUN_ARGS(i, n0) a + (i), lda, as, b + (n0), ldb, bs, count, length, c + (i) * ldc + (n0), ldc

__attribute__((target("avx512f"))) static void tall_avx512(int m, int n, size_t runs, size_t length, const float *a,
                                                           size_t lda, const size_t *runA, const float *b, size_t ldb,
                                                           const size_t *runB, float *c, size_t ldc) {
    const size_t perSlab = length >= SLAB ? 1 : SLAB / length;
    for (size_t r0 = 0; r0 < runs; r0 += perSlab) {
        const size_t count = runs - r0 < perSlab ? runs - r0 : perSlab;
        const size_t *as = runA + r0, *bs = runB + r0;
        for (int n0 = 0; n0 < n; n0 += 32) {
            int width = n - n0 < 32 ? n - n0 : 32;
            int rest = width > 16 ? width - 16 : width;
            __mmask16 tail = (__mmask16)(rest == 16 ? 0xFFFF : (1u << rest) - 1);
            int i = 0;
            if (width > 16) {
                for (; i + 8 <= m; i += 8) tile512_8_2(RUN_ARGS(i, n0), tail);
                for (; i + 4 <= m; i += 4) tile512_4_2(RUN_ARGS(i, n0), tail);
                for (; i < m; i++) tile512_1_2(RUN_ARGS(i, n0), tail);
            } else {
                for (; i + 8 <= m; i += 8) tile512_8_1(RUN_ARGS(i, n0), tail);
                for (; i + 4 <= m; i += 4) tile512_4_1(RUN_ARGS(i, n0), tail);
                for (; i < m; i++) tile512_1_1(RUN_ARGS(i, n0), tail);
            }
        }
    }
}

// AVX2: 8 lanes, a tile of R×V ≤ 12 accumulators in the 16 ymm registers; the tail masked with maskload/maskstore.
#define TILE_AVX2(R, V)                                                                                                \
    static inline __attribute__((always_inline, target("avx2,fma"))) void tile256_##R##_##V(                        \
        const float *a, size_t lda, const size_t *as, const float *b, size_t ldb, const size_t *bs, size_t runs,      \
        size_t length, float *c, size_t ldc, __m256i tail) {                                                           \
        const __m256i all = _mm256_set1_epi32(-1);                                                                     \
        __m256 acc[R][V];                                                                                              \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int v = 0; v < V; v++)                                                                                \
                acc[r][v] = _mm256_maskload_ps(c + r * ldc + v * 8, v == V - 1 ? tail : all);                         \
        for (size_t run = 0; run < runs; run++) {                                                                      \
            const float *ar = a + as[run], *br = b + bs[run];                                                          \
            for (size_t k = 0; k < length; k++) {                                                                      \
                __m256 bv[V];                                                                                          \
                for (int v = 0; v < V; v++) bv[v] = _mm256_maskload_ps(br + v * 8, v == V - 1 ? tail : all);           \
                for (int r = 0; r < R; r++) {                                                                          \
                    __m256 av = _mm256_broadcast_ss(ar + r);                                                           \
                    for (int v = 0; v < V; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);                     \
                }                                                                                                      \
                ar += lda;                                                                                             \
                br += ldb;                                                                                             \
            }                                                                                                          \
        }                                                                                                              \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int v = 0; v < V; v++)                                                                                \
                _mm256_maskstore_ps(c + r * ldc + v * 8, v == V - 1 ? tail : all, acc[r][v]);                         \
    }

TILE_AVX2(4, 3)
TILE_AVX2(1, 3)
TILE_AVX2(4, 2)
TILE_AVX2(1, 2)
TILE_AVX2(4, 1)
TILE_AVX2(1, 1)

__attribute__((target("avx2,fma"))) static void tall_avx2(int m, int n, size_t runs, size_t length, const float *a,
                                                          size_t lda, const size_t *runA, const float *b, size_t ldb,
                                                          const size_t *runB, float *c, size_t ldc) {
    const size_t perSlab = length >= SLAB ? 1 : SLAB / length;
    for (size_t r0 = 0; r0 < runs; r0 += perSlab) {
        const size_t count = runs - r0 < perSlab ? runs - r0 : perSlab;
        const size_t *as = runA + r0, *bs = runB + r0;
        for (int n0 = 0; n0 < n; n0 += 24) {
            int width = n - n0 < 24 ? n - n0 : 24;
            int vectors = (width + 7) / 8;
            int rest = width - (vectors - 1) * 8;
            __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            int i = 0;
            switch (vectors) {
            case 3:
                for (; i + 4 <= m; i += 4) tile256_4_3(RUN_ARGS(i, n0), tail);
                for (; i < m; i++) tile256_1_3(RUN_ARGS(i, n0), tail);
                break;
            case 2:
                for (; i + 4 <= m; i += 4) tile256_4_2(RUN_ARGS(i, n0), tail);
                for (; i < m; i++) tile256_1_2(RUN_ARGS(i, n0), tail);
                break;
            default:
                for (; i + 4 <= m; i += 4) tile256_4_1(RUN_ARGS(i, n0), tail);
                for (; i < m; i++) tile256_1_1(RUN_ARGS(i, n0), tail);
                break;
            }
        }
    }
}

int emc_gemm_tall_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
}

// Pairs (AVX-512, m ≤ 8 rows of C, n ≤ 24 columns per segment): with 8 rows a 16-lane tile row is half empty, and at
// n = 9 (a 3×3 kernel row over 3 input channels) most of a vector is. Here lane 2i + g of accumulator p holds C[i][2p + g]:
// A's row (a[k][0..7]) is loaded once and each value doubled into two lanes, and B's columns 2p, 2p + 1 come in one
// 64-bit broadcast, so every lane of every FMA is a product C needs. Up to 3 segments (a convolution's kernel rows: B
// segB floats further on, C segC columns further on) share the A row. Each lane is still the one chain over k in order:
// the same bits as the plain kernels.
#define PAIRS(PP, NS)                                                                                                  \
    __attribute__((target("avx512f"))) static void pairs_##PP##_##NS(                                                  \
        int m, int n, size_t segB, size_t segC, size_t runs, size_t length, const float *a, size_t lda,               \
        const size_t *runA, const float *b, size_t ldb, const size_t *runB, float *c, size_t ldc) {                   \
        const __m512i twice = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);                       \
        const __mmask16 rowsMask = (__mmask16)((1u << m) - 1);                                                         \
        const int odd = n & 1;                                                                                         \
        __m512 acc[NS][PP];                                                                                            \
        for (int s = 0; s < NS; s++)                                                                                   \
            for (int p = 0; p < PP; p++) {                                                                             \
                float lanes[16] = {0};                                                                                 \
                for (int i = 0; i < m; i++)                                                                            \
                    for (int g = 0; g < 2; g++)                                                                        \
                        if (2 * p + g < n) lanes[2 * i + g] = c[i * ldc + s * segC + 2 * p + g];                       \
                acc[s][p] = _mm512_loadu_ps(lanes);                                                                    \
            }                                                                                                          \
        for (size_t run = 0; run < runs; run++) {                                                                      \
            const float *ar = a + runA[run], *br = b + runB[run];                                                      \
            for (size_t k = 0; k < length; k++) {                                                                      \
                __m512 av = _mm512_permutexvar_ps(twice, _mm512_maskz_loadu_ps(rowsMask, ar));                        \
                for (int s = 0; s < NS; s++) {                                                                         \
                    const float *bs = br + s * segB;                                                                   \
                    for (int p = 0; p < PP; p++) {                                                                     \
                        __m512 bv = p == PP - 1 && odd ? broadcast_single512(bs + 2 * p)                               \
                                                       : broadcast_pair512(bs + 2 * p);                                \
                        acc[s][p] = _mm512_fmadd_ps(bv, av, acc[s][p]);                                                \
                    }                                                                                                  \
                }                                                                                                      \
                ar += lda;                                                                                             \
                br += ldb;                                                                                             \
            }                                                                                                          \
        }                                                                                                              \
        for (int s = 0; s < NS; s++)                                                                                   \
            for (int p = 0; p < PP; p++) {                                                                             \
                float lanes[16];                                                                                       \
                _mm512_storeu_ps(lanes, acc[s][p]);                                                                    \
                for (int i = 0; i < m; i++)                                                                            \
                    for (int g = 0; g < 2; g++)                                                                        \
                        if (2 * p + g < n) c[i * ldc + s * segC + 2 * p + g] = lanes[2 * i + g];                       \
            }                                                                                                          \
    }
PAIRS(1, 1)
PAIRS(1, 2)
PAIRS(1, 3)
PAIRS(2, 1)
PAIRS(2, 2)
PAIRS(2, 3)
PAIRS(3, 1)
PAIRS(3, 2)
PAIRS(3, 3)
PAIRS(4, 1)
PAIRS(4, 2)
PAIRS(4, 3)
PAIRS(5, 1)
PAIRS(5, 2)
PAIRS(5, 3)
PAIRS(6, 1)
PAIRS(6, 2)
PAIRS(6, 3)
PAIRS(7, 1)
PAIRS(7, 2)
PAIRS(7, 3)
PAIRS(8, 1)
PAIRS(8, 2)
PAIRS(8, 3)
PAIRS(9, 1)
PAIRS(9, 2)
PAIRS(10, 1)
PAIRS(10, 2)
PAIRS(11, 1)
PAIRS(11, 2)
PAIRS(12, 1)
PAIRS(12, 2)

typedef void (*pairs_kernel)(int, int, size_t, size_t, size_t, size_t, const float *, size_t, const size_t *, const float *,
                             size_t, const size_t *, float *, size_t);
// [pairs per segment − 1][segments per pass − 1]: at most 24 accumulators.
static const pairs_kernel pairs_kernels[12][3] = {
    {pairs_1_1, pairs_1_2, pairs_1_3},
    {pairs_2_1, pairs_2_2, pairs_2_3},
    {pairs_3_1, pairs_3_2, pairs_3_3},
    {pairs_4_1, pairs_4_2, pairs_4_3},
    {pairs_5_1, pairs_5_2, pairs_5_3},
    {pairs_6_1, pairs_6_2, pairs_6_3},
    {pairs_7_1, pairs_7_2, pairs_7_3},
    {pairs_8_1, pairs_8_2, pairs_8_3},
    {pairs_9_1, pairs_9_2, NULL},
    {pairs_10_1, pairs_10_2, NULL},
    {pairs_11_1, pairs_11_2, NULL},
    {pairs_12_1, pairs_12_2, NULL}};

int emc_gemm_tall_runs(int level, int m, int n, size_t runs, size_t length, const float *a, size_t lda,
                       const size_t *runA, const float *b, size_t ldb, const size_t *runB, float *c, size_t ldc) {
    if (level >= 2) { tall_avx512(m, n, runs, length, a, lda, runA, b, ldb, runB, c, ldc); return 1; }
    if (level == 1) { tall_avx2(m, n, runs, length, a, lda, runA, b, ldb, runB, c, ldc); return 1; }
    return 0;
}

int emc_gemm_tall_accumulate(int level, int m, int n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                             float *c, size_t ldc) {
    if (level < 1) return 0;
    // One run per slab of SLAB rows, in order: the same chain as a single run of k rows.
    for (size_t k0 = 0; k0 < k; k0 += SLAB) {
        size_t startA = k0 * lda, startB = k0 * ldb, kc = k - k0 < SLAB ? k - k0 : SLAB;
        emc_gemm_tall_runs(level, m, n, 1, kc, a, lda, &startA, b, ldb, &startB, c, ldc);
    }
    return 1;
}

int emc_conv_weight_gradient_pairs(int level, int cout, int kernel, int cin) {
    return level >= 2 && cout <= 8 && kernel * cin <= 24;
}

int emc_conv_weight_gradient_columns(int level, int cout, int kernel, int cin, int c0, int c1, size_t runs, size_t length,
                                     const float *dy, size_t ldDy, const size_t *runDy, const float *x, size_t ldx,
                                     const size_t *runX, size_t rowStep, float *dW) {
    const int n = kernel * cin, patch = kernel * n, columns = c1 - c0;
    if (c0 < 0 || c1 > n) return -1;
    if (columns < 1) return 1;
    if (emc_conv_weight_gradient_pairs(level, cout, kernel, cin)) {
        const int pairs = (columns + 1) / 2, perPass = 24 / pairs < 3 ? 24 / pairs : 3;
        for (int ky = 0; ky < kernel; ky += perPass) {
            const int count = kernel - ky < perPass ? kernel - ky : perPass;
            pairs_kernels[pairs - 1][count - 1](cout, columns, rowStep, (size_t)n, runs, length, dy, ldDy, runDy,
                                                x + ky * rowStep + c0, ldx, runX, dW + ky * n + c0, (size_t)patch);
        }
        return 1;
    }
    for (int ky = 0; ky < kernel; ky++)
        if (!emc_gemm_tall_runs(level, cout, columns, runs, length, dy, ldDy, runDy, x + ky * rowStep + c0, ldx, runX,
                                dW + ky * n + c0, (size_t)patch))
            return 0;
    return 1;
}

int emc_conv_weight_gradient(int level, int cout, int kernel, int cin, size_t runs, size_t length, const float *dy,
                             size_t ldDy, const size_t *runDy, const float *x, size_t ldx, const size_t *runX,
                             size_t rowStep, float *dW) {
    return emc_conv_weight_gradient_columns(level, cout, kernel, cin, 0, kernel * cin, runs, length, dy, ldDy, runDy, x,
                                            ldx, runX, rowStep, dW);
}
