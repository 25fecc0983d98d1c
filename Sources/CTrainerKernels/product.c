// Products read in place, for a ViT's step: self-attention's six per sample and head (65 tokens, 16–32 values a head:
// 0.1–0.3 MFLOP each, where a BLAS call spends as long packing its operands and scaling C as multiplying), and its
// token-wise linear maps (8,320 rows of 64–256 features at batch 128, where OpenBLAS's packing for each short k panel
// held it to about half the rate of these tiles). Each product reads A and B where they lie (a row of B is contiguous,
// an element of A is broadcast from any stride); only kᵀ, vᵀ and a linear map's Wᵀ are copied.
//
// Every element of a product is one fused multiply-add chain over k in order, c = fma(A(i, k), B(k, j), c) from
// c = 0, then alpha·c, plus the bias or the old C when asked: the AVX2 tiles and the scalar path (machines without
// AVX2) give the same bits, whatever tile or thread an element falls in, so rows split over threads anywhere.
#include "emc_trainer_kernels.h"
#include <immintrin.h>
#include <math.h>

#pragma clang fp contract(off)

// C[i][j] = alpha · Σ_k A(i, k) · B[k][j] (+ bias[j]) (+ C[i][j] when accumulate) for i < m, j < n, k < depth, where
// A(i, k) = a[i·ars + k·aks], B's row k starts at b + k·ldb and C's row i at c + i·ldc.
typedef struct {
    int m, n, depth;
    float alpha;
    const float *a;
    size_t ars, aks;
    const float *b;
    size_t ldb;
    float *c;
    size_t ldc;
    const float *bias;
    int accumulate;
} product;

static inline float finish(const product *p, float acc, int i, int j) {
    float y = p->alpha * acc;
    if (p->bias) y = y + p->bias[j];
    if (p->accumulate) y = y + p->c[i * p->ldc + j];
    return y;
}

static void product_scalar(const product *p) {
    for (int i = 0; i < p->m; i++)
        for (int j = 0; j < p->n; j++) {
            float acc = 0.0f;
            for (int k = 0; k < p->depth; k++) acc = fmaf(p->a[i * p->ars + k * p->aks], p->b[k * p->ldb + j], acc);
            p->c[i * p->ldc + j] = finish(p, acc, i, j);
        }
}

#if defined(__x86_64__)
// A tile of R rows × V vectors of 8 columns in registers over the whole depth; MASKED: the last vector holds only the
// lanes of `tail`.
#define TILE(R, V, MASKED)                                                                                             \
    static inline __attribute__((always_inline, target("avx2,fma"))) void tile_##R##_##V##_##MASKED(                \
        const product *p, int i0, int j0, __m256i tail) {                                                              \
        __m256 acc[R][V];                                                                                              \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int v = 0; v < V; v++) acc[r][v] = _mm256_setzero_ps();                                               \
        const float *row[R], *b = p->b + j0;                                                                           \
        for (int r = 0; r < R; r++) row[r] = p->a + (i0 + r) * p->ars; /* each row's base in its own register */       \
        const size_t aks = p->aks, ldb = p->ldb;                                                                       \
        size_t at = 0;                                                                                                 \
        for (int k = 0; k < p->depth; k++, at += aks, b += ldb) {                                                      \
            __m256 bv[V];                                                                                              \
            for (int v = 0; v < V; v++)                                                                                \
                bv[v] = MASKED && v == V - 1 ? _mm256_maskload_ps(b + v * 8, tail) : _mm256_loadu_ps(b + v * 8);       \
            for (int r = 0; r < R; r++) {                                                                              \
                __m256 av = _mm256_broadcast_ss(row[r] + at);                                                          \
                for (int v = 0; v < V; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);                         \
            }                                                                                                          \
        }                                                                                                              \
        const __m256 alpha = _mm256_set1_ps(p->alpha);                                                                 \
        for (int r = 0; r < R; r++) {                                                                                  \
            float *c = p->c + (i0 + r) * p->ldc + j0;                                                                  \
            for (int v = 0; v < V; v++) {                                                                              \
                const int last = MASKED && v == V - 1;                                                                 \
                __m256 y = _mm256_mul_ps(alpha, acc[r][v]);                                                            \
                if (p->bias)                                                                                           \
                    y = _mm256_add_ps(y, last ? _mm256_maskload_ps(p->bias + j0 + v * 8, tail)                         \
                                              : _mm256_loadu_ps(p->bias + j0 + v * 8));                                \
                if (p->accumulate)                                                                                     \
                    y = _mm256_add_ps(y, last ? _mm256_maskload_ps(c + v * 8, tail) : _mm256_loadu_ps(c + v * 8));     \
                if (last) _mm256_maskstore_ps(c + v * 8, tail, y);                                                     \
                else _mm256_storeu_ps(c + v * 8, y);                                                                   \
            }                                                                                                          \
        }                                                                                                              \
    }

#define TILES(V, MASKED) TILE(6, V, MASKED) TILE(4, V, MASKED) TILE(2, V, MASKED) TILE(1, V, MASKED)
TILES(1, 0)
TILES(1, 1)
TILES(2, 0)
TILES(2, 1)

// Rows i0..<i1 of one column block: bands of 6 rows (12 accumulators, 2 vectors of B and a broadcast: 15 of the 16 ymm
// registers), then 4, 2, 1.
#define ROWS(V, MASKED)                                                                                                \
    {                                                                                                                  \
        int i = i0;                                                                                                    \
        for (; i + 6 <= i1; i += 6) tile_6_##V##_##MASKED(p, i, j0, tail);                                             \
        for (; i + 4 <= i1; i += 4) tile_4_##V##_##MASKED(p, i, j0, tail);                                             \
        for (; i + 2 <= i1; i += 2) tile_2_##V##_##MASKED(p, i, j0, tail);                                             \
        for (; i < i1; i++) tile_1_##V##_##MASKED(p, i, j0, tail);                                                     \
    }

// Panels of rows whose A (about 16 KiB) stays in L1 while each column block of B passes over all of them, so B's block
// (depth × 16 floats) is read from L2 once per panel.
__attribute__((target("avx2,fma"))) static void product_avx2(const product *p) {
    int panel = 4096 / (p->depth > 0 ? p->depth : 1) / 6 * 6;
    if (panel < 6) panel = 6;
    for (int i0 = 0; i0 < p->m; i0 += panel) {
        const int i1 = p->m - i0 < panel ? p->m : i0 + panel;
        for (int j0 = 0; j0 < p->n; j0 += 16) {
            int width = p->n - j0 < 16 ? p->n - j0 : 16;
            int vectors = (width + 7) / 8, rest = width - (vectors - 1) * 8;
            __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            switch (vectors * 2 + (rest < 8)) {
            case 2: ROWS(1, 0) break;
            case 3: ROWS(1, 1) break;
            case 4: ROWS(2, 0) break;
            default: ROWS(2, 1) break;
            }
        }
    }
}
#endif

// level: the caller's KernelLevel (emc_gemm_tall_level, or lower): ≥ 1 the AVX2 tiles, 0 the scalar path.
static void multiply(int level, product p) {
#if defined(__x86_64__)
    if (level >= 1) {
        product_avx2(&p);
        return;
    }
#endif
    product_scalar(&p);
}

#if defined(__x86_64__)
// 8×8 blocks through registers (unpack, shuffle, lane swap).
__attribute__((target("avx2,fma"))) static void transpose_avx2(float *restrict y, const float *restrict x, size_t ld,
                                                               int rows, int columns) {
    int i0 = 0;
    for (; i0 + 8 <= rows; i0 += 8) {
        int j0 = 0;
        for (; j0 + 8 <= columns; j0 += 8) {
            __m256 r[8], u[8], v[8];
            for (int r8 = 0; r8 < 8; r8++) r[r8] = _mm256_loadu_ps(x + (i0 + r8) * ld + j0);
            for (int e = 0; e < 4; e++) {
                u[2 * e] = _mm256_unpacklo_ps(r[2 * e], r[2 * e + 1]);
                u[2 * e + 1] = _mm256_unpackhi_ps(r[2 * e], r[2 * e + 1]);
            }
            for (int e = 0; e < 2; e++) {
                v[4 * e + 0] = _mm256_shuffle_ps(u[4 * e], u[4 * e + 2], 0x44);
                v[4 * e + 1] = _mm256_shuffle_ps(u[4 * e], u[4 * e + 2], 0xEE);
                v[4 * e + 2] = _mm256_shuffle_ps(u[4 * e + 1], u[4 * e + 3], 0x44);
                v[4 * e + 3] = _mm256_shuffle_ps(u[4 * e + 1], u[4 * e + 3], 0xEE);
            }
            for (int e = 0; e < 4; e++) {
                _mm256_storeu_ps(y + (j0 + e) * rows + i0, _mm256_permute2f128_ps(v[e], v[4 + e], 0x20));
                _mm256_storeu_ps(y + (j0 + 4 + e) * rows + i0, _mm256_permute2f128_ps(v[e], v[4 + e], 0x31));
            }
        }
        for (; j0 < columns; j0++)
            for (int i = i0; i < i0 + 8; i++) y[j0 * rows + i] = x[i * ld + j0];
    }
    for (int i = i0; i < rows; i++)
        for (int j = 0; j < columns; j++) y[j * rows + i] = x[i * ld + j];
}
#endif

// xᵀ: the `rows` rows of `columns` floats at x (ld apart) become `columns` rows of `rows` floats at y.
static void transpose(int level, float *restrict y, const float *restrict x, size_t ld, int rows, int columns) {
#if defined(__x86_64__)
    if (level >= 1) {
        transpose_avx2(y, x, ld, rows, columns);
        return;
    }
#endif
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < columns; j++) y[j * rows + i] = x[i * ld + j];
}

void emc_attention_forward(int level, const float *qkv, float *out, float *probs, int tokens, int queries, int dim, int heads,
                           float *scratch) {
    const int t = tokens, r = queries, d = dim / heads;
    const size_t ld = 3 * (size_t)dim;
    const float scale = 1.0f / sqrtf((float)d);
    for (int h = 0; h < heads; h++) {
        const float *q = qkv + h * d, *k = q + dim, *v = q + 2 * dim;
        float *p = probs + (size_t)h * r * t, *kt = scratch;
        transpose(level, kt, k, ld, t, d);
        multiply(level, (product){r, t, d, scale, q, ld, 1, kt, t, p, t, NULL, 0});
        emc_softmax_rows(p, r, t);
        multiply(level, (product){r, d, t, 1.0f, p, t, 1, v, ld, out + h * d, dim, NULL, 0});
    }
}

void emc_attention_backward(int level, const float *qkv, const float *probs, const float *gradOut, float *gradQKV, int tokens,
                            int queries, int dim, int heads, float *scratch) {
    const int t = tokens, r = queries, d = dim / heads;
    const size_t ld = 3 * (size_t)dim;
    const float scale = 1.0f / sqrtf((float)d);
    for (int h = 0; h < heads; h++) {
        const float *q = qkv + h * d, *k = q + dim, *v = q + 2 * dim, *p = probs + (size_t)h * r * t;
        const float *dO = gradOut + h * d;
        float *dq = gradQKV + h * d, *dk = dq + dim, *dv = dq + 2 * dim;
        float *ds = scratch, *vt = scratch + (size_t)r * t;
        multiply(level, (product){t, d, r, 1.0f, p, 1, t, dO, dim, dv, ld, NULL, 0});          // dv = Pᵀ·dO
        transpose(level, vt, v, ld, t, d);
        multiply(level, (product){r, t, d, 1.0f, dO, dim, 1, vt, t, ds, t, NULL, 0});          // dP = dO·vᵀ
        emc_softmax_backward_rows(ds, p, r, t);                                  // dS
        multiply(level, (product){r, d, t, scale, ds, t, 1, k, ld, dq, ld, NULL, 0});           // dq = dS·k/√d
        for (int i = r; i < t; i++)                                              // the other tokens' queries: unused
            for (int j = 0; j < d; j++) dq[i * ld + j] = 0.0f;
        multiply(level, (product){t, d, r, scale, ds, 1, t, q, ld, dk, ld, NULL, 0});           // dk = dSᵀ·q/√d
    }
}

void emc_product_rows(int level, int m, int n, int depth, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                      size_t ldc, const float *bias, int accumulate) {
    multiply(level, (product){m, n, depth, 1.0f, a, lda, 1, b, ldb, c, ldc, bias, accumulate});
}

void emc_transpose(int level, float *y, const float *x, size_t ld, int rows, int columns) {
    transpose(level, y, x, ld, rows, columns);
}
