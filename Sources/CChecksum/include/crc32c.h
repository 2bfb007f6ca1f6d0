#ifndef OPTIMIZERD_CRC32C_H
#define OPTIMIZERD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (start with 0).
/// Uses the SSE4.2 crc32 instruction on three interleaved lanes when the CPU has it, a table otherwise.
uint32_t optimizerd_crc32c(uint32_t crc, const void *data, size_t length);

/// The same CRC from the table implementation on every CPU (for tests of the fast one).
uint32_t optimizerd_crc32c_portable(uint32_t crc, const void *data, size_t length);

#endif
