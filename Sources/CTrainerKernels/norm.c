// Batch normalisation's passes over NHWC rows of c channels (Normalization.swift has the math). Per-channel sums are
// in double. When c divides 16 (1, 2, 4, 8, 16 channels) the rows are walked as one flat array in 16 lanes, lane l
// holding channel l mod c, and the lanes are added into their channels in lane order at the end: a loop long enough
// to vectorise at any of these channel counts. Otherwise (and for a team's part of any channel count) the general path
// below. Every sum has a fixed order and no product is contracted into a fused multiply-add, so every clone gives the
// same bits. At 16 channels each lane is one channel's sum in row order from zero, so from zeroed sums (as batch norm
// passes them) the lanes give the general path's bits, and a team may split 16 channels by the general path.
#include "emc_trainer_kernels.h"
#include "clones.h"

#pragma clang fp contract(off)

#define LANES 16

static inline int lanes_fit(size_t c) { return c > 0 && c <= LANES && LANES % c == 0; }

// The 16 lanes as one vector value: written with scalar loops over l, clang vectorised the walk over i instead (stride-16
// gathers, a third of the memory bandwidth in batch norm's apply pass). Elementwise operations on these vectors are the
// scalar ones lane by lane, so the clones still agree bit for bit.
typedef float lanes_f __attribute__((ext_vector_type(LANES)));
typedef int lanes_i __attribute__((ext_vector_type(LANES)));
typedef double lanes_d __attribute__((ext_vector_type(LANES)));
// Macros rather than functions: a 64-byte vector may not cross a call in the AVX2 and baseline clones.
#define LOAD_LANES(p) ({ lanes_f v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
#define STORE_LANES(p, v) do { lanes_f s_ = (v); __builtin_memcpy((p), &s_, sizeof s_); } while (0)
// v where test > 0, else +0: the bits of `test > 0 ? v : 0.0f` in every lane.
#define WHERE_POSITIVE(test, v) ((lanes_f)((lanes_i)(v) & ((test) > 0.0f)))
#define PER_CHANNEL(values, c) ({ lanes_f v_; for (int l_ = 0; l_ < LANES; l_++) v_[l_] = (values)[l_ % (c)]; v_; })

// The general path (channel counts that do not divide 16, and a team's parts) keeps each channel's sums in row order,
// from the value in the sums array, by one of two walks.
// A narrow range of channels walks the rows in chunks of 16,384 floats of each input and each chunk's channels in groups of blocks of
// 8, a group's sums held in registers over the chunk's rows and stored after it (sums in memory were a load, an add
// and a store per row on one dependency chain). A wide range walks each row once with its sums in an array on the
// stack, copied in and out: every row streams through in order, and a team's parts, whose sums are neighbours in one
// array, never write the same cache line per row (they did, and ran slower split than whole). Channels past the
// last whole block of a narrow range (fewer than 8) are summed in place, in row order, over the chunk's rows.
#define BLOCK 8
#define GROUP_BLOCKS 4
#define CHUNK_FLOATS 16384
#define WIDE_SLICE 1024
#define MOMENTS_NARROW 128
#define GRADIENT_NARROW 32
typedef float block_f __attribute__((ext_vector_type(BLOCK)));
typedef int block_i __attribute__((ext_vector_type(BLOCK)));
typedef double block_d __attribute__((ext_vector_type(BLOCK)));
#define LOAD_BLOCK(p) ({ block_f v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
#define LOAD_BLOCK_D(p) ({ block_d v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
#define STORE_BLOCK_D(p, v) do { block_d s_ = (v); __builtin_memcpy((p), &s_, sizeof s_); } while (0)

// The wide walk over channels c0..<c1: in slices of at most WIDE_SLICE channels (s0 the first, w the count), the
// slice's two sums of each channel in a[k] and b[k] on the stack, copied from A and B before and back after, and BODY
// run for every row r in order.
#define WIDE_SLICES(A, B, BODY)                                                                                        \
    do {                                                                                                               \
        double a[WIDE_SLICE] __attribute__((aligned(64))), b[WIDE_SLICE] __attribute__((aligned(64)));                 \
        for (size_t s0 = c0; s0 < c1; s0 += WIDE_SLICE) {                                                              \
            size_t w = c1 - s0 < WIDE_SLICE ? c1 - s0 : WIDE_SLICE;                                                    \
            __builtin_memcpy(a, (A) + s0, w * sizeof(double));                                                         \
            __builtin_memcpy(b, (B) + s0, w * sizeof(double));                                                         \
            for (size_t r = 0; r < rows; r++) BODY                                                                     \
            __builtin_memcpy((A) + s0, a, w * sizeof(double));                                                         \
            __builtin_memcpy((B) + s0, b, w * sizeof(double));                                                         \
        }                                                                                                              \
    } while (0)

// Rows per chunk for a range of `width` channels (at least 16).
static inline size_t chunk_rows(size_t width) { size_t r = CHUNK_FLOATS / (width > 0 ? width : 1); return r < 16 ? 16 : r; }

// Σ x and Σ x² of channels ch..<ch + 8·blocks over `rows` rows, blocks a constant after inlining.
static inline __attribute__((always_inline)) void moments_group(double *restrict sum, double *restrict squares,
                                                                const float *restrict x, size_t rows, size_t c, size_t ch,
                                                                int blocks) {
    block_d a[GROUP_BLOCKS], b[GROUP_BLOCKS];
    for (int k = 0; k < blocks; k++) { a[k] = LOAD_BLOCK_D(sum + ch + BLOCK * k); b[k] = LOAD_BLOCK_D(squares + ch + BLOCK * k); }
    for (size_t r = 0; r < rows; r++) {
        const float *p = x + r * c + ch;
        for (int k = 0; k < blocks; k++) {
            block_d v = __builtin_convertvector(LOAD_BLOCK(p + BLOCK * k), block_d);
            a[k] += v;
            b[k] += v * v;
        }
    }
    for (int k = 0; k < blocks; k++) { STORE_BLOCK_D(sum + ch + BLOCK * k, a[k]); STORE_BLOCK_D(squares + ch + BLOCK * k, b[k]); }
}

// The general path's sums for channels c0..<c1 (rows in order): the whole pass's, and a team's part of it.
static inline __attribute__((always_inline)) void moments_range_body(double *restrict sum, double *restrict squares,
                                                                     const float *restrict x, size_t rows, size_t c, size_t c0,
                                                                     size_t c1) {
    if (c1 - c0 > MOMENTS_NARROW) {
        WIDE_SLICES(sum, squares, {
            const float *p = x + r * c + s0;
            for (size_t k = 0; k < w; k++) { double v = (double)p[k]; a[k] += v; b[k] += v * v; }
        });
        return;
    }
    size_t step = chunk_rows(c1 - c0);
    for (size_t r0 = 0; r0 < rows; r0 += step) {
        size_t n = rows - r0 < step ? rows - r0 : step, ch = c0;
        const float *xr = x + r0 * c;
        for (; ch + BLOCK * GROUP_BLOCKS <= c1; ch += BLOCK * GROUP_BLOCKS) moments_group(sum, squares, xr, n, c, ch, GROUP_BLOCKS);
        switch ((c1 - ch) / BLOCK) {
        case 3: moments_group(sum, squares, xr, n, c, ch, 3); ch += 3 * BLOCK; break;
        case 2: moments_group(sum, squares, xr, n, c, ch, 2); ch += 2 * BLOCK; break;
        case 1: moments_group(sum, squares, xr, n, c, ch, 1); ch += BLOCK; break;
        default: break;
        }
        for (size_t r = 0; r < n && ch < c1; r++)
            for (size_t k = ch; k < c1; k++) { double v = (double)xr[r * c + k]; sum[k] += v; squares[k] += v * v; }
    }
}

// sum[ch] += Σ x and squares[ch] += Σ x², both in double: the statistics in one pass over x.
EMC_CLONES
void emc_channel_moments(double *restrict sum, double *restrict squares, const float *restrict x, size_t rows, size_t c) {
    if (lanes_fit(c)) {
        size_t n = rows * c, whole = n / LANES * LANES;
        lanes_d a = 0, b = 0;
        for (size_t i = 0; i < whole; i += LANES) {
            lanes_d v = __builtin_convertvector(LOAD_LANES(x + i), lanes_d);
            a += v;
            b += v * v;
        }
        for (int l = 0; l < LANES; l++) { sum[l % c] += a[l]; squares[l % c] += b[l]; }
        for (size_t i = whole; i < n; i++) { double v = (double)x[i]; sum[i % c] += v; squares[i % c] += v * v; }
        return;
    }
    moments_range_body(sum, squares, x, rows, c, 0, c);
}

// With `relu` (a ReLU fused after the normalisation) backward needs the mask y > 0. It is recomputed from x with the
// forward's own operations (BN_AFFINE, contraction off), so it is the forward's mask bit for bit, and neither y nor a
// mask is read: the fused layer's passes stream x and dy only.
#define BN_AFFINE(x, m, s, g, b) ((g) * (((x) - (m)) * (s)) + (b))

// y = γ·x̂ + β with x̂ = (x − mean)·istd, then max(0, ·) with `relu`. x̂ is not stored: backward recomputes it from x with
// the same operations.
static inline __attribute__((always_inline)) void apply_body(float *restrict y, const float *restrict x, const float *restrict mean,
                                                             const float *restrict istd, const float *restrict gamma,
                                                             const float *restrict beta, size_t rows, size_t c, int relu) {
#define RELU(v) (relu ? ((v) > 0.0f ? (v) : 0.0f) : (v))
    if (lanes_fit(c)) {
        size_t n = rows * c, whole = n / LANES * LANES;
        lanes_f m = PER_CHANNEL(mean, c), s = PER_CHANNEL(istd, c), g = PER_CHANNEL(gamma, c), b = PER_CHANNEL(beta, c);
        for (size_t i = 0; i < whole; i += LANES) {
            lanes_f v = BN_AFFINE(LOAD_LANES(x + i), m, s, g, b);
            STORE_LANES(y + i, relu ? WHERE_POSITIVE(v, v) : v);
        }
        for (size_t i = whole; i < n; i++) { float v = BN_AFFINE(x[i], mean[i % c], istd[i % c], gamma[i % c], beta[i % c]); y[i] = RELU(v); }
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t ch = 0; ch < c; ch++) {
            float v = BN_AFFINE(x[r * c + ch], mean[ch], istd[ch], gamma[ch], beta[ch]);
            y[r * c + ch] = RELU(v);
        }
#undef RELU
}

EMC_CLONES
void emc_batchnorm_apply(float *restrict y, const float *restrict x, const float *restrict mean, const float *restrict istd,
                         const float *restrict gamma, const float *restrict beta, size_t rows, size_t c, int relu) {
    if (relu) apply_body(y, x, mean, istd, gamma, beta, rows, c, 1);
    else apply_body(y, x, mean, istd, gamma, beta, rows, c, 0);
}

// The gradient reaching the normalisation: dy, or with `relu` dy where the forward's y was positive and 0 elsewhere.
// With h = (x − mean)·istd already computed, g·h + b is BN_AFFINE's operations in BN_AFFINE's order.
#define MASKED(dy, h, g, b) (relu ? ((g) * (h) + (b) > 0.0f ? (dy) : 0.0f) : (dy))

// Σ g and Σ g·x̂ of channels ch..<ch + 8·blocks in registers, by MASKED's and the scalar loop's operations lane by lane.
#define GRADIENT_GROUP_BLOCKS 2
static inline __attribute__((always_inline)) void gradient_sums_group(double *restrict sum_dy, double *restrict sum_dyh,
                                                                      const float *restrict dy, const float *restrict x,
                                                                      const float *restrict mean, const float *restrict istd,
                                                                      const float *restrict gamma, const float *restrict beta,
                                                                      size_t rows, size_t c, size_t ch, int blocks, int relu) {
    block_d a[GRADIENT_GROUP_BLOCKS], b[GRADIENT_GROUP_BLOCKS];
    block_f m[GRADIENT_GROUP_BLOCKS], s[GRADIENT_GROUP_BLOCKS], gg[GRADIENT_GROUP_BLOCKS], bb[GRADIENT_GROUP_BLOCKS];
    for (int k = 0; k < blocks; k++) {
        size_t o = ch + BLOCK * k;
        a[k] = LOAD_BLOCK_D(sum_dy + o); b[k] = LOAD_BLOCK_D(sum_dyh + o);
        m[k] = LOAD_BLOCK(mean + o); s[k] = LOAD_BLOCK(istd + o); gg[k] = LOAD_BLOCK(gamma + o); bb[k] = LOAD_BLOCK(beta + o);
    }
    for (size_t r = 0; r < rows; r++) {
        size_t i = r * c + ch;
        for (int k = 0; k < blocks; k++) {
            block_f h = (LOAD_BLOCK(x + i + BLOCK * k) - m[k]) * s[k], g = LOAD_BLOCK(dy + i + BLOCK * k);
            if (relu) g = (block_f)((block_i)g & (gg[k] * h + bb[k] > 0.0f));
            a[k] += __builtin_convertvector(g, block_d);
            b[k] += __builtin_convertvector(g * h, block_d);
        }
    }
    for (int k = 0; k < blocks; k++) { STORE_BLOCK_D(sum_dy + ch + BLOCK * k, a[k]); STORE_BLOCK_D(sum_dyh + ch + BLOCK * k, b[k]); }
}

// The general path's Σ g and Σ g·x̂ for channels c0..<c1 (rows in order): the whole pass's, and a team's part of it.
static inline __attribute__((always_inline)) void gradient_sums_range_body(double *restrict sum_dy, double *restrict sum_dyh,
                                                                           const float *restrict dy, const float *restrict x,
                                                                           const float *restrict mean, const float *restrict istd,
                                                                           const float *restrict gamma, const float *restrict beta,
                                                                           size_t rows, size_t c, size_t c0, size_t c1, int relu) {
    if (c1 - c0 > GRADIENT_NARROW) {
        WIDE_SLICES(sum_dy, sum_dyh, {
            const float *xr = x + r * c + s0;
            const float *dyr = dy + r * c + s0;
            for (size_t k = 0; k < w; k++) {
                size_t ch = s0 + k;
                float h = (xr[k] - mean[ch]) * istd[ch];
                float g = MASKED(dyr[k], h, gamma[ch], beta[ch]);
                a[k] += (double)g;
                b[k] += (double)(g * h);
            }
        });
        return;
    }
    size_t step = chunk_rows(c1 - c0);
    for (size_t r0 = 0; r0 < rows; r0 += step) {
        size_t n = rows - r0 < step ? rows - r0 : step, tail = c0;
        const float *dyr = dy + r0 * c, *xr = x + r0 * c;
        for (; tail + BLOCK * GRADIENT_GROUP_BLOCKS <= c1; tail += BLOCK * GRADIENT_GROUP_BLOCKS)
            gradient_sums_group(sum_dy, sum_dyh, dyr, xr, mean, istd, gamma, beta, n, c, tail, GRADIENT_GROUP_BLOCKS, relu);
        if (tail + BLOCK <= c1) { gradient_sums_group(sum_dy, sum_dyh, dyr, xr, mean, istd, gamma, beta, n, c, tail, 1, relu); tail += BLOCK; }
        for (size_t r = 0; r < n && tail < c1; r++)
            for (size_t ch = tail; ch < c1; ch++) {
                size_t i = r * c + ch;
                float h = (xr[i] - mean[ch]) * istd[ch], g = MASKED(dyr[i], h, gamma[ch], beta[ch]);
                sum_dy[ch] += (double)g;
                sum_dyh[ch] += (double)(g * h);
            }
    }
}

// Σ g and Σ g·x̂ per channel, g the masked dy (the product in float, summed in double).
static inline __attribute__((always_inline)) void gradient_sums_body(double *restrict sum_dy, double *restrict sum_dyh, const float *restrict dy,
                                                                     const float *restrict x, const float *restrict mean,
                                                                     const float *restrict istd, const float *restrict gamma,
                                                                     const float *restrict beta, size_t rows, size_t c, int relu) {
    if (lanes_fit(c)) {
        size_t n = rows * c, whole = n / LANES * LANES;
        lanes_d a = 0, b = 0;
        lanes_f m = PER_CHANNEL(mean, c), s = PER_CHANNEL(istd, c), gg = PER_CHANNEL(gamma, c), bb = PER_CHANNEL(beta, c);
        for (size_t i = 0; i < whole; i += LANES) {
            lanes_f h = (LOAD_LANES(x + i) - m) * s, g = LOAD_LANES(dy + i);
            if (relu) g = WHERE_POSITIVE(gg * h + bb, g);
            a += __builtin_convertvector(g, lanes_d);
            b += __builtin_convertvector(g * h, lanes_d);
        }
        for (int l = 0; l < LANES; l++) { sum_dy[l % c] += a[l]; sum_dyh[l % c] += b[l]; }
        for (size_t i = whole; i < n; i++) {
            float h = (x[i] - mean[i % c]) * istd[i % c], g = MASKED(dy[i], h, gamma[i % c], beta[i % c]);
            sum_dy[i % c] += (double)g;
            sum_dyh[i % c] += (double)(g * h);
        }
        return;
    }
    gradient_sums_range_body(sum_dy, sum_dyh, dy, x, mean, istd, gamma, beta, rows, c, 0, c, relu);
}

EMC_CLONES
void emc_channel_gradient_sums(double *restrict sum_dy, double *restrict sum_dyh, const float *restrict dy,
                               const float *restrict x, const float *restrict mean, const float *restrict istd,
                               const float *restrict gamma, const float *restrict beta, size_t rows, size_t c, int relu) {
    if (relu) gradient_sums_body(sum_dy, sum_dyh, dy, x, mean, istd, gamma, beta, rows, c, 1);
    else gradient_sums_body(sum_dy, sum_dyh, dy, x, mean, istd, gamma, beta, rows, c, 0);
}

// dx = (γ·istd)·((g − mean_dy) − x̂·mean_dyh), g the masked dy.
static inline __attribute__((always_inline)) void input_gradient_body(float *restrict dx, const float *restrict dy, const float *restrict x,
                                                                      const float *restrict mean, const float *restrict istd,
                                                                      const float *restrict gamma, const float *restrict beta,
                                                                      const float *restrict mean_dy, const float *restrict mean_dyh,
                                                                      size_t rows, size_t c, int relu) {
    if (lanes_fit(c)) {
        size_t n = rows * c, whole = n / LANES * LANES;
        lanes_f m = PER_CHANNEL(mean, c), s = PER_CHANNEL(istd, c), gg = PER_CHANNEL(gamma, c), bb = PER_CHANNEL(beta, c);
        lanes_f k = gg * s, a = PER_CHANNEL(mean_dy, c), b = PER_CHANNEL(mean_dyh, c);
        for (size_t i = 0; i < whole; i += LANES) {
            lanes_f h = (LOAD_LANES(x + i) - m) * s, g = LOAD_LANES(dy + i);
            if (relu) g = WHERE_POSITIVE(gg * h + bb, g);
            STORE_LANES(dx + i, k * ((g - a) - h * b));
        }
        for (size_t i = whole; i < n; i++) {
            size_t ch = i % c;
            float h = (x[i] - mean[ch]) * istd[ch];
            dx[i] = (gamma[ch] * istd[ch]) * ((MASKED(dy[i], h, gamma[ch], beta[ch]) - mean_dy[ch]) - h * mean_dyh[ch]);
        }
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t ch = 0; ch < c; ch++) {
            size_t i = r * c + ch;
            float h = (x[i] - mean[ch]) * istd[ch];
            dx[i] = (gamma[ch] * istd[ch]) * ((MASKED(dy[i], h, gamma[ch], beta[ch]) - mean_dy[ch]) - h * mean_dyh[ch]);
        }
}

EMC_CLONES
void emc_batchnorm_input_gradient(float *restrict dx, const float *restrict dy, const float *restrict x,
                                  const float *restrict mean, const float *restrict istd, const float *restrict gamma,
                                  const float *restrict beta, const float *restrict mean_dy, const float *restrict mean_dyh,
                                  size_t rows, size_t c, int relu) {
    if (relu) input_gradient_body(dx, dy, x, mean, istd, gamma, beta, mean_dy, mean_dyh, rows, c, 1);
    else input_gradient_body(dx, dy, x, mean, istd, gamma, beta, mean_dy, mean_dyh, rows, c, 0);
}
#undef MASKED

// Layer normalisation over each row's c values. A row's sums run in 16 lanes (lane l takes the elements l, l + 16, …)
// folded in lane order, then the remainder in order: a fixed order that vectorises.
static inline __attribute__((always_inline)) float row_sum(const float *restrict v, size_t c) {
    float lane[LANES] = {0};
    size_t whole = c / LANES * LANES;
    for (size_t i = 0; i < whole; i += LANES)
        for (int l = 0; l < LANES; l++) lane[l] += v[i + l];
    float total = 0;
    for (int l = 0; l < LANES; l++) total += lane[l];
    for (size_t i = whole; i < c; i++) total += v[i];
    return total;
}

static inline __attribute__((always_inline)) float row_squared_deviation(const float *restrict v, float mean, size_t c) {
    float lane[LANES] = {0};
    size_t whole = c / LANES * LANES;
    for (size_t i = 0; i < whole; i += LANES)
        for (int l = 0; l < LANES; l++) { float d = v[i + l] - mean; lane[l] += d * d; }
    float total = 0;
    for (int l = 0; l < LANES; l++) total += lane[l];
    for (size_t i = whole; i < c; i++) { float d = v[i] - mean; total += d * d; }
    return total;
}

EMC_CLONES
void emc_layernorm_forward(float *restrict y, float *restrict h, float *restrict istd, const float *restrict x,
                           const float *restrict gamma, const float *restrict beta, size_t rows, size_t c, float epsilon) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *yr = y + r * c, *hr = h + r * c;
        float mean = row_sum(xr, c) / (float)c;
        float inv = 1.0f / __builtin_sqrtf(row_squared_deviation(xr, mean, c) / (float)c + epsilon);
        istd[r] = inv;
        for (size_t ch = 0; ch < c; ch++) {
            float v = (xr[ch] - mean) * inv;
            hr[ch] = v;
            yr[ch] = gamma[ch] * v + beta[ch];
        }
    }
}

// One row's dx = istd·(dy·γ − mean(dy·γ) − x̂·mean(dy·γ·x̂)); `scratch` holds c floats.
static inline __attribute__((always_inline)) void row_input_gradient(float *restrict d, float *restrict scratch,
                                                                     const float *restrict g, const float *restrict hr, float inv,
                                                                     const float *restrict gamma, size_t c) {
    for (size_t ch = 0; ch < c; ch++) scratch[ch] = g[ch] * gamma[ch];
    float meanG = row_sum(scratch, c) / (float)c;
    for (size_t ch = 0; ch < c; ch++) scratch[ch] = scratch[ch] * hr[ch];
    float meanGH = row_sum(scratch, c) / (float)c;
    for (size_t ch = 0; ch < c; ch++) d[ch] = inv * ((g[ch] * gamma[ch] - meanG) - hr[ch] * meanGH);
}

// dγ += Σ dy·x̂, dβ += Σ dy (row after row), and when dx is not NULL dx = istd·(dy·γ − mean(dy·γ) − x̂·mean(dy·γ·x̂)).
// `scratch` holds c floats.
EMC_CLONES
void emc_layernorm_backward(float *restrict dx, float *restrict dgamma, float *restrict dbeta, float *restrict scratch,
                            const float *restrict dy, const float *restrict h, const float *restrict istd,
                            const float *restrict gamma, size_t rows, size_t c) {
    for (size_t r = 0; r < rows; r++) {
        const float *g = dy + r * c, *hr = h + r * c;
        for (size_t ch = 0; ch < c; ch++) {
            dgamma[ch] += g[ch] * hr[ch];
            dbeta[ch] += g[ch];
        }
        if (dx) row_input_gradient(dx + r * c, scratch, g, hr, istd[r], gamma, c);
    }
}

// Parts of the passes above for a team of threads (Threads.swift): each computes exactly what the whole pass computes
// for its channels or rows, by the same operations in the same order.

// emc_channel_moments's general path for channels c0..<c1 (any c; at 16 channels the whole pass's bits from zeroed sums).
EMC_CLONES
void emc_channel_moments_range(double *restrict sum, double *restrict squares, const float *restrict x, size_t rows, size_t c,
                               size_t c0, size_t c1) {
    moments_range_body(sum, squares, x, rows, c, c0, c1);
}

// emc_channel_gradient_sums's general path for channels c0..<c1.
EMC_CLONES
void emc_channel_gradient_sums_range(double *restrict sum_dy, double *restrict sum_dyh, const float *restrict dy,
                                     const float *restrict x, const float *restrict mean, const float *restrict istd,
                                     const float *restrict gamma, const float *restrict beta, size_t rows, size_t c, size_t c0,
                                     size_t c1, int relu) {
    if (relu) gradient_sums_range_body(sum_dy, sum_dyh, dy, x, mean, istd, gamma, beta, rows, c, c0, c1, 1);
    else gradient_sums_range_body(sum_dy, sum_dyh, dy, x, mean, istd, gamma, beta, rows, c, c0, c1, 0);
}

// emc_layernorm_backward in two parts: the parameters' gradients for channels c0..<c1 (over every row, in order), and
// the input gradient of the rows given.
EMC_CLONES
void emc_layernorm_parameter_gradient(float *restrict dgamma, float *restrict dbeta, const float *restrict dy,
                                      const float *restrict h, size_t rows, size_t c, size_t c0, size_t c1) {
    for (size_t r = 0; r < rows; r++) {
        const float *g = dy + r * c, *hr = h + r * c;
        for (size_t ch = c0; ch < c1; ch++) {
            dgamma[ch] += g[ch] * hr[ch];
            dbeta[ch] += g[ch];
        }
    }
}

EMC_CLONES
void emc_layernorm_input_gradient(float *restrict dx, float *restrict scratch, const float *restrict dy, const float *restrict h,
                                  const float *restrict istd, const float *restrict gamma, size_t rows, size_t c) {
    for (size_t r = 0; r < rows; r++) row_input_gradient(dx + r * c, scratch, dy + r * c, h + r * c, istd[r], gamma, c);
}
