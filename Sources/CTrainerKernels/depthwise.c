// Depthwise convolution over NHWC samples (DepthwiseConv2D.swift has the math). Filters are tap-major here, w[t][c], so
// that every loop runs over contiguous channels and vectorises. Each output, gradient and input-gradient element is
// updated tap by tap in the order (pixel, ky, kx) with a separate multiply and add, as the layer's reference loops do:
// every clone gives the same bits.
#include "emc_trainer_kernels.h"
#include "clones.h"

#pragma clang fp contract(off)

// The taps of output pixel (oy, ox) that fall inside the image: ky in [ky0, ky1), kx in [kx0, kx1).
static inline __attribute__((always_inline)) void tap_range(int o, int stride, int padding, int kernel, int size, int *first,
                                                            int *end) {
    int start = o * stride - padding;
    *first = start < 0 ? -start : 0;
    *end = start + kernel > size ? size - start : kernel;
}

// Runs BODY for every output pixel and every tap of it inside the image, in the order (pixel, ky, kx), with `o`, `i`
// and `t` the offsets of the output pixel's, the input pixel's and the tap's c values. The three kernels below differ
// only in BODY.
#define FOR_EACH_TAP(BODY)                                                                                             \
    for (int b = 0; b < batch; b++)                                                                                    \
        for (int oy = 0; oy < ho; oy++) {                                                                              \
            int ky0, ky1;                                                                                              \
            tap_range(oy, stride, padding, kernel, h, &ky0, &ky1);                                                     \
            for (int ox = 0; ox < wo; ox++) {                                                                          \
                int kx0, kx1;                                                                                          \
                tap_range(ox, stride, padding, kernel, width, &kx0, &kx1);                                             \
                size_t o = ((size_t)(b * ho + oy) * wo + ox) * c;                                                      \
                for (int ky = ky0; ky < ky1; ky++) {                                                                   \
                    size_t row = ((size_t)(b * h + oy * stride - padding + ky) * width + ox * stride - padding) * c;   \
                    for (int kx = kx0; kx < kx1; kx++) {                                                               \
                        size_t i = row + (size_t)kx * c, t = (size_t)(ky * kernel + kx) * c;                           \
                        BODY                                                                                           \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
        }

EMC_CLONES
void emc_depthwise_forward(float *restrict y, const float *restrict x, const float *restrict w, int batch, int h, int width,
                           int c, int kernel, int stride, int padding, int ho, int wo) {
    FOR_EACH_TAP(for (int ch = 0; ch < c; ch++) y[o + ch] += w[t + ch] * x[i + ch];)
}

// The filter gradient of channels c0..<c1 and taps t0..<t1: a team's part of the whole pass. The part's sums are kept
// in an array on the stack (copied in and out) when they fit: a team's parts, whose sums neighbour each other in dw,
// wrote a shared cache line at every pixel.
#define LOCAL_FLOATS 8192
static inline __attribute__((always_inline)) void filter_gradient_part(float *restrict dw, const float *restrict dy,
                                                                       const float *restrict x, int batch, int h, int width, int c,
                                                                       int kernel, int stride, int padding, int ho, int wo, int c0,
                                                                       int c1, int t0, int t1) {
    size_t w = (size_t)(c1 - c0), taps = (size_t)(t1 - t0);
    if (w * taps > LOCAL_FLOATS) {
        FOR_EACH_TAP({
            int tap = ky * kernel + kx;
            if (tap >= t0 && tap < t1)
                for (int ch = c0; ch < c1; ch++) dw[t + ch] += dy[o + ch] * x[i + ch];
        })
        return;
    }
    float local[LOCAL_FLOATS] __attribute__((aligned(64)));
    for (size_t k = 0; k < taps; k++) __builtin_memcpy(local + k * w, dw + (t0 + k) * (size_t)c + c0, w * sizeof(float));
    FOR_EACH_TAP({
        int tap = ky * kernel + kx;
        if (tap >= t0 && tap < t1) {
            float *a = local + (size_t)(tap - t0) * w;
            const float *g = dy + o + c0;
            const float *v = x + i + c0;
            for (size_t ch = 0; ch < w; ch++) a[ch] += g[ch] * v[ch];
        }
    })
    for (size_t k = 0; k < taps; k++) __builtin_memcpy(dw + (t0 + k) * (size_t)c + c0, local + k * w, w * sizeof(float));
}

EMC_CLONES
void emc_depthwise_filter_gradient(float *restrict dw, const float *restrict dy, const float *restrict x, int batch, int h,
                                   int width, int c, int kernel, int stride, int padding, int ho, int wo) {
    FOR_EACH_TAP(for (int ch = 0; ch < c; ch++) dw[t + ch] += dy[o + ch] * x[i + ch];)
}

EMC_CLONES
void emc_depthwise_input_gradient(float *restrict dx, const float *restrict dy, const float *restrict w, int batch, int h,
                                  int width, int c, int kernel, int stride, int padding, int ho, int wo) {
    FOR_EACH_TAP(for (int ch = 0; ch < c; ch++) dx[i + ch] += dy[o + ch] * w[t + ch];)
}

// emc_depthwise_filter_gradient for channels c0..<c1 only (a team's part: each channel's sums whole and in order).
EMC_CLONES
void emc_depthwise_filter_gradient_range(float *restrict dw, const float *restrict dy, const float *restrict x, int batch, int h,
                                         int width, int c, int kernel, int stride, int padding, int ho, int wo, int c0, int c1) {
    filter_gradient_part(dw, dy, x, batch, h, width, c, kernel, stride, padding, ho, wo, c0, c1, 0, kernel * kernel);
}

// emc_depthwise_filter_gradient for taps t0..<t1 (ky·K + kx) of every channel only (a team's part where the channels are
// too few to split: each tap's sums whole and in order).
EMC_CLONES
void emc_depthwise_filter_gradient_taps(float *restrict dw, const float *restrict dy, const float *restrict x, int batch, int h,
                                        int width, int c, int kernel, int stride, int padding, int ho, int wo, int t0, int t1) {
    filter_gradient_part(dw, dy, x, batch, h, width, c, kernel, stride, padding, ho, wo, 0, c, t0, t1);
}
