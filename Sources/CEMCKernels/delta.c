// Byte-delta filter of the shard format (docs/shard-format.md, "Filter"): stored[i] = raw[i] - raw[i-s].
// Decoding is a strided prefix sum, a serial chain that runs at about 1 byte per cycle in a plain
// loop; the SSSE3 path sums 16 bytes at a time in log steps and adds the carry from the previous
// block with one shuffle, about 8x faster.
#include "emc_kernels.h"
#include <string.h>

void emc_delta_encode(uint8_t *restrict dst, const uint8_t *restrict src, size_t n, size_t stride) {
    size_t head = n < stride ? n : stride;
    memcpy(dst, src, head);
    for (size_t i = stride; i < n; i++) dst[i] = (uint8_t)(src[i] - src[i - stride]);
}

static void decode_scalar(uint8_t *p, size_t start, size_t n, size_t stride) {
    for (size_t i = start < stride ? stride : start; i < n; i++) p[i] = (uint8_t)(p[i] + p[i - stride]);
}

#if defined(__x86_64__)
#include <immintrin.h>
#include <cpuid.h>

static int has_ssse3(void) {
    static int state = -1;
    int s = __atomic_load_n(&state, __ATOMIC_RELAXED);
    if (s < 0) {
        unsigned a, b, c, d;
        s = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSSE3);
        __atomic_store_n(&state, s, __ATOMIC_RELAXED);
    }
    return s;
}

__attribute__((target("ssse3")))
static void decode_ssse3(uint8_t *p, size_t n, size_t stride) {
    // Carry for lane i: the previous block's output at 16 - s + (i mod s).
    uint8_t mask_bytes[16];
    for (int i = 0; i < 16; i++) mask_bytes[i] = (uint8_t)(16 - stride + (size_t)i % stride);
    const __m128i mask = _mm_loadu_si128((const __m128i *)mask_bytes);
    __m128i previous = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
        // In-block strided prefix sum: shifts of s, 2s, 4s, 8s bytes (those below 16).
        switch (stride) {
        case 1:
            v = _mm_add_epi8(v, _mm_slli_si128(v, 1));
            v = _mm_add_epi8(v, _mm_slli_si128(v, 2));
            v = _mm_add_epi8(v, _mm_slli_si128(v, 4));
            v = _mm_add_epi8(v, _mm_slli_si128(v, 8));
            break;
        case 2:
            v = _mm_add_epi8(v, _mm_slli_si128(v, 2));
            v = _mm_add_epi8(v, _mm_slli_si128(v, 4));
            v = _mm_add_epi8(v, _mm_slli_si128(v, 8));
            break;
        case 3:
            v = _mm_add_epi8(v, _mm_slli_si128(v, 3));
            v = _mm_add_epi8(v, _mm_slli_si128(v, 6));
            v = _mm_add_epi8(v, _mm_slli_si128(v, 12));
            break;
        default:  /* 4 */
            v = _mm_add_epi8(v, _mm_slli_si128(v, 4));
            v = _mm_add_epi8(v, _mm_slli_si128(v, 8));
            break;
        }
        // The first block has no carry: its first s bytes are stored raw.
        if (i > 0) v = _mm_add_epi8(v, _mm_shuffle_epi8(previous, mask));
        _mm_storeu_si128((__m128i *)(p + i), v);
        previous = v;
    }
    decode_scalar(p, i, n, stride);
}
#endif

void emc_delta_decode(uint8_t *p, size_t n, size_t stride) {
    if (stride == 0 || n <= stride) return;
#if defined(__x86_64__)
    if (stride <= 4 && has_ssse3()) { decode_ssse3(p, n, stride); return; }
#endif
    decode_scalar(p, stride, n, stride);
}
