#include "common/crc32c.h"

#include "raftd/wal/crc32c_ranges.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace rusd::wal {
namespace {

TEST(Crc32cTest, MatchesKnownVectors) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(Crc32cTest, ExtendEqualsOneShotAtEverySplit) {
  std::string s;
  for (int i = 0; i < 100; ++i) s.push_back(static_cast<char>(i * 7 + 3));
  const uint32_t whole = Crc32c(s.data(), s.size());
  for (size_t split = 0; split <= s.size(); ++split) {
    uint32_t c = Crc32cExtend(0, s.data(), split);
    EXPECT_EQ(Crc32cExtend(c, s.data() + split, s.size() - split), whole) << split;
  }
}

TEST(Crc32cTest, AcceleratedAndPortableAgreeAtEveryLengthAndAlignment) {
  std::string s(600, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (char& ch : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ch = static_cast<char>(x);
  }
  for (size_t off = 0; off < 16; ++off) {
    for (size_t n = 0; off + n <= s.size(); n += (n < 64 ? 1 : 37)) {
      for (uint32_t seed : {0u, 0xDEADBEEFu}) {
        ASSERT_EQ(Crc32cExtend(seed, s.data() + off, n), Crc32cExtendPortable(seed, s.data() + off, n))
            << "offset " << off << " length " << n << " seed " << seed;
      }
    }
  }
  EXPECT_EQ(Crc32cExtendPortable(0, "123456789", 9), 0xE3069283u);
}

TEST(Crc32cRangesTest, EveryRangeEqualsTheDirectCrc) {
  std::mt19937 rng(7);
  std::string s(5000, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  Crc32cRanges ranges(s.data(), s.size());
  // Every range touching the ends and the checkpoint boundaries, then random ones.
  for (size_t b : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{4999}}) {
    for (size_t e = b; e <= s.size(); ++e) {
      ASSERT_EQ(ranges.Of(b, e), Crc32c(s.data() + b, e - b)) << b << ".." << e;
    }
  }
  for (int i = 0; i < 20000; ++i) {
    size_t b = rng() % (s.size() + 1);
    size_t e = rng() % (s.size() + 1);
    if (b > e) std::swap(b, e);
    ASSERT_EQ(ranges.Of(b, e), Crc32c(s.data() + b, e - b)) << b << ".." << e;
  }
}

TEST(Crc32cRangesTest, EmptyBuffer) {
  Crc32cRanges ranges(nullptr, 0);
  EXPECT_EQ(ranges.Of(0, 0), Crc32c(nullptr, 0));
}

}  // namespace
}  // namespace rusd::wal
