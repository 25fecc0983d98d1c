#ifndef EMC_PIPELINE_KERNELS_H
#define EMC_PIPELINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// out[i] = in[i]·scale[i mod channels] + offset[i mod channels] (channels 1 to 4): uint8 samples to normalised floats.
void emc_u8_to_f32_affine(float *restrict out, const uint8_t *restrict in, size_t n,
                          const float *restrict scale, const float *restrict offset, int channels);

/// For each k: out[k·S ..] = affine(base[indices[k]·S ..]) over S = sample_bytes, prefetching ahead.
void emc_gather_u8_to_f32(float *restrict out, const uint8_t *restrict base, const uint32_t *restrict indices, size_t count,
                          size_t sample_bytes, const float *restrict scale, const float *restrict offset, int channels);

#endif
