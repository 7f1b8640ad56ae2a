// CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected = 0x82F63B78), the checksum of WAL
// records and snapshot chunks, and the hash etcd's HashKV uses. On x86-64 CPUs with SSE4.2
// the crc32 instruction (~5x the table's speed: raftd checksums every WAL record, ~3% of a
// replicating raftd's CPU with the table); elsewhere table-driven, slicing-by-8 (~1.5 GB/s
// without special instructions). The tables are computed at compile time and the CPU is
// asked once, so there is no global mutable state.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rusd {

// Extends `crc` (the CRC of some preceding bytes; 0 to start) over data[0, n).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

// The table-driven implementation alone (what Crc32cExtend uses without SSE4.2); the same
// values. For tests that check the two agree.
uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t n);

}  // namespace rusd
