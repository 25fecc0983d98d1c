// Elementwise and data-movement kernels of the trainer's layers (NHWC float32). Plain C with
// restrict-qualified pointers so the compiler vectorises them; the matrix products stay in BLAS.
#include "emc_trainer_kernels.h"
#include <string.h>

void emc_relu_forward(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void emc_relu_backward(float *restrict dx, const float *restrict x, const float *restrict dy, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void emc_add_bias(float *restrict y, const float *restrict bias, size_t rows, size_t columns) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * columns;
        for (size_t c = 0; c < columns; c++) row[c] = bias[c];
    }
}

void emc_sum_rows(float *restrict out, const float *restrict x, size_t rows, size_t columns) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * columns;
        for (size_t c = 0; c < columns; c++) out[c] += row[c];
    }
}

void emc_im2row(float *restrict rows, const float *restrict x, int batch, int h, int w, int c,
                int kernel, int stride, int padding, int ho, int wo) {
    const size_t run = (size_t)c * sizeof(float);
    for (int b = 0; b < batch; b++) {
        const float *image = x + (size_t)b * h * w * c;
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < wo; ox++) {
                for (int ky = 0; ky < kernel; ky++) {
                    int iy = oy * stride - padding + ky;
                    if (iy < 0 || iy >= h) { memset(rows, 0, run * kernel); rows += (size_t)c * kernel; continue; }
                    int ix0 = ox * stride - padding;
                    if (ix0 >= 0 && ix0 + kernel <= w) {
                        // The whole kernel row is inside: K·C contiguous floats.
                        memcpy(rows, image + ((size_t)iy * w + ix0) * c, run * kernel);
                        rows += (size_t)c * kernel;
                        continue;
                    }
                    for (int kx = 0; kx < kernel; kx++) {
                        int ix = ix0 + kx;
                        if (ix >= 0 && ix < w) memcpy(rows, image + ((size_t)iy * w + ix) * c, run);
                        else memset(rows, 0, run);
                        rows += c;
                    }
                }
            }
        }
    }
}

void emc_row2im(float *restrict dx, const float *restrict rows, int batch, int h, int w, int c,
                int kernel, int stride, int padding, int ho, int wo) {
    memset(dx, 0, (size_t)batch * h * w * c * sizeof(float));
    for (int b = 0; b < batch; b++) {
        float *image = dx + (size_t)b * h * w * c;
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < wo; ox++) {
                for (int ky = 0; ky < kernel; ky++) {
                    int iy = oy * stride - padding + ky;
                    for (int kx = 0; kx < kernel; kx++) {
                        int ix = ox * stride - padding + kx;
                        if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                            float *d = image + ((size_t)iy * w + ix) * c;
                            for (int ch = 0; ch < c; ch++) d[ch] += rows[ch];
                        }
                        rows += c;
                    }
                }
            }
        }
    }
}

void emc_maxpool_forward(float *restrict y, int32_t *restrict argmax, const float *restrict x,
                         int batch, int h, int w, int c, int kernel, int stride, int ho, int wo) {
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
                        for (int ch = 0; ch < c; ch++) {
                            float v = image[at + ch];
                            // Strictly greater: ties keep the first maximum, as PyTorch does.
                            if (v > y[ch]) { y[ch] = v; argmax[ch] = at + ch; }
                        }
                    }
                }
                y += c;
                argmax += c;
            }
        }
    }
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

