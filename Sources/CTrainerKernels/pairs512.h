#ifndef EMC_PAIRS512_H
#define EMC_PAIRS512_H

// Two consecutive floats in every pair of AVX-512 lanes, for the kernels that give each output two lanes (the direct
// convolution's partial chains at ≤ 8 output channels, the weight gradient's pairs of columns).
#include <immintrin.h>

// Lanes 2i and 2i + 1 hold x[0] and x[1]: one 64-bit broadcast.
static inline __attribute__((always_inline, target("avx512f"))) __m512 broadcast_pair512(const float *x) {
    double pair;
    __builtin_memcpy(&pair, x, sizeof pair);
    return _mm512_castpd_ps(_mm512_set1_pd(pair));
}

// A pair whose second float is missing: x[0] in the even lanes, zero in the odd ones (x[1] is not read).
static inline __attribute__((always_inline, target("avx512f"))) __m512 broadcast_single512(const float *x) {
    return _mm512_maskz_mov_ps(0x5555, _mm512_set1_ps(x[0]));
}

#endif
