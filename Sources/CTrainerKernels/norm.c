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

// sum[ch] += Σ x and squares[ch] += Σ x², both in double: the statistics in one pass over x.
EMC_CLONES
void emc_channel_moments(double *restrict sum, double *restrict squares, const float *restrict x, size_t rows, size_t c) {
    if (lanes_fit(c)) {
        size_t n = rows * c, whole = n / LANES * LANES;
        double a[LANES] = {0}, b[LANES] = {0};
        for (size_t i = 0; i < whole; i += LANES)
            for (int l = 0; l < LANES; l++) { double v = (double)x[i + l]; a[l] += v; b[l] += v * v; }
        for (int l = 0; l < LANES; l++) { sum[l % c] += a[l]; squares[l % c] += b[l]; }
        for (size_t i = whole; i < n; i++) { double v = (double)x[i]; sum[i % c] += v; squares[i % c] += v * v; }
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t ch = 0; ch < c; ch++) { double v = (double)x[r * c + ch]; sum[ch] += v; squares[ch] += v * v; }
}

// y = γ·x̂ + β with x̂ = (x − mean)·istd. x̂ is not stored: backward recomputes it from x with the same operations.
EMC_CLONES
void emc_batchnorm_apply(float *restrict y, const float *restrict x, const float *restrict mean, const float *restrict istd,
                         const float *restrict gamma, const float *restrict beta, size_t rows, size_t c) {
    if (lanes_fit(c)) {
        size_t n = rows * c, whole = n / LANES * LANES;
        float m[LANES], s[LANES], g[LANES], b[LANES];
        for (int l = 0; l < LANES; l++) { m[l] = mean[l % c]; s[l] = istd[l % c]; g[l] = gamma[l % c]; b[l] = beta[l % c]; }
        for (size_t i = 0; i < whole; i += LANES)
            for (int l = 0; l < LANES; l++) y[i + l] = g[l] * ((x[i + l] - m[l]) * s[l]) + b[l];
        for (size_t i = whole; i < n; i++) y[i] = gamma[i % c] * ((x[i] - mean[i % c]) * istd[i % c]) + beta[i % c];
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t ch = 0; ch < c; ch++) y[r * c + ch] = gamma[ch] * ((x[r * c + ch] - mean[ch]) * istd[ch]) + beta[ch];
}

// Σ dy and Σ dy·x̂ per channel (the product in float, summed in double).
EMC_CLONES
void emc_channel_gradient_sums(double *restrict sum_dy, double *restrict sum_dyh, const float *restrict dy,
                               const float *restrict x, const float *restrict mean, const float *restrict istd, size_t rows,
                               size_t c) {
    if (lanes_fit(c)) {
        size_t n = rows * c, whole = n / LANES * LANES;
        double a[LANES] = {0}, b[LANES] = {0};
        float m[LANES], s[LANES];
        for (int l = 0; l < LANES; l++) { m[l] = mean[l % c]; s[l] = istd[l % c]; }
        for (size_t i = 0; i < whole; i += LANES)
            for (int l = 0; l < LANES; l++) {
                a[l] += (double)dy[i + l];
                b[l] += (double)(dy[i + l] * ((x[i + l] - m[l]) * s[l]));
            }
        for (int l = 0; l < LANES; l++) { sum_dy[l % c] += a[l]; sum_dyh[l % c] += b[l]; }
        for (size_t i = whole; i < n; i++) {
            sum_dy[i % c] += (double)dy[i];
            sum_dyh[i % c] += (double)(dy[i] * ((x[i] - mean[i % c]) * istd[i % c]));
        }
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t ch = 0; ch < c; ch++) {
            size_t i = r * c + ch;
            sum_dy[ch] += (double)dy[i];
            sum_dyh[ch] += (double)(dy[i] * ((x[i] - mean[ch]) * istd[ch]));
        }
}

// dx = (γ·istd)·((dy − mean_dy) − x̂·mean_dyh).
EMC_CLONES
void emc_batchnorm_input_gradient(float *restrict dx, const float *restrict dy, const float *restrict x,
                                  const float *restrict mean, const float *restrict istd, const float *restrict gamma,
                                  const float *restrict mean_dy, const float *restrict mean_dyh, size_t rows, size_t c) {
    if (lanes_fit(c)) {
        size_t n = rows * c, whole = n / LANES * LANES;
        float m[LANES], s[LANES], k[LANES], a[LANES], b[LANES];
        for (int l = 0; l < LANES; l++) {
            size_t ch = (size_t)l % c;
            m[l] = mean[ch]; s[l] = istd[ch]; k[l] = gamma[ch] * istd[ch]; a[l] = mean_dy[ch]; b[l] = mean_dyh[ch];
        }
        for (size_t i = 0; i < whole; i += LANES)
            for (int l = 0; l < LANES; l++) dx[i + l] = k[l] * ((dy[i + l] - a[l]) - ((x[i + l] - m[l]) * s[l]) * b[l]);
        for (size_t i = whole; i < n; i++) {
            size_t ch = i % c;
            dx[i] = (gamma[ch] * istd[ch]) * ((dy[i] - mean_dy[ch]) - ((x[i] - mean[ch]) * istd[ch]) * mean_dyh[ch]);
        }
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t ch = 0; ch < c; ch++) {
            size_t i = r * c + ch;
            dx[i] = (gamma[ch] * istd[ch]) * ((dy[i] - mean_dy[ch]) - ((x[i] - mean[ch]) * istd[ch]) * mean_dyh[ch]);
        }
}

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
        if (!dx) continue;
        for (size_t ch = 0; ch < c; ch++) scratch[ch] = g[ch] * gamma[ch];
        float meanG = row_sum(scratch, c) / (float)c;
        for (size_t ch = 0; ch < c; ch++) scratch[ch] = scratch[ch] * hr[ch];
        float meanGH = row_sum(scratch, c) / (float)c;
        float *d = dx + r * c, inv = istd[r];
        for (size_t ch = 0; ch < c; ch++) d[ch] = inv * ((g[ch] * gamma[ch] - meanG) - hr[ch] * meanGH);
    }
}
