// CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected = 0x82F63B78), the checksum of WAL
// records and snapshot chunks, and the hash etcd's HashKV uses. Table-driven, slicing-by-8 (~1.5 GB/s without special instructions); the tables
// are computed at compile time, so there is no global mutable state.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rusd {

// Extends `crc` (the CRC of some preceding bytes; 0 to start) over data[0, n).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

}  // namespace rusd
