// Batch normalisation's passes over NHWC rows of c channels (Normalization.swift has the math). Per-channel sums are
// in double. When c divides 16 (1, 2, 4, 8, 16 channels) the rows are walked as one flat array in 16 lanes, lane l
// holding channel l mod c, and the lanes are added into their channels in lane order at the end: a loop long enough
// to vectorise at any of these channel counts. Otherwise each row's c channels are the vector. Every sum has a fixed
// order and no product is contracted into a fused multiply-add, so every clone gives the same bits.
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

// The general path's sums for channels c0..<c1 (rows in order): the whole pass's, and a team's part of it.
static inline __attribute__((always_inline)) void moments_range_body(double *restrict sum, double *restrict squares,
                                                                     const float *restrict x, size_t rows, size_t c, size_t c0,
                                                                     size_t c1) {
    for (size_t r = 0; r < rows; r++)
        for (size_t ch = c0; ch < c1; ch++) { double v = (double)x[r * c + ch]; sum[ch] += v; squares[ch] += v * v; }
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

// The general path's Σ g and Σ g·x̂ for channels c0..<c1 (rows in order): the whole pass's, and a team's part of it.
static inline __attribute__((always_inline)) void gradient_sums_range_body(double *restrict sum_dy, double *restrict sum_dyh,
                                                                           const float *restrict dy, const float *restrict x,
                                                                           const float *restrict mean, const float *restrict istd,
                                                                           const float *restrict gamma, const float *restrict beta,
                                                                           size_t rows, size_t c, size_t c0, size_t c1, int relu) {
    for (size_t r = 0; r < rows; r++)
        for (size_t ch = c0; ch < c1; ch++) {
            size_t i = r * c + ch;
            float h = (x[i] - mean[ch]) * istd[ch], g = MASKED(dy[i], h, gamma[ch], beta[ch]);
            sum_dy[ch] += (double)g;
            sum_dyh[ch] += (double)(g * h);
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

// emc_channel_moments's general path (c not dividing 16) for channels c0..<c1.
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
