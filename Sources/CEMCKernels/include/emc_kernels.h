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

/// Flushes the C library's standard output; 0 when everything written to it reached the file, -1 otherwise (errno
/// says why). Swift's print writes through this buffer.
int emc_flush_stdout(void);

// The CPUs this process may run on (its affinity mask, else the CPUs online), at least 1.
int emc_cpu_count(void);

#endif
