// Sample conversion kernels of the batch pipeline: uint8 samples to normalised float32, gathered by index.
#include "emc_pipeline_kernels.h"
#include <string.h>

void emc_u8_to_f32_affine(float *restrict out, const uint8_t *restrict in, size_t n,
                          const float *restrict scale, const float *restrict offset, int channels) {
    if (channels == 1) {
        const float a = scale[0], b = offset[0];
        for (size_t i = 0; i < n; i++) out[i] = (float)in[i] * a + b;
        return;
    }
    // A period of 16·channels values repeats the channel pattern and fills whole vectors.
    enum { MAXC = 4, PERIOD = 16 * MAXC };
    float a[PERIOD], b[PERIOD];
    const size_t period = 16 * (size_t)channels;
    for (size_t j = 0; j < period; j++) { a[j] = scale[j % channels]; b[j] = offset[j % channels]; }
    size_t i = 0;
    for (; i + period <= n; i += period)
        for (size_t j = 0; j < period; j++) out[i + j] = (float)in[i + j] * a[j] + b[j];
    for (size_t j = 0; i + j < n; j++) out[i + j] = (float)in[i + j] * a[j] + b[j];
}

void emc_gather_u8_to_f32(float *restrict out, const uint8_t *restrict base, const uint32_t *restrict indices, size_t count,
                          size_t sample_bytes, const float *restrict scale, const float *restrict offset, int channels) {
    for (size_t k = 0; k < count; k++) {
        // Random order defeats the hardware prefetcher: ask for the sample two ahead ourselves.
        if (k + 2 < count) {
            const uint8_t *ahead = base + (size_t)indices[k + 2] * sample_bytes;
            for (size_t line = 0; line < sample_bytes; line += 64) __builtin_prefetch(ahead + line, 0, 0);
        }
        emc_u8_to_f32_affine(out + k * sample_bytes, base + (size_t)indices[k] * sample_bytes, sample_bytes, scale, offset, channels);
    }
}
