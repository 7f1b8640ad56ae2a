// The persisted snapshot point: round trip, damage refused, and how it merges with what the
// WAL recovered (trimmed before it, restarted at it, or behind it after a crash).
#include "raftd/snapshot/snapshot_point.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/crc32c.h"

namespace rusd::raftd {
namespace {

namespace fs = std::filesystem;

raft::Entry E(uint64_t index, uint64_t term) {
  raft::Entry e;
  e.index = index;
  e.term = term;
  return e;
}

wal::WalRecovery Wal(uint64_t prev_index, uint64_t prev_term, uint64_t last, uint64_t term,
                     uint64_t commit) {
  wal::WalRecovery r;
  r.prev_index = prev_index;
  r.prev_term = prev_term;
  for (uint64_t i = prev_index + 1; i <= last; ++i) r.entries.push_back(E(i, term));
  r.hard_state = raft::HardState{term, 0, commit};
  return r;
}

raft::SnapshotMeta Point(uint64_t index, uint64_t term) {
  raft::SnapshotMeta m;
  m.index = index;
  m.term = term;
  m.conf.voters = {1, 2, 3};
  m.conf.learners = {9};
  return m;
}

TEST(SnapshotPointTest, RoundTripAndDamageIsRefused) {
  const std::string dir = (fs::temp_directory_path() /
                           ("snapshot_point_test_" + std::to_string(::getpid())))
                              .string();
  fs::remove_all(dir);
  auto none = ReadSnapshotPoint(dir);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(WriteSnapshotPoint(dir, Point(42, 5)).ok());
  auto back = ReadSnapshotPoint(dir);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, Point(42, 5));
  // Every truncation and a flipped byte are refused, never misread.
  const std::string path = dir + "/" + kSnapshotPointFile;
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), n);
    EXPECT_EQ(ReadSnapshotPoint(dir).status().code(), StatusCode::kDataLoss) << n;
  }
  std::string flipped = bytes;
  flipped[10] ^= 1;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(flipped.data(), flipped.size());
  EXPECT_EQ(ReadSnapshotPoint(dir).status().code(), StatusCode::kDataLoss);
  fs::remove_all(dir);
}

// The member list as of the point travels with it (a snapshot sent from here carries it);
// a version 1 file (no members) is still read.
TEST(SnapshotPointTest, KeepsTheMemberListAndReadsVersionOneFiles) {
  const std::string dir = (fs::temp_directory_path() /
                           ("snapshot_point_members_test_" + std::to_string(::getpid())))
                              .string();
  fs::remove_all(dir);
  const std::string members("\x08\x2a\x12\x03n4\0", 8);  // opaque bytes, NUL included
  ASSERT_TRUE(WriteSnapshotPoint(dir, Point(42, 5), members).ok());
  std::string got = "stale";
  auto back = ReadSnapshotPoint(dir, &got);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, Point(42, 5));
  EXPECT_EQ(got, members);
  const std::string path = dir + "/" + kSnapshotPointFile;
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), n);
    EXPECT_EQ(ReadSnapshotPoint(dir, &got).status().code(), StatusCode::kDataLoss) << n;
  }

  // Version 1, as written before members were kept: magic "RUSDSNP1", no members field.
  std::string v1;
  auto put = [&v1](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) v1.push_back(static_cast<char>(v >> (8 * i)));
  };
  put(0x31504E5344535552ull, 8);
  put(42, 8);
  put(5, 8);
  put(3, 4);
  for (uint64_t v : {1, 2, 3}) put(v, 8);
  put(1, 4);
  put(9, 8);
  put(Crc32c(v1.data(), v1.size()), 4);
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(v1.data(), v1.size());
  back = ReadSnapshotPoint(dir, &got);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, Point(42, 5));
  EXPECT_EQ(got, "");
  fs::remove_all(dir);
}

TEST(SnapshotPointTest, WalTrimmedBeforeThePointStartsAfterIt) {
  MergedRecovery m = MergeSnapshotPoint(Wal(10, 1, 60, 2, 55), Point(40, 2));
  EXPECT_FALSE(m.wal_needs_reset);
  EXPECT_EQ(m.state.prev_index, 40u);
  EXPECT_EQ(m.state.prev_term, 2u);
  ASSERT_EQ(m.state.entries.size(), 20u);
  EXPECT_EQ(m.state.entries.front().index, 41u);
  ASSERT_TRUE(m.state.conf_state.has_value());
  EXPECT_EQ(m.state.conf_state->voters, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(m.state.hard_state.commit, 55u);
}

TEST(SnapshotPointTest, WalRestartedAtThePoint) {
  MergedRecovery m = MergeSnapshotPoint(Wal(40, 2, 45, 3, 0), Point(40, 2));
  EXPECT_FALSE(m.wal_needs_reset);
  EXPECT_EQ(m.state.prev_index, 40u);
  EXPECT_EQ(m.state.entries.size(), 5u);
  EXPECT_EQ(m.state.hard_state.commit, 40u);  // a snapshot point is committed
}

TEST(SnapshotPointTest, WalBehindOrDisagreeingNeedsAReset) {
  MergedRecovery behind = MergeSnapshotPoint(Wal(0, 0, 20, 1, 20), Point(40, 2));
  EXPECT_TRUE(behind.wal_needs_reset);
  EXPECT_EQ(behind.state.prev_index, 40u);
  EXPECT_TRUE(behind.state.entries.empty());
  EXPECT_EQ(behind.state.hard_state.commit, 40u);
  MergedRecovery conflict = MergeSnapshotPoint(Wal(0, 0, 50, 1, 20), Point(40, 2));
  EXPECT_TRUE(conflict.wal_needs_reset);
  EXPECT_TRUE(conflict.state.entries.empty());
}

TEST(SnapshotPointTest, NoPointOrAnOlderOneLeavesTheWalAlone) {
  MergedRecovery m = MergeSnapshotPoint(Wal(10, 1, 20, 1, 20), std::nullopt);
  EXPECT_EQ(m.state.prev_index, 10u);
  EXPECT_EQ(m.state.entries.size(), 10u);
  EXPECT_FALSE(m.state.conf_state.has_value());
  MergedRecovery older = MergeSnapshotPoint(Wal(10, 1, 20, 1, 20), Point(5, 1));
  EXPECT_EQ(older.state.prev_index, 10u);
  EXPECT_EQ(older.state.entries.size(), 10u);
}

}  // namespace
}  // namespace rusd::raftd
