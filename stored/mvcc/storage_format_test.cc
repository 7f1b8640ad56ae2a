// The history key encoding: order-preserving for arbitrary bytes, round-trips, rejects
// garbage.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stored/mvcc/storage_format.h"

namespace rusd::stored::format {
namespace {

std::string RandomKey(std::mt19937& rng) {
  std::string k(rng() % 5, '\0');
  // Bias towards the bytes that matter for the escaping: 00, 01, FE, FF.
  static const char kBytes[] = {'\x00', '\x01', '\x02', 'a', '\xfe', '\xff'};
  for (auto& c : k) c = kBytes[rng() % sizeof(kBytes)];
  return k;
}

TEST(StorageFormatTest, HistoryKeysSortByUserKeyThenRevision) {
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string a = RandomKey(rng), b = RandomKey(rng);
    int64_t ra = rng() % 4, rb = rng() % 4;
    int64_t sa = rng() % 2, sb = rng() % 2;
    auto ta = std::make_tuple(a, ra, sa), tb = std::make_tuple(b, rb, sb);
    std::string ea = HistoryKey(a, ra, sa), eb = HistoryKey(b, rb, sb);
    ASSERT_EQ(ta < tb, ea < eb) << i;
    // Bounds used by range scans.
    ASSERT_EQ(a < b, EscapeKeyBound(a) < EscapeKeyBound(b));
    if (a < b) {
      ASSERT_LT(ea, EscapeKeyBound(b));
      ASSERT_LT(HistoryKeyAfter(a), eb);
    } else {
      ASSERT_GE(ea, EscapeKeyBound(b));
    }
    ASSERT_LT(ea, HistoryKeyAfter(a));
  }
}

TEST(StorageFormatTest, HistoryKeyRoundTrips) {
  std::mt19937 rng(9);
  for (int i = 0; i < 1000; ++i) {
    std::string k = RandomKey(rng), out;
    int64_t main = 0, sub = 0;
    ASSERT_TRUE(DecodeHistoryKey(HistoryKey(k, i, i * 3), &out, &main, &sub));
    EXPECT_EQ(out, k);
    EXPECT_EQ(main, i);
    EXPECT_EQ(sub, i * 3);
  }
}

TEST(StorageFormatTest, MalformedRecordsAreRejected) {
  std::string out;
  int64_t main = 0, sub = 0;
  EXPECT_FALSE(DecodeHistoryKey("", &out, &main, &sub));
  EXPECT_FALSE(DecodeHistoryKey(std::string(17, 'x'), &out, &main, &sub));
  EXPECT_FALSE(DecodeHistoryKey(std::string(30, 'x'), &out, &main, &sub));  // no terminator
  std::string bad_escape = std::string("a\x00\x05", 3) + std::string("\x00\x01", 2) + EncodeRevision(1, 0);
  EXPECT_FALSE(DecodeHistoryKey(bad_escape, &out, &main, &sub));
  uint64_t v = 0;
  EXPECT_FALSE(DecodeU64("1234567", &v));
  EXPECT_TRUE(DecodeU64(EncodeU64(42), &v));
  EXPECT_EQ(v, 42u);
  EXPECT_FALSE(DecodeRevision("short", &main, &sub));
}

// The apply path reuses one buffer: a longer key written before must not leave bytes.
TEST(StorageFormatTest, HistoryKeyIntoOverwritesItsBuffer) {
  std::string buf = "stale bytes of a much longer previous history key";
  EXPECT_EQ(HistoryKeyInto(&buf, std::string("a\0b", 3), 7, 2), HistoryKey(std::string("a\0b", 3), 7, 2));
  EXPECT_EQ(HistoryKeyInto(&buf, "", 0, 0), HistoryKey("", 0, 0));
  const RevisionBytes r = EncodeRevisionBytes(0x0102030405060708, 9);
  EXPECT_EQ(std::string(r.view()), EncodeRevision(0x0102030405060708, 9));
}

}  // namespace
}  // namespace rusd::stored::format
