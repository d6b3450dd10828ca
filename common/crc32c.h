// CRC32C (Castagnoli), the checksum every block carries. Hardware-accelerated when the CPU
// has SSE4.2, a table-driven fallback otherwise.
#ifndef NIGHFS_COMMON_CRC32C_H_
#define NIGHFS_COMMON_CRC32C_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace nighfs {

// Extends `crc` (the CRC32C of earlier bytes, 0 to start) with `n` bytes at `data`.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(std::string_view s) { return Crc32cExtend(0, s.data(), s.size()); }

}  // namespace nighfs

#endif  // NIGHFS_COMMON_CRC32C_H_
