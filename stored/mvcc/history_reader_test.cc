// KvStore::ReadHistory (history_reader.h) against the live events ApplyEntries returned:
// catch-up must produce exactly what a watcher connected at the time would have seen.
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "etcd/mvccpb/kv.pb.h"
#include "rusd/internal.pb.h"
#include "stored/mvcc/kv_store.h"
#include "stored/mvcc/store_test_fixture.h"

namespace rusd::stored {
namespace {

class HistoryReaderTest : public StoreTestFixture {
 protected:
  void Apply(const internal::Command& cmd) {
    ApplyOutput out = ApplyAll({cmd});
    for (auto& ev : out.events) live_.push_back(ev);
  }
  void Put(const std::string& k, const std::string& v) {
    internal::Command c;
    c.mutable_put()->set_key(k);
    c.mutable_put()->set_value(v);
    Apply(c);
  }
  void Del(const std::string& k, const std::string& end = "") {
    internal::Command c;
    c.mutable_delete_range()->set_key(k);
    c.mutable_delete_range()->set_range_end(end);
    Apply(c);
  }
  void TxnPuts(const std::vector<std::string>& keys) {
    internal::Command c;
    for (const auto& k : keys) {
      auto* op = c.mutable_txn()->add_success()->mutable_request_put();
      op->set_key(k);
      op->set_value("t" + k);
    }
    Apply(c);
  }
  void Compact(int64_t rev) {
    internal::Command c;
    c.mutable_compaction()->set_revision(rev);
    Apply(c);
  }
  // All chunks from `start` until caught up; checks chunk invariants on the way.
  std::vector<mvccpb::Event> ReadAll(HistoryQuery q, int* chunks = nullptr) {
    std::vector<mvccpb::Event> out;
    int n = 0;
    for (;;) {
      auto r = store_->ReadHistory(q);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) break;
      ++n;
      EXPECT_EQ(r->compact_revision, 0);
      for (const auto& ev : r->events) {
        EXPECT_GE(ev.kv().mod_revision(), q.start_revision);
        EXPECT_LT(ev.kv().mod_revision(), r->next_revision);
        out.push_back(ev);
      }
      if (r->next_revision > r->current_revision) break;
      EXPECT_GT(r->next_revision, q.start_revision);
      q.start_revision = r->next_revision;
    }
    if (chunks) *chunks = n;
    return out;
  }
  static bool InRange(const std::string& key, const std::string& begin, const std::string& end) {
    if (end.empty()) return key == begin;
    if (end == std::string(1, '\0')) return key >= begin;
    return key >= begin && key < end;
  }
  std::vector<mvccpb::Event> Expected(const std::string& begin, const std::string& end,
                                      int64_t start, bool prev_kv) {
    std::vector<mvccpb::Event> out;
    for (auto ev : live_) {
      if (ev.kv().mod_revision() < start || !InRange(ev.kv().key(), begin, end)) continue;
      if (!prev_kv) ev.clear_prev_kv();
      out.push_back(ev);
    }
    return out;
  }
  static void ExpectSame(const std::vector<mvccpb::Event>& got,
                         const std::vector<mvccpb::Event>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].SerializeAsString(), want[i].SerializeAsString())
          << "event " << i << ": " << got[i].ShortDebugString() << " vs "
          << want[i].ShortDebugString();
    }
  }

  std::vector<mvccpb::Event> live_;
};

TEST_F(HistoryReaderTest, CatchUpEqualsLiveEventsForKeysRangesAndPrefixes) {
  std::mt19937 rng(7);
  const std::vector<std::string> keys = {"a", "b", "b/1", "b/2", "c", std::string("z\0x", 3)};
  for (int i = 0; i < 300; ++i) {
    const std::string& k = keys[rng() % keys.size()];
    switch (rng() % 6) {
      case 0: Del(k); break;
      case 1: TxnPuts({"b/1", "c", "a"}); break;
      case 2: Del("b", "c"); break;
      default: Put(k, "v" + std::to_string(i)); break;
    }
  }
  struct Case { std::string begin, end; };
  const std::vector<Case> cases = {{"a", ""}, {"b/1", ""}, {"b", "c"}, {"b/", "b0"},
                                   {"a", std::string(1, '\0')}, {std::string("z\0x", 3), ""},
                                   {"q", ""}};
  for (const Case& c : cases) {
    for (int64_t start : {1, 2, 57, 200, 298, 400}) {
      for (bool prev : {false, true}) {
        HistoryQuery q;
        q.key = c.begin;
        q.range_end = c.end;
        q.start_revision = start;
        q.prev_kv = prev;
        q.max_events = 7;  // many chunks
        SCOPED_TRACE(c.begin + ".." + c.end + " from " + std::to_string(start));
        ExpectSame(ReadAll(q), Expected(c.begin, c.end, start, prev));
      }
    }
  }
}

TEST_F(HistoryReaderTest, ChunksNeverSplitARevision) {
  for (int i = 0; i < 20; ++i) TxnPuts({"k1", "k2", "k3"});
  HistoryQuery q;
  q.key = "k";
  q.range_end = "l";
  q.start_revision = 1;
  q.max_events = 2;
  int chunks = 0;
  auto all = ReadAll(q, &chunks);
  EXPECT_EQ(all.size(), 60u);
  EXPECT_EQ(chunks, 20);  // 3 events per revision > 2: one revision per chunk
  auto r = store_->ReadHistory(q);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->events.size(), 3u);
  EXPECT_EQ(r->next_revision, 3);
  EXPECT_EQ(r->current_revision, 21);
}

TEST_F(HistoryReaderTest, CompactedStartReportsCompactRevision) {
  for (int i = 0; i < 10; ++i) Put("k", "v" + std::to_string(i));  // revisions 2..11
  Put("j", "x");                                                     // 12
  Compact(6);
  for (auto [key, end] : {std::pair<std::string, std::string>{"k", ""}, {"a", "z"}}) {
    HistoryQuery q;
    q.key = key;
    q.range_end = end;
    q.start_revision = 5;
    auto r = store_->ReadHistory(q);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->compact_revision, 6);
    EXPECT_TRUE(r->events.empty());
    // At the compacted revision itself, what etcd keeps is still delivered.
    q.start_revision = 6;
    q.prev_kv = true;
    auto all = ReadAll(q);
    ASSERT_FALSE(all.empty());
    EXPECT_EQ(all.front().kv().mod_revision(), 6);
    EXPECT_FALSE(all.front().has_prev_kv());  // revision 5 is compacted away
    EXPECT_TRUE(all[1].has_prev_kv());
    EXPECT_EQ(all[1].prev_kv().mod_revision(), 6);
  }
}

TEST_F(HistoryReaderTest, FutureStartIsEmptyAndCaughtUp) {
  Put("k", "v");
  HistoryQuery q;
  q.key = "k";
  q.start_revision = 5;
  auto r = store_->ReadHistory(q);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->events.empty());
  EXPECT_EQ(r->current_revision, 2);
  EXPECT_GT(r->next_revision, r->current_revision);
}

}  // namespace
}  // namespace rusd::stored
