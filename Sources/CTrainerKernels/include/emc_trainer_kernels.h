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

/* C (m×n, row stride ldc) += Aᵀ·B, with A k×m (row stride lda) and B k×n (row stride ldb): for small m and n and a long k
   (gemm_tall.c). emc_gemm_tall_level() tells which version the CPU runs: 2 AVX-512, 1 AVX2 with FMA, 0 none (then
   emc_gemm_tall_accumulate does nothing and returns 0, and the caller uses BLAS). Both versions give the same bits. */
int emc_gemm_tall_level(void);
int emc_gemm_tall_accumulate(int level, int m, int n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                             float *c, size_t ldc);

#endif
