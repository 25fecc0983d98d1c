// Elementwise and data-movement kernels of the trainer's layers (NHWC float32). Plain C with
// restrict-qualified pointers so the compiler vectorises them; the matrix products stay in BLAS.
#include "emc_trainer_kernels.h"
#include <string.h>

#include "clones.h"

EMC_CLONES
void emc_relu_forward(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

EMC_CLONES
void emc_relu_backward(float *restrict dx, const float *restrict x, const float *restrict dy, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void emc_add_bias(float *restrict y, const float *restrict bias, size_t rows, size_t columns) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * columns;
        for (size_t c = 0; c < columns; c++) row[c] = bias[c];
    }
}

// Column sums (a bias's gradient). When the columns divide 16, the rows are summed as one flat array in 16 lanes (lane
// l holds column l mod columns), then the lanes are added into their columns in order: a fixed order, so the same bits
// at every instruction set, and a loop long enough to vectorise for 1–16 columns.
// The general path's sums for columns c0..<c1 of rows `columns` floats long (rows in order).
static inline __attribute__((always_inline)) void sum_rows_range_body(float *restrict out, const float *restrict x, size_t rows,
                                                                      size_t columns, size_t c0, size_t c1) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * columns;
        for (size_t c = c0; c < c1; c++) out[c] += row[c];
    }
}

EMC_CLONES
void emc_sum_rows(float *restrict out, const float *restrict x, size_t rows, size_t columns) {
    if (columns > 0 && columns <= 16 && 16 % columns == 0) {
        size_t n = rows * columns, whole = n / 16 * 16;
        float lane[16] = {0};
        for (size_t i = 0; i < whole; i += 16)
            for (int l = 0; l < 16; l++) lane[l] += x[i + l];
        for (int l = 0; l < 16; l++) out[l % columns] += lane[l];
        for (size_t i = whole; i < n; i++) out[i % columns] += x[i];
        return;
    }
    sum_rows_range_body(out, x, rows, columns, 0, columns);
}

// Copies of a few to a few hundred floats (a patch row: kernel × channels): inlined moves instead of a call to memcpy,
// which for runs of 3–24 floats cost more than the copy.
static inline void copy_run(float *restrict to, const float *restrict from, size_t n) {
    for (; n >= 8; n -= 8, to += 8, from += 8) __builtin_memcpy_inline(to, from, 8 * sizeof(float));
    if (n >= 4) { __builtin_memcpy_inline(to, from, 4 * sizeof(float)); n -= 4; to += 4; from += 4; }
    for (; n > 0; n--) *to++ = *from++;
}

void emc_im2row(float *restrict rows, const float *restrict x, int batch, int h, int w, int c,
                int kernel, int stride, int padding, int ho, int wo) {
    const size_t run = (size_t)kernel * c;
    for (int b = 0; b < batch; b++) {
        const float *image = x + (size_t)b * h * w * c;
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < wo; ox++) {
                int ix0 = ox * stride - padding;
                int inside = ix0 >= 0 && ix0 + kernel <= w;
                for (int ky = 0; ky < kernel; ky++) {
                    int iy = oy * stride - padding + ky;
                    if (iy < 0 || iy >= h) { memset(rows, 0, run * sizeof(float)); rows += run; continue; }
                    const float *line = image + (size_t)iy * w * c;
                    if (inside) {
                        // The whole kernel row is inside: K·C contiguous floats.
                        copy_run(rows, line + (size_t)ix0 * c, run);
                        rows += run;
                        continue;
                    }
                    for (int kx = 0; kx < kernel; kx++) {
                        int ix = ix0 + kx;
                        if (ix >= 0 && ix < w) copy_run(rows, line + (size_t)ix * c, (size_t)c);
                        else for (int ch = 0; ch < c; ch++) rows[ch] = 0.0f;
                        rows += c;
                    }
                }
            }
        }
    }
}

// The adjoint of im2row. Each input element receives its patches' gradients in the same order (output pixel, then
// kernel row, then kernel column) whichever path the window takes, so the sums are the same bits as a plain loop's.
void emc_row2im(float *restrict dx, const float *restrict rows, int batch, int h, int w, int c,
                int kernel, int stride, int padding, int ho, int wo) {
    memset(dx, 0, (size_t)batch * h * w * c * sizeof(float));
    const size_t run = (size_t)kernel * c;
    for (int b = 0; b < batch; b++) {
        float *image = dx + (size_t)b * h * w * c;
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < wo; ox++) {
                int ix0 = ox * stride - padding;
                int inside = ix0 >= 0 && ix0 + kernel <= w;
                for (int ky = 0; ky < kernel; ky++) {
                    int iy = oy * stride - padding + ky;
                    if (iy < 0 || iy >= h) { rows += run; continue; }
                    float *line = image + (size_t)iy * w * c;
                    if (inside) {
                        float *d = line + (size_t)ix0 * c;
                        for (size_t i = 0; i < run; i++) d[i] += rows[i];
                        rows += run;
                        continue;
                    }
                    for (int kx = 0; kx < kernel; kx++) {
                        int ix = ix0 + kx;
                        if (ix >= 0 && ix < w) {
                            float *d = line + (size_t)ix * c;
                            for (int ch = 0; ch < c; ch++) d[ch] += rows[ch];
                        }
                        rows += c;
                    }
                }
            }
        }
    }
}

// Branch-free: which input of a window is largest is data-dependent and unpredictable, and a mispredicted branch per
// input cost more than the rest of the layer. Selects over a channel run vectorise (AVX2/AVX-512 clones).
// Channel counts that are multiples of 4 (every pooled layer emc builds) take groups of 4 channels in SSE2 registers,
// which every x86-64 has: a loop of 4 to 16 channels per window position was too short for the compilers' vector code.
#if defined(__x86_64__)
#include <emmintrin.h>
static void maxpool_forward_by4(float *restrict y, int32_t *restrict argmax, const float *restrict x,
                                int batch, int h, int w, int c, int kernel, int stride, int ho, int wo) {
    const __m128i lanes = _mm_setr_epi32(0, 1, 2, 3);
    for (int b = 0; b < batch; b++) {
        const float *image = x + (size_t)b * h * w * c;
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < wo; ox++) {
                int32_t first = (int32_t)(((size_t)(oy * stride) * w + ox * stride) * c);
                for (int ch = 0; ch < c; ch += 4) {
                    __m128 best = _mm_loadu_ps(image + first + ch);
                    __m128i where = _mm_add_epi32(_mm_set1_epi32(first + ch), lanes);
                    for (int ky = 0; ky < kernel; ky++) {
                        for (int kx = 0; kx < kernel; kx++) {
                            if (ky == 0 && kx == 0) continue;
                            int32_t at = (int32_t)(((size_t)(oy * stride + ky) * w + ox * stride + kx) * c) + ch;
                            __m128 v = _mm_loadu_ps(image + at);
                            // Strictly greater: ties keep the first maximum, as PyTorch does.
                            __m128 greater = _mm_cmpgt_ps(v, best);
                            best = _mm_or_ps(_mm_and_ps(greater, v), _mm_andnot_ps(greater, best));
                            __m128i g = _mm_castps_si128(greater);
                            __m128i index = _mm_add_epi32(_mm_set1_epi32(at), lanes);
                            where = _mm_or_si128(_mm_and_si128(g, index), _mm_andnot_si128(g, where));
                        }
                    }
                    _mm_storeu_ps(y + ch, best);
                    _mm_storeu_si128((__m128i *)(argmax + ch), where);
                }
                y += c;
                argmax += c;
            }
        }
    }
}
#endif

EMC_CLONES
void emc_maxpool_forward(float *restrict y, int32_t *restrict argmax, const float *restrict x,
                         int batch, int h, int w, int c, int kernel, int stride, int ho, int wo) {
#if defined(__x86_64__)
    // Multiples of 16 channels vectorise in the general loop below (AVX-512 and AVX2 clones).
    if (c % 4 == 0 && c % 16 != 0) { maxpool_forward_by4(y, argmax, x, batch, h, w, c, kernel, stride, ho, wo); return; }
#endif
    for (int b = 0; b < batch; b++) {
        const float *image = x + (size_t)b * h * w * c;
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < wo; ox++) {
                int32_t first = (int32_t)(((size_t)(oy * stride) * w + ox * stride) * c);
                for (int ch = 0; ch < c; ch++) { y[ch] = image[first + ch]; argmax[ch] = first + ch; }
                for (int ky = 0; ky < kernel; ky++) {
                    for (int kx = 0; kx < kernel; kx++) {
                        if (ky == 0 && kx == 0) continue;
                        int32_t at = (int32_t)(((size_t)(oy * stride + ky) * w + ox * stride + kx) * c);
                        const float *in = image + at;
                        for (int ch = 0; ch < c; ch++) {
                            // Strictly greater: ties keep the first maximum, as PyTorch does.
                            int greater = in[ch] > y[ch];
                            y[ch] = greater ? in[ch] : y[ch];
                            argmax[ch] = greater ? at + ch : argmax[ch];
                        }
                    }
                }
                y += c;
                argmax += c;
            }
        }
    }
}

// Windows that tile the input (stride = kernel, H = Ho·K, W = Wo·K): every input is written once, in order, the
// gradient at the window's recorded maximum and zero elsewhere; no clearing pass and no scattered adds. The same values
// as the scatter: each input belongs to one window, so it receives one gradient or none.
// BODY runs for every input position in order, with `image` the sample's input gradient, `o` the offset of its window's
// c outputs (and recorded maxima), `at` the position's offset in the sample.
#define FOR_EACH_TILED_INPUT(BODY)                                                                                     \
    for (int b = 0; b < batch; b++) {                                                                                  \
        float *image = dx + (size_t)b * h * w * c;                                                                     \
        for (int oy = 0; oy < ho; oy++)                                                                                \
            for (int ky = 0; ky < kernel; ky++)                                                                        \
                for (int ox = 0; ox < wo; ox++) {                                                                      \
                    size_t o = ((size_t)(b * ho + oy) * wo + ox) * c;                                                  \
                    for (int kx = 0; kx < kernel; kx++) {                                                              \
                        int32_t at = (int32_t)(((size_t)(oy * kernel + ky) * w + ox * kernel + kx) * c);               \
                        BODY                                                                                           \
                    }                                                                                                  \
                }                                                                                                      \
    }

#if defined(__x86_64__)
static void maxpool_backward_tiles_by4(float *restrict dx, const int32_t *restrict argmax, const float *restrict dy,
                                       int batch, int h, int w, int c, int kernel, int ho, int wo) {
    const __m128i lanes = _mm_setr_epi32(0, 1, 2, 3);
    FOR_EACH_TILED_INPUT(
        for (int ch = 0; ch < c; ch += 4) {
            __m128i here = _mm_add_epi32(_mm_set1_epi32(at + ch), lanes);
            __m128 hit = _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)(argmax + o + ch)), here));
            _mm_storeu_ps(image + at + ch, _mm_and_ps(hit, _mm_loadu_ps(dy + o + ch)));
        })
}
#endif

EMC_CLONES
static void maxpool_backward_tiles(float *restrict dx, const int32_t *restrict argmax, const float *restrict dy,
                                   int batch, int h, int w, int c, int kernel, int ho, int wo) {
    FOR_EACH_TILED_INPUT(for (int ch = 0; ch < c; ch++) image[at + ch] = argmax[o + ch] == at + ch ? dy[o + ch] : 0.0f;)
}

void emc_maxpool_backward_windows(float *restrict dx, const int32_t *restrict argmax, const float *restrict dy,
                                  int batch, int h, int w, int c, int kernel, int stride, int ho, int wo) {
    // From 8 channels (measured with emc bench train: 4-channel layers ran 3% slower this way, 8 and 32 faster).
    if (c >= 8 && stride == kernel && h == ho * kernel && w == wo * kernel) {
#if defined(__x86_64__)
        if (c % 4 == 0 && c % 16 != 0) { maxpool_backward_tiles_by4(dx, argmax, dy, batch, h, w, c, kernel, ho, wo); return; }
#endif
        maxpool_backward_tiles(dx, argmax, dy, batch, h, w, c, kernel, ho, wo);
        return;
    }
    emc_maxpool_backward(dx, argmax, dy, batch, (size_t)h * w * c, (size_t)ho * wo * c);
}

void emc_maxpool_backward(float *restrict dx, const int32_t *restrict argmax, const float *restrict dy,
                          int batch, size_t in_count, size_t out_count) {
    memset(dx, 0, (size_t)batch * in_count * sizeof(float));
    for (int b = 0; b < batch; b++) {
        float *d = dx + (size_t)b * in_count;
        const int32_t *a = argmax + (size_t)b * out_count;
        const float *g = dy + (size_t)b * out_count;
        for (size_t j = 0; j < out_count; j++) d[a[j]] += g[j];
    }
}


// GELU, SiLU, sigmoid and softmax: vectorisable through emc_exp and emc_erf, no contraction, so every clone agrees.
#pragma clang fp contract(off)
// GELU: y = v·Φ(v), f′(v) = Φ(v) + v·φ(v); φ(v) = exp(−v²/2)/√(2π) is the exponential erf(v/√2) is made from.
EMC_CLONES
void emc_gelu_forward(float *restrict y, float *restrict derivative, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], gaussian;
        float erf = emc_erf_gaussian(v * 0.70710678118654752f, &gaussian);
        y[i] = 0.5f * v * (1.0f + erf);
        derivative[i] = 0.5f * (1.0f + erf) + v * (gaussian * 0.39894228040143268f);
    }
}

// SiLU: y = v·s, f′(v) = s·(1 + v·(1 − s)), s = 1/(1 + exp(−v)).
EMC_CLONES
void emc_silu_forward(float *restrict y, float *restrict derivative, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float e = 1.0f + emc_exp(-x[i]), s = 1.0f / e;
        y[i] = x[i] / e;
        derivative[i] = s * (1.0f + x[i] * (1.0f - s));
    }
}

EMC_CLONES
void emc_multiply(float *restrict z, const float *restrict x, const float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) z[i] = x[i] * y[i];
}

// Squeeze-and-excitation's per-sample channel gate on `pixels` rows of c channels: y = x·g, its gradient dg[ch] += Σ dy·x
// over the rows in order, and dx += dy·g. Each product rounded before its sum (no contraction), as the scalar loops.
EMC_CLONES
void emc_scale_channels(float *restrict y, const float *restrict x, const float *restrict g, size_t pixels, size_t c) {
    for (size_t p = 0; p < pixels; p++)
        for (size_t ch = 0; ch < c; ch++) y[p * c + ch] = x[p * c + ch] * g[ch];
}

EMC_CLONES
void emc_channel_product_sums(float *restrict dg, const float *restrict dy, const float *restrict x, size_t pixels, size_t c) {
    for (size_t p = 0; p < pixels; p++)
        for (size_t ch = 0; ch < c; ch++) dg[ch] = dg[ch] + dy[p * c + ch] * x[p * c + ch];
}

EMC_CLONES
void emc_add_scaled_channels(float *restrict dx, const float *restrict dy, const float *restrict g, size_t pixels, size_t c) {
    for (size_t p = 0; p < pixels; p++)
        for (size_t ch = 0; ch < c; ch++) dx[p * c + ch] = dx[p * c + ch] + dy[p * c + ch] * g[ch];
}

// The optimizers' elementwise steps: PyTorch's arithmetic in its order, each product rounded before its sum (no
// contraction), so every clone, and the scalar loop these replace, computes the same bits.
EMC_CLONES
void emc_sgd_step(float *restrict p, const float *restrict g, float *restrict buffer, size_t n, float lr, float wd,
                  float mu, int firstStep, int nesterov) {
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f) d = d + wd * p[i];
        if (mu != 0.0f) {
            // PyTorch: buf = d on the first step, then buf = mu·buf + d (dampening 0).
            const float b = firstStep ? d : mu * buffer[i] + d;
            buffer[i] = b;
            d = nesterov ? d + mu * b : b;
        }
        p[i] = p[i] - lr * d;
    }
}

EMC_CLONES
void emc_adam_step(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n, float lr,
                   float wd, int decoupled, float beta1, float beta2, float eps, float stepSize, float bias2Root) {
    const float decay = 1.0f - lr * wd, keep1 = 1.0f - beta1, keep2 = 1.0f - beta2;
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (decoupled) p[i] = p[i] * decay;
        else if (wd != 0.0f) d = d + wd * p[i];
        m[i] = m[i] + (d - m[i]) * keep1;         // exp_avg.lerp_(grad, 1 - beta1)
        v[i] = v[i] * beta2 + keep2 * d * d;      // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        const float denom = __builtin_elementwise_sqrt(v[i]) / bias2Root + eps;  // correctly rounded, as Swift's squareRoot()
        p[i] = p[i] - stepSize * m[i] / denom;
    }
}

EMC_CLONES
void emc_sigmoid_forward(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + emc_exp(-x[i]));
}

// The maximum and the sum run in 16 lanes (element j in lane j mod 16), combined in a fixed order: the same bits at
// every instruction set, and vectorised (a single running sum is a dependency chain the compiler may not reorder).
#define LANES 16
EMC_CLONES
void emc_softmax_rows(float *restrict p, size_t rows, size_t columns) {
    for (size_t r = 0; r < rows; r++, p += columns) {
        size_t whole = columns / LANES * LANES;
        float top = p[0];
        if (whole > 0) {
            float lane[LANES];
            for (int l = 0; l < LANES; l++) lane[l] = p[l];
            for (size_t j = LANES; j < whole; j += LANES)
                for (int l = 0; l < LANES; l++) lane[l] = p[j + l] > lane[l] ? p[j + l] : lane[l];
            for (int l = 0; l < LANES; l++) top = lane[l] > top ? lane[l] : top;
        }
        for (size_t j = whole; j < columns; j++) top = p[j] > top ? p[j] : top;
        // The exponentials and their sum in one pass.
        float partial[LANES] = {0};
        for (size_t j = 0; j < whole; j += LANES)
            for (int l = 0; l < LANES; l++) {
                p[j + l] = emc_exp(p[j + l] - top);
                partial[l] += p[j + l];
            }
        float sum = 0.0f;
        for (int l = 0; l < LANES; l++) sum += partial[l];
        for (size_t j = whole; j < columns; j++) {
            p[j] = emc_exp(p[j] - top);
            sum += p[j];
        }
        float inverse = 1.0f / sum;
        for (size_t j = 0; j < columns; j++) p[j] *= inverse;
    }
}

// Softmax's backward, row by row in place: g ← p ⊙ (g − Σ_j p_j·g_j), the sum in 16 lanes as above.
EMC_CLONES
void emc_softmax_backward_rows(float *restrict g, const float *restrict p, size_t rows, size_t columns) {
    for (size_t r = 0; r < rows; r++, p += columns, g += columns) {
        size_t whole = columns / LANES * LANES;
        float partial[LANES] = {0};
        for (size_t j = 0; j < whole; j += LANES)
            for (int l = 0; l < LANES; l++) partial[l] += p[j + l] * g[j + l];
        float dot = 0.0f;
        for (int l = 0; l < LANES; l++) dot += partial[l];
        for (size_t j = whole; j < columns; j++) dot += p[j] * g[j];
        for (size_t j = 0; j < columns; j++) g[j] = p[j] * (g[j] - dot);
    }
}
#undef LANES
#pragma clang fp contract(on)

// emc_sum_rows's general path (columns not dividing 16) for columns c0..<c1 of rows `columns` floats long.
EMC_CLONES
void emc_sum_rows_range(float *restrict out, const float *restrict x, size_t rows, size_t columns, size_t c0, size_t c1) {
    sum_rows_range_body(out, x, rows, columns, c0, c1);
}
