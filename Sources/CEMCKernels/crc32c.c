// CRC32C for shard chunk checksums. Three independent hardware streams hide the crc32
// instruction's 3-cycle latency; they are merged with the "shift by n zero bytes" operator,
// precomputed for the fixed stream length. Falls back to slicing-by-8 without SSE4.2.
#include "emc_kernels.h"
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int initialized;

static void init_tables(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int s = 1; s < 8; s++) { c = table[0][c & 0xFF] ^ (c >> 8); table[s][n] = c; }
    }
    __atomic_store_n(&initialized, 1, __ATOMIC_RELEASE);
}

static void ensure_tables(void) {
    if (!__atomic_load_n(&initialized, __ATOMIC_ACQUIRE)) init_tables();  // idempotent: same values
}

static uint32_t sw_update(uint32_t crc, const unsigned char *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) { crc = table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8); n--; }
    while (n >= 8) {
        uint64_t w; memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xFF] ^ table[6][(w >> 8) & 0xFF] ^ table[5][(w >> 16) & 0xFF] ^
              table[4][(w >> 24) & 0xFF] ^ table[3][(w >> 32) & 0xFF] ^ table[2][(w >> 40) & 0xFF] ^
              table[1][(w >> 48) & 0xFF] ^ table[0][w >> 56];
        p += 8; n -= 8;
    }
    while (n--) crc = table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

uint32_t emc_crc32c_software(uint32_t crc, const void *data, size_t length) {
    ensure_tables();
    return ~sw_update(~crc, (const unsigned char *)data, length);
}

#if defined(__x86_64__)
#include <cpuid.h>

// GF(2) helpers for combining CRC streams: multiply a and b modulo the polynomial (reflected).
static uint32_t gf2_multiply(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (int i = 0; i < 32; i++) {
        if (a & 0x80000000u) product ^= b;
        a <<= 1;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;
    }
    return product;
}

// x^(8n) mod P in reflected form: the multiplier that appends n zero bytes to a CRC state.
static uint32_t zeros_operator(size_t n) {
    uint32_t result = 0x80000000u;  // x^0
    uint32_t square = 0x00800000u;  // x^8 (one zero byte)
    while (n) {
        if (n & 1) result = gf2_multiply(result, square);
        square = gf2_multiply(square, square);
        n >>= 1;
    }
    return result;
}

#define STREAM 4096  /* bytes per stream per round: three streams of 4 KiB */
static uint32_t shift_stream;   /* operator for STREAM zero bytes */
static int hw_state = -1;       /* -1 unknown, 0 no, 1 yes */

static int detect(void) {
    int state = __atomic_load_n(&hw_state, __ATOMIC_ACQUIRE);
    if (state >= 0) return state;
    unsigned a, b, c, d;
    int yes = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
    shift_stream = zeros_operator(STREAM);
    __atomic_store_n(&hw_state, yes, __ATOMIC_RELEASE);
    return yes;
}

__attribute__((target("sse4.2")))
static uint32_t hw_update(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c0 = crc;
    while (n && ((uintptr_t)p & 7)) { c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++); n--; }
    while (n >= 3 * STREAM) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *p1 = p + STREAM, *p2 = p + 2 * STREAM;
        for (size_t i = 0; i < STREAM; i += 8) {
            uint64_t w0, w1, w2;
            memcpy(&w0, p + i, 8); memcpy(&w1, p1 + i, 8); memcpy(&w2, p2 + i, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
        }
        // crc(A||B) = shift(crc(A), |B|) ^ crc0(B), where crc0 starts from a zero state.
        c0 = gf2_multiply(shift_stream, (uint32_t)c0) ^ c1;
        c0 = gf2_multiply(shift_stream, (uint32_t)c0) ^ c2;
        p += 3 * STREAM; n -= 3 * STREAM;
    }
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c0 = __builtin_ia32_crc32di(c0, w); p += 8; n -= 8; }
    while (n--) c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
    return (uint32_t)c0;
}

uint32_t emc_crc32c(uint32_t crc, const void *data, size_t length) {
    if (detect()) return ~hw_update(~crc, (const unsigned char *)data, length);
    return emc_crc32c_software(crc, data, length);
}

int emc_crc32c_is_hardware(void) { return detect(); }

#else
uint32_t emc_crc32c(uint32_t crc, const void *data, size_t length) {
    return emc_crc32c_software(crc, data, length);
}
int emc_crc32c_is_hardware(void) { return 0; }
#endif
