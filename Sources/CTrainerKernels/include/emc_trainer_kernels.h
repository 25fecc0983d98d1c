#ifndef EMC_TRAINER_KERNELS_H
#define EMC_TRAINER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Trainer kernels over NHWC float32 buffers (see Sources/EMCTrainer for the layer math). */
void emc_relu_forward(float *restrict y, const float *restrict x, size_t n);
void emc_relu_backward(float *restrict dx, const float *restrict x, const float *restrict dy, size_t n);
/// y[r][c] = bias[c] for every row r.
void emc_add_bias(float *restrict y, const float *restrict bias, size_t rows, size_t columns);
/// out[c] += sum over rows of x[r][c].
void emc_sum_rows(float *restrict out, const float *restrict x, size_t rows, size_t columns);
void emc_im2row(float *restrict rows, const float *restrict x, int batch, int h, int w, int c,
                int kernel, int stride, int padding, int ho, int wo);
void emc_row2im(float *restrict dx, const float *restrict rows, int batch, int h, int w, int c,
                int kernel, int stride, int padding, int ho, int wo);
void emc_maxpool_forward(float *restrict y, int32_t *restrict argmax, const float *restrict x,
                         int batch, int h, int w, int c, int kernel, int stride, int ho, int wo);
void emc_maxpool_backward(float *restrict dx, const int32_t *restrict argmax, const float *restrict dy,
                          int batch, size_t in_count, size_t out_count);

#endif
