#include "raftd/wal/crc32c_ranges.h"

#include <bit>

#include "common/crc32c.h"

namespace rusd::wal {
namespace {

// The register after feeding data[0, n) to register s. Crc32cExtend takes and returns the
// finished (inverted) CRC, so the register is its complement on both sides.
uint32_t Feed(uint32_t s, const char* data, size_t n) { return ~Crc32cExtend(~s, data, n); }

}  // namespace

Crc32cRanges::Crc32cRanges(const char* data, size_t size) : data_(data), size_(size) {
  checkpoints_.reserve(size / kCheckpointEvery + 1);
  uint32_t s = 0;
  checkpoints_.push_back(s);
  for (size_t at = kCheckpointEvery; at <= size; at += kCheckpointEvery) {
    s = Feed(s, data + at - kCheckpointEvery, kCheckpointEvery);
    checkpoints_.push_back(s);
  }
  // Z_1 column by column, then Z_{2^(k+1)} = Z_{2^k} twice, up to the largest n needed.
  std::array<uint32_t, 32> columns{};
  const char zero = 0;
  for (int j = 0; j < 32; ++j) columns[j] = Feed(uint32_t{1} << j, &zero, 1);
  const int bits = std::bit_width(size);
  for (int k = 0; k < bits; ++k) {
    zeros_pow2_.push_back(FromColumns(columns));
    for (auto& c : columns) c = Apply(zeros_pow2_.back(), c);
  }
}

Crc32cRanges::Operator Crc32cRanges::FromColumns(const std::array<uint32_t, 32>& columns) {
  Operator op{};
  for (int lane = 0; lane < 4; ++lane) {
    for (uint32_t v = 1; v < 256; ++v) {
      op[lane][v] = op[lane][v & (v - 1)] ^ columns[lane * 8 + std::countr_zero(v)];
    }
  }
  return op;
}

uint32_t Crc32cRanges::Apply(const Operator& op, uint32_t s) {
  return op[0][s & 0xff] ^ op[1][(s >> 8) & 0xff] ^ op[2][(s >> 16) & 0xff] ^ op[3][s >> 24];
}

uint32_t Crc32cRanges::FeedZeros(uint32_t s, size_t n) const {
  for (size_t k = 0; n != 0; ++k, n >>= 1) {
    if ((n & 1) != 0) s = Apply(zeros_pow2_[k], s);
  }
  return s;
}

uint32_t Crc32cRanges::Prefix(size_t i) const {
  const size_t k = i / kCheckpointEvery;
  const size_t at = k * kCheckpointEvery;
  return Feed(checkpoints_[k], data_ + at, i - at);
}

uint32_t Crc32cRanges::Of(size_t begin, size_t end) const {
  const size_t n = end - begin;
  return ~(FeedZeros(~Prefix(begin), n) ^ Prefix(end));
}

}  // namespace rusd::wal
