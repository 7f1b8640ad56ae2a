// CRC-32C of any byte range of one buffer, each in a few dozen table lookups after one
// linear pass over the buffer: what WAL recovery needs to test a record candidate at every
// 8-byte offset of a damaged segment without re-reading the bytes each candidate covers
// (which made that scan quadratic in the segment size on crafted corruption).
//
// Why it works: the CRC register update is linear over GF(2) in (register, data). With
// P(i) the register after bytes [0, i) from a zero register, and Z_n the linear map
// "feed n zero bytes", the register after [a, b) from a register s is
// Z_{b-a}(s) ^ P(b) ^ Z_{b-a}(P(a)); Crc32c adds the ~0 start and the final ~.
// Z_n is applied as a product of precomputed Z_{2^k}, each as four byte-indexed tables.
//
// Memory: size/16 bytes of checkpoints plus 4 KiB per bit of the size. The buffer must
// outlive the object and not change. Not thread-safe to build; Of() is const.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace rusd::wal {

class Crc32cRanges {
 public:
  Crc32cRanges(const char* data, size_t size);

  // == Crc32c(data + begin, end - begin), for begin <= end <= size.
  uint32_t Of(size_t begin, size_t end) const;

 private:
  // A linear map on the 32-bit CRC register, as one table per register byte.
  using Operator = std::array<std::array<uint32_t, 256>, 4>;

  static Operator FromColumns(const std::array<uint32_t, 32>& columns);
  static uint32_t Apply(const Operator& op, uint32_t s);
  uint32_t FeedZeros(uint32_t s, size_t n) const;  // Z_n(s)
  uint32_t Prefix(size_t i) const;                 // P(i)

  static constexpr size_t kCheckpointEvery = 64;

  const char* data_;
  size_t size_;
  std::vector<uint32_t> checkpoints_;    // P(k * kCheckpointEvery)
  std::vector<Operator> zeros_pow2_;     // zeros_pow2_[k] = Z_{2^k}
};

}  // namespace rusd::wal
