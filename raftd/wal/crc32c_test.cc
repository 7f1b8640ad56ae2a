#include "raftd/wal/crc32c.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace rusd::wal
