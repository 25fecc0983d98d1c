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
#include <immintrin.h>

#define SLAB 256

// The summation runs over `runs` runs of `length` rows each: run r is `length` rows of A from element offset as[r] and of
// B from bs[r], lda and ldb apart (a convolution's weight gradient skips the padded grid's border positions this way,
// and reads every S-th position at stride S); a plain product is one run per slab. A tile keeps its block of C in registers over a slab of about SLAB rows.

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
            const float *ar = a + as[run], *br = b + bs[run];                                              \
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
            const float *ar = a + as[run], *br = b + bs[run];                                              \
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
