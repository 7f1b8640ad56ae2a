#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "raftd/wal/wal_format.h"
#include "raftd/wal/wal_reader.h"
#include "raftd/wal/wal_writer.h"

namespace rusd::wal {
namespace {

namespace fs = std::filesystem;

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("rusd_wal_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    dir_ = (root_ / "wal").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  static raft::Entry MakeEntry(uint64_t index, uint64_t term, std::string data) {
    raft::Entry e;
    e.index = index;
    e.term = term;
    e.type = data.empty() ? raft::EntryType::kEmpty : raft::EntryType::kNormal;
    e.data = std::move(data);
    return e;
  }

  // Small segments keep the tests fast; the default size is checked once.
  static WalOptions Small() {
    WalOptions o;
    o.segment_bytes = 64 * 1024;
    return o;
  }

  std::unique_ptr<WalWriter> OpenWriter(const std::string& dir, WalOptions opts = Small()) {
    auto rec = ReadWal(dir);
    EXPECT_TRUE(rec.ok()) << rec.status().ToString();
    auto w = WalWriter::Open(dir, *rec, opts);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return std::move(w).value();
  }

  // Appends entries [from, to] of `term`, one sync group each.
  static void AppendEach(WalWriter& w, uint64_t from, uint64_t to, uint64_t term,
                         size_t data_bytes = 10) {
    for (uint64_t i = from; i <= to; ++i) {
      raft::Entry e = MakeEntry(i, term, std::string(data_bytes, static_cast<char>('a' + i % 26)));
      w.AddEntries(std::span<const raft::Entry>(&e, 1));
      w.AddHardState(raft::HardState{term, 1, i});
      ASSERT_TRUE(w.Flush(true).ok());
    }
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void WriteFile(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::vector<std::string> SegmentPaths(const std::string& dir) {
    auto rec = ReadWal(dir);
    std::vector<std::string> out;
    for (const auto& s : rec->segments) out.push_back(s.path);
    return out;
  }

  fs::path root_;
  std::string dir_;
};

TEST_F(WalTest, MissingDirectoryIsAnEmptyLog) {
  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok());
  EXPECT_TRUE(rec->entries.empty());
  EXPECT_TRUE(rec->segments.empty());
  EXPECT_EQ(rec->hard_state, raft::HardState{});
}

TEST_F(WalTest, RoundTripEntriesAndHardStateInOneSyncPerGroup) {
  auto w = OpenWriter(dir_, WalOptions{});
  std::vector<raft::Entry> batch;
  batch.push_back(MakeEntry(1, 1, ""));
  batch.push_back(MakeEntry(2, 1, "hello"));
  batch.push_back(MakeEntry(3, 1, std::string(1000, 'x')));
  w->AddEntries(batch);
  w->AddHardState(raft::HardState{1, 7, 3});
  const uint64_t before = w->fsyncs();
  ASSERT_TRUE(w->Flush(true).ok());
  EXPECT_EQ(w->fsyncs(), before + 1) << "one fdatasync for the whole group";
  w->AddHardState(raft::HardState{1, 7, 3});
  ASSERT_TRUE(w->Flush(false).ok());
  EXPECT_EQ(w->fsyncs(), before + 1) << "unsynced flush";
  EXPECT_EQ(w->last_index(), 3u);
  w.reset();

  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  ASSERT_EQ(rec->entries.size(), 3u);
  EXPECT_EQ(rec->entries[0].type, raft::EntryType::kEmpty);
  EXPECT_EQ(rec->entries[1].data, "hello");
  EXPECT_EQ(rec->entries[2].data, std::string(1000, 'x'));
  EXPECT_EQ(rec->entries[2].index, 3u);
  EXPECT_EQ(rec->hard_state, (raft::HardState{1, 7, 3}));
  EXPECT_FALSE(rec->torn_tail);
  ASSERT_EQ(rec->segments.size(), 1u);
  EXPECT_EQ(fs::path(rec->segments[0].path).filename(), "0000000000000000-0000000000000001.wal");
  EXPECT_EQ(fs::file_size(rec->segments[0].path), kDefaultSegmentBytes) << "preallocated";
}

TEST_F(WalTest, RestartAppendsAfterRecoveredRecords) {
  {
    auto w = OpenWriter(dir_);
    AppendEach(*w, 1, 3, 1);
  }
  {
    auto w = OpenWriter(dir_);
    EXPECT_EQ(w->last_index(), 3u);
    AppendEach(*w, 4, 6, 2);
  }
  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  ASSERT_EQ(rec->entries.size(), 6u);
  EXPECT_EQ(rec->entries[5].term, 2u);
  EXPECT_EQ(rec->hard_state.commit, 6u);
}

TEST_F(WalTest, ReopenSyncsARecoveredTailTheDeadWriterLeftUnsynced) {
  {
    // A writer killed between writing and syncing: its records are only in the page cache.
    auto w = OpenWriter(dir_);
    raft::Entry e = MakeEntry(1, 1, "unsynced");
    w->AddEntries(std::span<const raft::Entry>(&e, 1));
    ASSERT_TRUE(w->Flush(false).ok());
  }
  auto w = OpenWriter(dir_);
  EXPECT_EQ(w->last_index(), 1u);
  // Its successor commits what it recovered, so it must make it durable first, even when
  // its own first write rolls over to a new segment and never syncs the old one.
  EXPECT_EQ(w->fsyncs(), 1u);
}

TEST_F(WalTest, LaterEntryWithLowerIndexOverwritesTheSuffix) {
  auto w = OpenWriter(dir_);
  AppendEach(*w, 1, 5, 1);
  AppendEach(*w, 4, 4, 2);
  w.reset();
  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok());
  ASSERT_EQ(rec->entries.size(), 4u);
  EXPECT_EQ(rec->entries[2].term, 1u);
  EXPECT_EQ(rec->entries[3].term, 2u);
}

// Simulates a crash in the middle of writing the last record: every prefix of it reached
// the disk, the rest reads as zeros (or as garbage, or the file ends there).
TEST_F(WalTest, TornTailAtEveryByteOffsetOfTheLastRecordIsCutOff) {
  const std::string golden = (root_ / "golden").string();
  {
    auto w = OpenWriter(golden);
    AppendEach(*w, 1, 3, 1);
  }
  auto good = ReadWal(golden);
  ASSERT_TRUE(good.ok());
  const uint64_t start = good->tail_offset;  // where the last record will begin
  {
    auto w = OpenWriter(golden);
    raft::Entry e = MakeEntry(4, 1, "the-last-record");
    w->AddEntries(std::span<const raft::Entry>(&e, 1));
    ASSERT_TRUE(w->Flush(true).ok());
  }
  const std::string seg_name = fs::path(good->segments[0].path).filename();
  const std::string bytes = ReadFile(golden + "/" + seg_name);
  const size_t record = AlignedRecordSize(kEntryPayloadPrefix + 15);
  const size_t unpadded = kRecordHeaderSize + kEntryPayloadPrefix + 15;

  enum Mode { kZeros, kGarbage, kTruncated };
  for (Mode mode : {kZeros, kGarbage, kTruncated}) {
    for (size_t cut = 0; cut < unpadded; ++cut) {
      SCOPED_TRACE("mode " + std::to_string(mode) + " cut " + std::to_string(cut));
      const std::string dir = (root_ / ("torn" + std::to_string(mode) + "_" + std::to_string(cut))).string();
      fs::create_directories(dir);
      std::string damaged = bytes;
      if (mode == kTruncated) {
        damaged.resize(start + cut);
      } else {
        for (size_t i = start + cut; i < start + record; ++i) {
          damaged[i] = mode == kZeros ? '\0' : static_cast<char>(0x5a ^ i);
        }
      }
      WriteFile(dir + "/" + seg_name, damaged);
      auto rec = ReadWal(dir);
      ASSERT_TRUE(rec.ok()) << rec.status().ToString();
      ASSERT_EQ(rec->entries.size(), 3u);
      EXPECT_EQ(rec->tail_offset, start);
      // The writer cuts the tail and the log continues cleanly after it.
      {
        auto w = WalWriter::Open(dir, *rec, Small());
        ASSERT_TRUE(w.ok()) << w.status().ToString();
        raft::Entry e = MakeEntry(4, 2, "after");
        (*w)->AddEntries(std::span<const raft::Entry>(&e, 1));
        ASSERT_TRUE((*w)->Flush(true).ok());
      }
      auto again = ReadWal(dir);
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      ASSERT_EQ(again->entries.size(), 4u);
      EXPECT_EQ(again->entries[3].data, "after");
      EXPECT_FALSE(again->torn_tail);
      fs::remove_all(dir);
    }
  }
}

TEST_F(WalTest, CorruptionInTheMiddleIsRefusedNamingFileAndOffset) {
  {
    auto w = OpenWriter(dir_);
    AppendEach(*w, 1, 6, 1);
  }
  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok());
  const std::string path = rec->segments[0].path;
  // Find the record of entry 2 by walking the records.
  std::string bytes = ReadFile(path);
  size_t off = 0;
  size_t target = 0;
  while (true) {
    RecordView rv;
    const char* reason;
    ASSERT_EQ(DecodeRecord(bytes.data() + off, bytes.size() - off, &rv, &reason),
              DecodeOutcome::kRecord);
    if (rv.type == RecordType::kEntry && GetU64(rv.payload) == 2) {
      target = off;
      break;
    }
    off += rv.size;
  }
  bytes[target + kRecordHeaderSize + kEntryPayloadPrefix + 3] ^= 0x01;  // one bit of data
  WriteFile(path, bytes);
  auto bad = ReadWal(dir_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find(path), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("offset " + std::to_string(target)), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("crc mismatch"), std::string::npos);
}

TEST_F(WalTest, SegmentRolloverAndReplayAcrossSegments) {
  WalOptions opts;
  opts.segment_bytes = 4096;
  auto w = OpenWriter(dir_, opts);
  for (uint64_t i = 1; i <= 100; i += 5) {
    std::vector<raft::Entry> batch;
    for (uint64_t j = i; j < i + 5; ++j) batch.push_back(MakeEntry(j, 1, std::string(100, 'q')));
    w->AddEntries(batch);
    w->AddHardState(raft::HardState{1, 1, i + 4});
    ASSERT_TRUE(w->Flush(true).ok());
  }
  EXPECT_GT(w->segment_count(), 3u);
  w.reset();
  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  ASSERT_EQ(rec->entries.size(), 100u);
  EXPECT_EQ(rec->entries[99].index, 100u);
  EXPECT_EQ(rec->hard_state.commit, 100u);
  for (size_t i = 1; i < rec->segments.size(); ++i) {
    EXPECT_EQ(rec->segments[i].sequence, i);
    EXPECT_GT(rec->segments[i].first_index, rec->segments[i - 1].first_index);
  }
}

TEST_F(WalTest, CorruptionInAnEarlierSegmentIsRefused) {
  WalOptions opts;
  opts.segment_bytes = 4096;
  {
    auto w = OpenWriter(dir_, opts);
    AppendEach(*w, 1, 60, 1, 100);
  }
  auto paths = SegmentPaths(dir_);
  ASSERT_GE(paths.size(), 2u);
  std::string bytes = ReadFile(paths[0]);
  bytes[200] ^= 0x40;
  WriteFile(paths[0], bytes);
  auto bad = ReadWal(dir_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find(paths[0]), std::string::npos) << bad.status().message();
}

TEST_F(WalTest, TrimDeletesOnlySegmentsWhollyBelowTheIndex) {
  WalOptions opts;
  opts.segment_bytes = 4096;
  auto w = OpenWriter(dir_, opts);
  AppendEach(*w, 1, 80, 1, 100);
  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok());
  const size_t before = rec->segments.size();
  ASSERT_GE(before, 3u);
  const uint64_t second_first = rec->segments[1].first_index;
  const uint64_t third_first = rec->segments[2].first_index;
  ASSERT_TRUE(w->Trim(second_first - 1).ok());
  EXPECT_EQ(w->segment_count(), before) << "segment 0 still holds entry second_first - 1";
  ASSERT_TRUE(w->Trim(third_first).ok());
  EXPECT_EQ(w->segment_count(), before - 2);
  ASSERT_TRUE(w->Trim(1000).ok());
  EXPECT_EQ(w->segment_count(), 1u) << "the last segment is never deleted";
  AppendEach(*w, 81, 82, 1, 100);
  w.reset();
  auto after = ReadWal(dir_);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->prev_index + after->entries.size(), 82u);
  EXPECT_EQ(after->entries.back().index, 82u);
  EXPECT_EQ(after->prev_term, 1u);
  EXPECT_EQ(after->hard_state.commit, 82u);
  EXPECT_EQ(after->segments.size(), 1u);
}

TEST_F(WalTest, UnrelatedFilesAreIgnoredAndGarbageSegmentsRefused) {
  {
    auto w = OpenWriter(dir_);
    AppendEach(*w, 1, 2, 1);
  }
  WriteFile(dir_ + "/notes.txt", "hello");
  WriteFile(dir_ + "/0000000000000000-zz.wal", "nope");
  WriteFile(dir_ + "/0000000000000001-0000000000000003.wal.tmp", "half-created");
  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  EXPECT_EQ(rec->entries.size(), 2u);
  {
    auto w = WalWriter::Open(dir_, *rec, Small());
    ASSERT_TRUE(w.ok());
  }
  EXPECT_FALSE(fs::exists(dir_ + "/0000000000000001-0000000000000003.wal.tmp"));

  std::mt19937 rng(7);
  std::string garbage(64 * 1024, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  WriteFile(dir_ + "/0000000000000001-0000000000000003.wal", garbage);
  auto bad = ReadWal(dir_);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("0000000000000001-0000000000000003.wal at offset 0"),
            std::string::npos)
      << bad.status().message();

  fs::remove(dir_ + "/0000000000000001-0000000000000003.wal");
  WriteFile(dir_ + "/0000000000000005-0000000000000003.wal", garbage);
  bad = ReadWal(dir_);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("missing segment"), std::string::npos)
      << bad.status().message();
}

TEST_F(WalTest, ZeroedRecordFollowedBySyncedRecordsIsCorruption) {
  {
    auto w = OpenWriter(dir_);
    AppendEach(*w, 1, 6, 1);
  }
  auto rec = ReadWal(dir_);
  const std::string path = rec->segments[0].path;
  std::string bytes = ReadFile(path);
  // Zero the header of the third record (entry 1 of group 2): later groups follow it.
  size_t off = 0;
  for (int i = 0; i < 2; ++i) {
    RecordView rv;
    const char* reason;
    ASSERT_EQ(DecodeRecord(bytes.data() + off, bytes.size() - off, &rv, &reason),
              DecodeOutcome::kRecord);
    off += rv.size;
  }
  std::fill(bytes.begin() + static_cast<long>(off), bytes.begin() + static_cast<long>(off) + 16, '\0');
  WriteFile(path, bytes);
  auto bad = ReadWal(dir_);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("offset " + std::to_string(off)), std::string::npos)
      << bad.status().message();
}

// Recovery tests a record candidate at every 8-byte offset after a bad record. Crafted
// candidates that each claim a crc over the rest of the file once made that scan quadratic
// (a 1 MiB region took ~20 s); it must stay linear, and still find the one real record of
// a later group behind them, however long that record is.
TEST_F(WalTest, ScanPastCorruptionIsLinearOnCraftedCandidates) {
  {
    auto w = OpenWriter(dir_);
    AppendEach(*w, 1, 3, 1);
  }
  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  const std::string path = rec->segments[0].path;
  const size_t bad_at = rec->tail_offset;
  const uint32_t group = rec->last_group;
  std::string bytes = ReadFile(path).substr(0, bad_at);

  // The bad record, then one candidate every 16 bytes: a plausible entry header whose length
  // reaches the end of the file and whose crc is wrong. The crc's low byte (0x80) is the
  // type byte of the offset 8 bytes earlier, so those offsets fail at once.
  constexpr size_t kRegion = 1 << 20;
  constexpr size_t kRealData = 64 * 1024;
  const size_t real_at = bad_at + kRecordAlign + kRegion;
  const size_t file_size = real_at + AlignedRecordSize(kEntryPayloadPrefix + kRealData);
  bytes.resize(bad_at + kRecordAlign, '\x55');  // the bad record: garbage
  while (bytes.size() < real_at) {
    char h[kRecordHeaderSize] = {};
    PutU32(h, 0xDEADBE80u);
    PutU32(h + 4, static_cast<uint32_t>(file_size - bytes.size() - kRecordHeaderSize));
    h[8] = static_cast<char>(RecordType::kEntry);
    PutU32(h + 12, group + 7);
    bytes.append(h, sizeof h);
  }
  char prefix[kEntryPayloadPrefix] = {};
  PutU64(prefix, 4);
  PutU64(prefix + 8, 1);
  AppendRecord(&bytes, RecordType::kEntry, group + 5, std::string_view(prefix, sizeof prefix),
               std::string(kRealData, 'r'));
  ASSERT_EQ(bytes.size(), file_size);
  WriteFile(path, bytes);

  const auto start = std::chrono::steady_clock::now();
  auto bad = ReadWal(dir_);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find(path), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("at offset " + std::to_string(bad_at)), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("synced record at offset " + std::to_string(real_at)),
            std::string::npos)
      << bad.status().message();
  EXPECT_LT(elapsed, std::chrono::seconds(5))
      << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";

  // Without the real record (zeros in its place) the same candidates are a torn tail.
  std::fill(bytes.begin() + static_cast<long>(real_at), bytes.end(), '\0');
  WriteFile(path, bytes);
  const auto start2 = std::chrono::steady_clock::now();
  auto torn = ReadWal(dir_);
  const auto elapsed2 = std::chrono::steady_clock::now() - start2;
  ASSERT_TRUE(torn.ok()) << torn.status().ToString();
  EXPECT_TRUE(torn->torn_tail);
  EXPECT_EQ(torn->tail_offset, bad_at);
  EXPECT_EQ(torn->entries.size(), 3u);
  EXPECT_LT(elapsed2, std::chrono::seconds(5));
}

// A follower that installed a snapshot restarts its log at the snapshot point: recovery
// starts from the restarting segment, whatever older segments (gone, or left by a crash
// before their deletion) held.
TEST_F(WalTest, ResetToRestartsTheLogAtASnapshotPoint) {
  {
    auto w = OpenWriter(dir_);
    AppendEach(*w, 1, 5, 2);
    ASSERT_TRUE(w->ResetTo(100, 7).ok());
    EXPECT_EQ(w->segment_count(), 1u);
    AppendEach(*w, 101, 102, 7);
  }
  auto rec = ReadWal(dir_);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  EXPECT_EQ(rec->prev_index, 100u);
  EXPECT_EQ(rec->prev_term, 7u);
  ASSERT_EQ(rec->entries.size(), 2u);
  EXPECT_EQ(rec->entries[0].index, 101u);
  EXPECT_EQ(rec->hard_state.commit, 102u);

  // A crash after the restarting segment was written but before older ones were deleted.
  fs::remove_all(root_);
  std::string old_copy;
  {
    auto w = OpenWriter(dir_);
    AppendEach(*w, 1, 5, 2);
  }
  auto before = ReadWal(dir_);
  ASSERT_TRUE(before.ok());
  const std::string old_path = before->segments.front().path;
  old_copy = ReadFile(old_path);
  {
    auto w = OpenWriter(dir_);
    ASSERT_TRUE(w->ResetTo(50, 4).ok());
  }
  WriteFile(old_path, old_copy);  // as if the deletion never happened
  auto after = ReadWal(dir_);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->segments.size(), 2u);
  EXPECT_EQ(after->prev_index, 50u);
  EXPECT_TRUE(after->entries.empty());
}

}  // namespace
}  // namespace rusd::wal
