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

// BODY for each row of every run in order, `ar` and `br` at that row of A and of B (run r starts at a + RUN_A[r] and
// b + RUN_B[r]; rows lda and ldb apart). Every kernel below walks its runs this way, so each element's chain is over
// the same rows in the same order.
#define FOR_EACH_RUN_ROW(RUN_A, RUN_B, ...)                                                                           \
    for (size_t run = 0; run < runs; run++) {                                                                          \
        const float *ar = a + (RUN_A)[run], *br = b + (RUN_B)[run];                                                    \
        for (size_t k = 0; k < length; k++, ar += lda, br += ldb) { __VA_ARGS__ }                                      \
    }

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
        FOR_EACH_RUN_ROW(as, bs,                                                                                       \
            __m512 bv[V];                                                                                              \
            for (int v = 0; v < V; v++) bv[v] = _mm512_maskz_loadu_ps(v == V - 1 ? tail : 0xFFFF, br + v * 16);        \
            for (int r = 0; r < R; r++) {                                                                              \
                __m512 av = _mm512_set1_ps(ar[r]);                                                                     \
                for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);                         \
            }                                                                                                          \
        )                                                                                                              \
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
        FOR_EACH_RUN_ROW(as, bs,                                                                                       \
            __m256 bv[V];                                                                                              \
            for (int v = 0; v < V; v++) bv[v] = _mm256_maskload_ps(br + v * 8, v == V - 1 ? tail : all);               \
            for (int r = 0; r < R; r++) {                                                                              \
                __m256 av = _mm256_broadcast_ss(ar + r);                                                               \
                for (int v = 0; v < V; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);                         \
            }                                                                                                          \
        )                                                                                                              \
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
        FOR_EACH_RUN_ROW(runA, runB,                                                                                   \
            __m512 av = _mm512_permutexvar_ps(twice, _mm512_maskz_loadu_ps(rowsMask, ar));                             \
            for (int s = 0; s < NS; s++) {                                                                             \
                const float *bs = br + s * segB;                                                                       \
                for (int p = 0; p < PP; p++) {                                                                         \
                    __m512 bv = p == PP - 1 && odd ? broadcast_single512(bs + 2 * p)                                   \
                                                   : broadcast_pair512(bs + 2 * p);                                    \
                    acc[s][p] = _mm512_fmadd_ps(bv, av, acc[s][p]);                                                    \
                }                                                                                                      \
            }                                                                                                          \
        )                                                                                                              \
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

// Channels in lanes (more output channels than a kernel row has columns: a first layer's 3 or 9 columns against 16–64
// channels, where the tiles above fill 3 or 9 of a vector's 16 lanes): lane l of accumulator [r][v] holds C[v·L + l][col r],
// L the vector's lanes. A's row (the output gradient's channels) is loaded as V vectors, and each of B's R columns is
// broadcast to every lane: column r is J·s + j, the j-th of segment s (a convolution's kernel rows, B segB floats further
// on, C segC columns further on). Each lane is still the one chain over k in order, c = fma(b, a, c), whose product is
// exact whichever operand comes first: the same bits as the tiles above. With `db` (not NULL) the same pass adds A's
// column sums to db[0..<m], each in row order (db[i] += a[k][i]: emc_sum_rows's general path).
#define CHANNEL_LANES(NAME, TARGET, VEC, L, MASKS, LOAD, BROADCAST, FMA, ADD, STORE, V, R)                              \
    __attribute__((target(TARGET))) static void NAME##_##V##_##R(                                                      \
        int m, int J, size_t segB, size_t segC, size_t runs, size_t length, const float *a, size_t lda,               \
        const size_t *runA, const float *b, size_t ldb, const size_t *runB, float *c, size_t ldc, float *db) {        \
        MASKS(V)                                                                                                       \
        VEC sum[V];                                                                                                    \
        for (int v = 0; v < V; v++) {                                                                                  \
            float lanes[L] = {0};                                                                                      \
            for (int l = 0; l < L && v * L + l < m && db; l++) lanes[l] = db[v * L + l];                               \
            sum[v] = LOAD(lanes, v, 1);                                                                                \
        }                                                                                                              \
        size_t colB[R], colC[R];                                                                                       \
        for (int r = 0; r < R; r++) {                                                                                  \
            colB[r] = (size_t)(r / J) * segB + (size_t)(r % J);                                                        \
            colC[r] = (size_t)(r / J) * segC + (size_t)(r % J);                                                        \
        }                                                                                                              \
        VEC acc[R][V];                                                                                                 \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int v = 0; v < V; v++) {                                                                              \
                float lanes[L] = {0};                                                                                  \
                for (int l = 0; l < L && v * L + l < m; l++) lanes[l] = c[(size_t)(v * L + l) * ldc + colC[r]];       \
                acc[r][v] = LOAD(lanes, v, 1);                                                                         \
            }                                                                                                          \
        FOR_EACH_RUN_ROW(runA, runB,                                                                                   \
            VEC av[V];                                                                                                 \
            for (int v = 0; v < V; v++) {                                                                              \
                av[v] = LOAD(ar + v * L, v, 0);                                                                        \
                sum[v] = ADD(sum[v], av[v]);                                                                           \
            }                                                                                                          \
            for (int r = 0; r < R; r++) {                                                                              \
                VEC bx = BROADCAST(br + colB[r]);                                                                      \
                for (int v = 0; v < V; v++) acc[r][v] = FMA(bx, av[v], acc[r][v]);                                     \
            }                                                                                                          \
        )                                                                                                              \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int v = 0; v < V; v++) {                                                                              \
                float lanes[L];                                                                                        \
                STORE(lanes, acc[r][v]);                                                                               \
                for (int l = 0; l < L && v * L + l < m; l++) c[(size_t)(v * L + l) * ldc + colC[r]] = lanes[l];       \
            }                                                                                                          \
        for (int v = 0; v < V && db; v++) {                                                                            \
            float lanes[L];                                                                                            \
            STORE(lanes, sum[v]);                                                                                      \
            for (int l = 0; l < L && v * L + l < m; l++) db[v * L + l] = lanes[l];                                     \
        }                                                                                                              \
    }

// The lanes of vector v that hold channels (< m); a load of vector v reads only those (`full`: a whole scratch array).
#define MASKS512(V)                                                                                                    \
    __mmask16 masks[V];                                                                                                \
    for (int v = 0; v < V; v++) masks[v] = (__mmask16)(m - v * 16 >= 16 ? 0xFFFF : (1u << (m - v * 16)) - 1);
#define LOAD512(p, v, full) _mm512_maskz_loadu_ps((full) ? (__mmask16)0xFFFF : masks[v], (p))
#define BROADCAST512(p) _mm512_set1_ps(*(p))
#define MASKS256(V)                                                                                                    \
    __m256i masks[V];                                                                                                  \
    for (int v = 0; v < V; v++)                                                                                        \
        masks[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(m - v * 8), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#define LOAD256(p, v, full) _mm256_maskload_ps((p), (full) ? _mm256_set1_epi32(-1) : masks[v])
#define BROADCAST256(p) _mm256_broadcast_ss(p)

// AVX-512: up to 24 accumulators (V·R), AVX2 up to 10 (with the V sums, the V rows of A and a broadcast: 15 registers).
#define LANES512(V, R) CHANNEL_LANES(lanes512, "avx512f", __m512, 16, MASKS512, LOAD512, BROADCAST512, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, V, R)
#define LANES256(V, R) CHANNEL_LANES(lanes256, "avx2,fma", __m256, 8, MASKS256, LOAD256, BROADCAST256, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, V, R)
#define LANES_1_TO_6(X, V) X(V, 1) X(V, 2) X(V, 3) X(V, 4) X(V, 5) X(V, 6)
#define LANES_7_TO_12(X, V) X(V, 7) X(V, 8) X(V, 9) X(V, 10) X(V, 11) X(V, 12)
#define LANES_13_TO_24(X, V) X(V, 13) X(V, 14) X(V, 15) X(V, 16) X(V, 17) X(V, 18) X(V, 19) X(V, 20) X(V, 21) X(V, 22) X(V, 23) X(V, 24)
LANES_1_TO_6(LANES512, 1) LANES_7_TO_12(LANES512, 1) LANES_13_TO_24(LANES512, 1) LANES512(1, 25) LANES512(1, 26) LANES512(1, 27)
LANES_1_TO_6(LANES512, 2) LANES_7_TO_12(LANES512, 2) LANES512(2, 13)
LANES_1_TO_6(LANES256, 1) LANES_7_TO_12(LANES256, 1)
LANES_1_TO_6(LANES256, 2)

typedef void (*lanes_kernel)(int, int, size_t, size_t, size_t, size_t, const float *, size_t, const size_t *, const float *,
                             size_t, const size_t *, float *, size_t, float *);
// [vectors − 1][columns − 1]
static const lanes_kernel lanes512_kernels[2][27] = {
    {lanes512_1_1, lanes512_1_2, lanes512_1_3, lanes512_1_4, lanes512_1_5, lanes512_1_6, lanes512_1_7, lanes512_1_8,
     lanes512_1_9, lanes512_1_10, lanes512_1_11, lanes512_1_12, lanes512_1_13, lanes512_1_14, lanes512_1_15,
     lanes512_1_16, lanes512_1_17, lanes512_1_18, lanes512_1_19, lanes512_1_20, lanes512_1_21, lanes512_1_22,
     lanes512_1_23, lanes512_1_24, lanes512_1_25, lanes512_1_26, lanes512_1_27},
    {lanes512_2_1, lanes512_2_2, lanes512_2_3, lanes512_2_4, lanes512_2_5, lanes512_2_6, lanes512_2_7, lanes512_2_8,
     lanes512_2_9, lanes512_2_10, lanes512_2_11, lanes512_2_12, lanes512_2_13}};
static const lanes_kernel lanes256_kernels[2][12] = {
    {lanes256_1_1, lanes256_1_2, lanes256_1_3, lanes256_1_4, lanes256_1_5, lanes256_1_6, lanes256_1_7, lanes256_1_8,
     lanes256_1_9, lanes256_1_10, lanes256_1_11, lanes256_1_12},
    {lanes256_2_1, lanes256_2_2, lanes256_2_3, lanes256_2_4, lanes256_2_5, lanes256_2_6}};

// Whether a weight gradient of m output channels over n columns per kernel row takes fewer vector FMAs with the channels
// in lanes (n per row of B, times the channel vectors) than with the columns in lanes (the tiles: m times the column
// vectors); on a tie the tiles, which broadcast less.
static int channels_in_lanes(int level, int m, int n) {
    const int lanes = level >= 2 ? 16 : 8;
    return level >= 1 && n * ((m + lanes - 1) / lanes) < m * ((n + lanes - 1) / lanes);
}

// dW's columns c0..<c1 of every kernel row with the channels in lanes: channels in groups of up to 2 vectors, each
// group's columns in tiles of up to `most` accumulators a vector, as many kernel rows per pass as fit; db's sums in each
// group's first pass.
static void conv_weight_gradient_lanes(int level, int cout, int kernel, int n, int c0, int c1, size_t runs, size_t length,
                                       const float *dy, size_t ldDy, const size_t *runDy, const float *x, size_t ldx,
                                       const size_t *runX, size_t rowStep, float *dW, size_t patch, float *db) {
    const int lanes = level >= 2 ? 16 : 8, columns = c1 - c0;
    // Two vectors a group share each broadcast; one vector a group, where that takes every kernel row in one pass and two
    // would not, reads dy once instead of once per pass.
    const int oneVector = level >= 2 ? 27 : 10, twoVectors = level >= 2 ? 13 : 5;
    const int group = columns * kernel <= oneVector && columns * kernel > twoVectors ? lanes : 2 * lanes;
    for (int g = 0; g < cout; g += group) {
        const int m = cout - g < group ? cout - g : group, vectors = (m + lanes - 1) / lanes;
        const int most = vectors == 1 ? oneVector : twoVectors, chunks = (columns + most - 1) / most, width = (columns + chunks - 1) / chunks;
        const int rowsPerPass = columns <= most ? (most / columns < kernel ? most / columns : kernel) : 1;
        for (int j0 = 0; j0 < columns; j0 += width) {
            const int J = columns - j0 < width ? columns - j0 : width;
            for (int ky = 0; ky < kernel; ky += rowsPerPass) {
                const int rows = kernel - ky < rowsPerPass ? kernel - ky : rowsPerPass;
                const lanes_kernel f = level >= 2 ? lanes512_kernels[vectors - 1][rows * J - 1] : lanes256_kernels[vectors - 1][rows * J - 1];
                f(m, J, rowStep, (size_t)n, runs, length, dy + g, ldDy, runDy, x + ky * rowStep + c0 + j0, ldx, runX,
                  dW + (size_t)g * patch + (size_t)ky * n + c0 + j0, patch, db && j0 == 0 && ky == 0 ? db + g : NULL);
            }
        }
    }
}

int emc_conv_weight_gradient_pairs(int level, int cout, int kernel, int cin) {
    return level >= 2 && cout <= 8 && kernel * cin <= 24;
}

// db[0..<m] += Σ over the runs' rows of a[k][i], each in row order (emc_sum_rows's general path, run by run).
static void sum_runs(int m, size_t runs, size_t length, const float *a, size_t lda, const size_t *runA, float *db) {
    for (size_t run = 0; run < runs; run++) emc_sum_rows_range(db, a + runA[run], length, lda, 0, (size_t)m);
}

int emc_conv_weight_gradient_columns(int level, int cout, int kernel, int cin, int c0, int c1, size_t runs, size_t length,
                                     const float *dy, size_t ldDy, const size_t *runDy, const float *x, size_t ldx,
                                     const size_t *runX, size_t rowStep, float *dW, float *db) {
    const int n = kernel * cin, patch = kernel * n, columns = c1 - c0;
    if (c0 < 0 || c1 > n) return -1;
    if (level < 1) return 0;
    if (columns < 1) {
        if (db) sum_runs(cout, runs, length, dy, ldDy, runDy, db);
        return 1;
    }
    const int pairs = emc_conv_weight_gradient_pairs(level, cout, kernel, cin);
    if (db && (pairs || !channels_in_lanes(level, cout, columns))) sum_runs(cout, runs, length, dy, ldDy, runDy, db);
    if (pairs) {
        const int pairCount = (columns + 1) / 2, perPass = 24 / pairCount < 3 ? 24 / pairCount : 3;
        for (int ky = 0; ky < kernel; ky += perPass) {
            const int count = kernel - ky < perPass ? kernel - ky : perPass;
            pairs_kernels[pairCount - 1][count - 1](cout, columns, rowStep, (size_t)n, runs, length, dy, ldDy, runDy,
                                                x + ky * rowStep + c0, ldx, runX, dW + ky * n + c0, (size_t)patch);
        }
        return 1;
    }
    if (channels_in_lanes(level, cout, columns)) {
        conv_weight_gradient_lanes(level, cout, kernel, n, c0, c1, runs, length, dy, ldDy, runDy, x, ldx, runX, rowStep, dW,
                                   (size_t)patch, db);
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
                             size_t rowStep, float *dW, float *db) {
    return emc_conv_weight_gradient_columns(level, cout, kernel, cin, 0, kernel * cin, runs, length, dy, ldDy, runDy, x,
                                            ldx, runX, rowStep, dW, db);
}
