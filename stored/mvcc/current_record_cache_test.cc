// CurrentRecordCache: the bound and eviction order; and a store using it answers exactly as
// a store without it (same replies, same events) through puts, deletes, re-creations,
// rolled-back txns, evictions, records too large to keep, and a restart.
#include "stored/mvcc/current_record_cache.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "rusd/internal.pb.h"
#include "stored/mvcc/kv_store.h"

namespace rusd::stored {
namespace {

TEST(CurrentRecordCacheTest, KeepsRecentlyWrittenKeysWithinItsBound) {
  // Entries charge ~230 bytes (key, record, overhead): ~1,100 fit in 256 KiB.
  CurrentRecordCache cache(256 * 1024);
  const std::string record(98, 'r');
  for (int i = 0; i < 2000; ++i) cache.Set("k" + std::to_string(i % 1000), record);
  EXPECT_EQ(cache.size(), 1000u);
  EXPECT_LE(cache.bytes(), 256u * 1024);
  // 3,000 distinct keys do not fit: the oldest leave, the newest stay.
  for (int i = 1000; i < 3000; ++i) cache.Set("k" + std::to_string(i), record);
  EXPECT_LE(cache.bytes(), 256u * 1024);
  EXPECT_LT(cache.size(), 3000u);
  EXPECT_EQ(cache.Find("k0"), nullptr);
  ASSERT_NE(cache.Find("k2999"), nullptr);
  EXPECT_EQ(*cache.Find("k2999"), record);
}

TEST(CurrentRecordCacheTest, RewritingAKeyMakesItTheNewestAndReplacesItsRecord) {
  CurrentRecordCache cache(1024 * 1024);
  cache.Set("a", "1");
  cache.Set("b", "2");
  cache.Set("a", "3");
  ASSERT_NE(cache.Find("a"), nullptr);
  EXPECT_EQ(*cache.Find("a"), "3");
  EXPECT_EQ(cache.size(), 2u);
  cache.Erase("a");
  EXPECT_EQ(cache.Find("a"), nullptr);
  EXPECT_EQ(*cache.Find("b"), "2");
  cache.Erase("missing");
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(CurrentRecordCacheTest, DoesNotKeepRecordsOverA256thOfItsCapacity) {
  CurrentRecordCache cache(1024 * 1024);  // key + record up to 4 KiB
  cache.Set("k", "small");
  ASSERT_NE(cache.Find("k"), nullptr);
  // A large new record for a cached key drops the old one instead of keeping it stale.
  cache.Set("k", std::string(4096, 'x'));  // 4 KiB + 1
  EXPECT_EQ(cache.Find("k"), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

// Two stores, one with the cache (small, so it evicts) and one without, fed the same
// random entries: every reply and event must be identical.
class StoreWithCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = std::filesystem::temp_directory_path() /
            ("rusd_record_cache_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(base_);
    Open();
  }
  void TearDown() override {
    with_.reset();
    without_.reset();
    std::filesystem::remove_all(base_);
  }
  void Open() {
    with_.reset();
    without_.reset();
    KvStoreOptions o;
    o.block_cache_bytes = 8 << 20;
    // ~170 entries of the small values below (key + record <= 128 B are kept): it evicts.
    o.current_record_cache_bytes = 32 * 1024;
    auto a = KvStore::Open((base_ / "with").string(), o);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    with_ = std::move(a).value();
    o.current_record_cache_bytes = 0;
    auto b = KvStore::Open((base_ / "without").string(), o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    without_ = std::move(b).value();
  }

  internal::Command RandomCommand(std::mt19937& rng) {
    internal::Command c;
    auto key = [&] { return "key/" + std::to_string(rng() % 300); };
    // Values around the cache's per-record limit: some are kept, some are not.
    auto value = [&] { return std::string(rng() % 3 == 0 ? 200 : rng() % 40, 'a' + rng() % 26); };
    switch (rng() % 8) {
      case 0: {  // delete one key
        c.mutable_delete_range()->set_key(key());
        c.mutable_delete_range()->set_prev_kv(true);
        break;
      }
      case 1: {  // delete a range
        c.mutable_delete_range()->set_key("key/1");
        c.mutable_delete_range()->set_range_end("key/15");
        break;
      }
      case 2: {  // a txn whose puts are rolled back: its last op fails (key not found)
        auto* t = c.mutable_txn();
        auto* p = t->add_success()->mutable_request_put();
        p->set_key(key());
        p->set_value(value());
        auto* bad = t->add_success()->mutable_request_put();
        bad->set_key("never-written");
        bad->set_ignore_value(true);
        break;
      }
      case 3: {  // a txn writing the same key twice, then reading it
        auto* t = c.mutable_txn();
        const std::string k = key();
        for (int i = 0; i < 2; ++i) {
          auto* p = t->add_success()->mutable_request_put();
          p->set_key(k + std::to_string(i));
          p->set_value(value());
          p->set_prev_kv(true);
        }
        t->add_success()->mutable_request_range()->set_key(k + "0");
        break;
      }
      case 4: {  // ignore_value: keeps the current value
        c.mutable_put()->set_key(key());
        c.mutable_put()->set_ignore_value(true);
        c.mutable_put()->set_prev_kv(true);
        break;
      }
      default: {
        c.mutable_put()->set_key(key());
        c.mutable_put()->set_value(value());
        c.mutable_put()->set_prev_kv(rng() % 2 == 0);
        break;
      }
    }
    return c;
  }

  // Applies `cmds` as one batch to both stores; expects the same outcome.
  void ApplyToBoth(const std::vector<internal::Command>& cmds) {
    std::vector<internal::Entry> entries;
    for (const internal::Command& cmd : cmds) {
      internal::Entry& e = entries.emplace_back();
      e.set_index(++index_);
      e.set_term(1);
      internal::Command c = cmd;
      c.set_request_id(index_);
      e.set_data(c.SerializeAsString());
    }
    auto a = with_->ApplyEntries(entries);
    auto b = without_->ApplyEntries(entries);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    ASSERT_EQ(a->replies.size(), b->replies.size());
    for (size_t i = 0; i < a->replies.size(); ++i) {
      ASSERT_EQ(a->replies[i].ok, b->replies[i].ok) << index_;
      ASSERT_EQ(a->replies[i].response, b->replies[i].response) << index_;
      ASSERT_EQ(a->replies[i].error_message, b->replies[i].error_message) << index_;
    }
    ASSERT_EQ(a->events.size(), b->events.size());
    for (size_t i = 0; i < a->events.size(); ++i) {
      ASSERT_EQ(a->events[i].SerializeAsString(), b->events[i].SerializeAsString()) << index_;
    }
  }

  std::filesystem::path base_;
  std::unique_ptr<KvStore> with_;
  std::unique_ptr<KvStore> without_;
  uint64_t index_ = 0;
};

TEST_F(StoreWithCacheTest, AnswersAsAStoreWithoutIt) {
  std::mt19937 rng(11);
  for (int round = 0; round < 300; ++round) {
    std::vector<internal::Command> cmds;
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) cmds.push_back(RandomCommand(rng));
    ASSERT_NO_FATAL_FAILURE(ApplyToBoth(cmds));
    if (round == 150) {
      ASSERT_NO_FATAL_FAILURE(Open());  // a restart empties the cache
    }
  }
  // The sequence did exercise versions > 1 (overwrites read through the cache).
  etcdserverpb::RangeRequest r;
  r.set_key("key/");
  r.set_range_end("key0");
  auto got = with_->Range(r);
  ASSERT_TRUE(got.ok());
  etcdserverpb::RangeResponse resp;
  ASSERT_TRUE(resp.ParseFromString(*got));
  int64_t max_version = 0;
  for (const auto& kv : resp.kvs()) max_version = std::max(max_version, kv.version());
  EXPECT_GT(max_version, 3);
}

TEST_F(StoreWithCacheTest, ReadsInsideABatchSeeItsOwnWritesAndDeletesOverTheCache) {
  auto put = [](const std::string& k, const std::string& v) {
    internal::Command c;
    c.mutable_put()->set_key(k);
    c.mutable_put()->set_value(v);
    c.mutable_put()->set_prev_kv(true);
    return c;
  };
  internal::Command del;
  del.mutable_delete_range()->set_key("a");
  ASSERT_NO_FATAL_FAILURE(ApplyToBoth({put("a", "1"), put("a", "2")}));  // now cached
  // Put, delete, put again in one batch: the last put re-creates the key (version 1).
  ASSERT_NO_FATAL_FAILURE(ApplyToBoth({put("a", "3"), del, put("a", "4")}));
  etcdserverpb::RangeRequest r;
  r.set_key("a");
  auto got = with_->Range(r);
  ASSERT_TRUE(got.ok());
  etcdserverpb::RangeResponse resp;
  ASSERT_TRUE(resp.ParseFromString(*got));
  ASSERT_EQ(resp.kvs_size(), 1);
  EXPECT_EQ(resp.kvs(0).value(), "4");
  EXPECT_EQ(resp.kvs(0).version(), 1);
  EXPECT_EQ(resp.kvs(0).create_revision(), resp.kvs(0).mod_revision());

  // Deleted in one batch, put in the next: a new key again, not the cached old one.
  ASSERT_NO_FATAL_FAILURE(ApplyToBoth({put("a", "5")}));
  ASSERT_NO_FATAL_FAILURE(ApplyToBoth({del}));
  ASSERT_NO_FATAL_FAILURE(ApplyToBoth({put("a", "6")}));
  got = with_->Range(r);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(resp.ParseFromString(*got));
  ASSERT_EQ(resp.kvs_size(), 1);
  EXPECT_EQ(resp.kvs(0).version(), 1);
}

}  // namespace
}  // namespace rusd::stored
