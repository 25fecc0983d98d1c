#ifndef EMC_KERNELS_H
#define EMC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of `length` bytes, continuing from `crc`
/// (pass 0 to start). Uses the SSE4.2 crc32 instruction when the CPU has it, slicing-by-8 otherwise.
uint32_t emc_crc32c(uint32_t crc, const void *data, size_t length);

/// The portable slicing-by-8 path, exposed so tests can check both paths agree.
uint32_t emc_crc32c_software(uint32_t crc, const void *data, size_t length);

/// 1 when emc_crc32c uses the hardware instruction.
int emc_crc32c_is_hardware(void);

/// Byte-delta filter: dst[i] = src[i] - src[i - stride] (mod 256) for i >= stride, dst[i] = src[i] below.
void emc_delta_encode(uint8_t *restrict dst, const uint8_t *restrict src, size_t n, size_t stride);

/// Inverse of emc_delta_encode, in place: p[i] += p[i - stride]. SSSE3 for strides 1 to 4.
void emc_delta_decode(uint8_t *p, size_t n, size_t stride);

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

/// out[i] = in[i]·scale[i mod channels] + offset[i mod channels] (channels 1 to 4): uint8 samples to normalised floats.
void emc_u8_to_f32_affine(float *restrict out, const uint8_t *restrict in, size_t n,
                          const float *restrict scale, const float *restrict offset, int channels);

/// For each k: out[k·S ..] = affine(base[indices[k]·S ..]) over S = sample_bytes, prefetching ahead.
void emc_gather_u8_to_f32(float *restrict out, const uint8_t *restrict base, const uint32_t *restrict indices, size_t count,
                          size_t sample_bytes, const float *restrict scale, const float *restrict offset, int channels);

#endif
