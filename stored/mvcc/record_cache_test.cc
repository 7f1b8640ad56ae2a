// RecordCache alone (bound, CLOCK, rollback log), then the store with it: every test of
// the second part reads a key's current record through the cache after writes that a
// wrong cache (not written through, not rolled back, not erased) would misreport.
#include "stored/mvcc/record_cache.h"

#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "rusd/internal.pb.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/mvcc/storage_format.h"
#include "stored/mvcc/store_test_fixture.h"

namespace rusd::stored {
namespace {

std::string Key(int i) { return "key-" + std::to_string(i); }

TEST(RecordCacheTest, FindsWhatWasPutAndUpdatesInPlace) {
  RecordCache cache(1 << 20);
  EXPECT_EQ(cache.Find("a"), nullptr);
  cache.Put("a", "record-1");
  ASSERT_NE(cache.Find("a"), nullptr);
  EXPECT_EQ(*cache.Find("a"), "record-1");
  const size_t bytes = cache.bytes();
  cache.Put("a", "rec-2");  // fits the old buffer: same cost
  EXPECT_EQ(*cache.Find("a"), "rec-2");
  EXPECT_EQ(cache.bytes(), bytes);
  cache.Erase("a");
  EXPECT_EQ(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_EQ(cache.entries(), 0u);
}

TEST(RecordCacheTest, OfferInsertsOnlyWithoutEvictingButAlwaysUpdates) {
  // Room for exactly two entries of short (in-place, 15-byte capacity) strings.
  RecordCache cache(2 * (std::string().capacity() * 2 + RecordCache::kEntryOverheadBytes));
  cache.Offer("a", "1");
  cache.Offer("b", "1");
  ASSERT_NE(cache.Find("a"), nullptr);
  ASSERT_NE(cache.Find("b"), nullptr);
  for (int i = 0; i < 10; ++i) cache.Offer(Key(i), "1");  // full: not inserted
  EXPECT_NE(cache.Find("a"), nullptr);
  EXPECT_NE(cache.Find("b"), nullptr);
  EXPECT_EQ(cache.Find(Key(0)), nullptr);
  cache.Offer("a", "2");  // cached: updated
  ASSERT_NE(cache.Find("a"), nullptr);
  EXPECT_EQ(*cache.Find("a"), "2");
}

TEST(RecordCacheTest, StaysWithinItsByteBoundWhateverTheNumberOfKeys) {
  const size_t capacity = 64 << 10;
  RecordCache cache(capacity);
  const std::string record(200, 'v');
  for (int i = 0; i < 20000; ++i) {
    cache.Put(Key(i), record);
    ASSERT_LE(cache.bytes(), capacity);
  }
  EXPECT_LT(cache.entries(), capacity / (record.size() + RecordCache::kEntryOverheadBytes) + 1);
  EXPECT_GT(cache.entries(), 0u);
  EXPECT_NE(cache.Find(Key(19999)), nullptr);  // the newest is kept
  EXPECT_EQ(cache.Find(Key(0)), nullptr);      // the oldest went
}

TEST(RecordCacheTest, ClockKeepsReferencedEntries) {
  const std::string record(100, 'v');
  const size_t per_entry = 2 * 128 + RecordCache::kEntryOverheadBytes;  // generous
  RecordCache cache(per_entry * 8);
  for (int i = 0; i < 4; ++i) cache.Put(Key(i), record);
  // Key 0 is used again: the sweeps that evict for new keys spare it once per use.
  for (int i = 4; i < 40; ++i) {
    ASSERT_NE(cache.Find(Key(0)), nullptr) << "evicted at insert " << i;
    cache.Put(Key(i), record);
  }
  EXPECT_EQ(cache.Find(Key(1)), nullptr);
}

TEST(RecordCacheTest, LargeRecordsAreNotCachedAndReplaceNothing) {
  RecordCache cache(1 << 20);
  cache.Put("big", "small");
  cache.Put("big", std::string(RecordCache::kMaxRecordBytes + 1, 'x'));
  EXPECT_EQ(cache.Find("big"), nullptr);  // the old record must not stay either
  RecordCache tiny(64);
  tiny.Put("k", "v");  // does not fit the per-entry overhead
  EXPECT_EQ(tiny.Find("k"), nullptr);
  EXPECT_EQ(tiny.bytes(), 0u);
  RecordCache off(0);
  off.Put("k", "v");
  EXPECT_EQ(off.Find("k"), nullptr);
}

TEST(RecordCacheTest, EraseSinceKeepsWhatWasWrittenBeforeTheMark) {
  RecordCache cache(1 << 20);
  cache.Put("before", "1");
  const size_t mark = cache.Mark();
  cache.Put("after", "2");
  cache.EraseSince(mark);
  EXPECT_EQ(cache.Find("after"), nullptr);
  ASSERT_NE(cache.Find("before"), nullptr);
  EXPECT_EQ(*cache.Find("before"), "1");
}

TEST(RecordCacheTest, EraseSinceForgetsWritesAfterTheMark) {
  RecordCache cache(1 << 20);
  cache.Put("kept", "1");
  cache.Put("updated", "1");
  cache.ForgetLog();
  const size_t mark = cache.Mark();
  cache.Put("updated", "2");
  cache.Put("new", "2");
  cache.Erase("kept");
  cache.EraseSince(mark);
  EXPECT_EQ(cache.Find("updated"), nullptr);
  EXPECT_EQ(cache.Find("new"), nullptr);
  EXPECT_EQ(cache.Find("kept"), nullptr);
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

// Random puts, updates and erases against a model: the cache never returns a record other
// than the key's latest, and a key just put (when it fits) is found. Exercises the index's
// probing and backward-shift deletion under eviction.
TEST(RecordCacheTest, NeverReturnsAStaleRecordUnderRandomChurn) {
  RecordCache cache(16 << 10);
  std::map<std::string, std::string> model;
  std::mt19937 rng(7);
  for (int step = 0; step < 200000; ++step) {
    const std::string key = Key(static_cast<int>(rng() % 500));
    switch (rng() % 4) {
      case 0:
        cache.Erase(key);
        model.erase(key);
        break;
      case 1: {
        const std::string record(rng() % 40, static_cast<char>('a' + step % 26));
        cache.Put(key, record);
        model[key] = record;
        ASSERT_NE(cache.Find(key), nullptr);
        break;
      }
      default: {
        const std::string* got = cache.Find(key);
        if (got != nullptr) {
          ASSERT_TRUE(model.count(key)) << key;
          ASSERT_EQ(*got, model[key]) << key;
        }
      }
    }
    ASSERT_LE(cache.bytes(), cache.capacity_bytes());
  }
}

// ---- the store with its record cache ----

etcdserverpb::RequestOp PutOp(const std::string& k, const std::string& v) {
  etcdserverpb::RequestOp op;
  op.mutable_request_put()->set_key(k);
  op.mutable_request_put()->set_value(v);
  return op;
}

class RecordCacheStoreTest : public StoreTestFixture {
 protected:
  void Configure(KvStoreOptions& o) override { o.record_cache_bytes = cache_bytes_; }

  ApplyReply Apply(const internal::Command& cmd) {
    ApplyOutput out = ApplyAll({cmd});
    EXPECT_EQ(out.replies.size(), 1u);
    return out.replies.empty() ? ApplyReply{} : out.replies[0];
  }
  internal::Command PutCmd(const std::string& k, const std::string& v, int64_t lease = 0) {
    internal::Command c;
    c.mutable_put()->set_key(k);
    c.mutable_put()->set_value(v);
    c.mutable_put()->set_lease(lease);
    return c;
  }
  etcdserverpb::PutResponse PutResp(const internal::Command& c) {
    ApplyReply r = Apply(c);
    EXPECT_TRUE(r.ok) << r.error_message;
    etcdserverpb::PutResponse resp;
    EXPECT_TRUE(resp.ParseFromString(r.response));
    return resp;
  }
  // The key's current record as a put reports it (prev_kv; read through the cache).
  mvccpb::KeyValue PrevOfPut(const std::string& k, const std::string& v) {
    internal::Command c = PutCmd(k, v);
    c.mutable_put()->set_prev_kv(true);
    return PutResp(c).prev_kv();
  }
  // The key as a reader sees it (RocksDB, never the cache).
  mvccpb::KeyValue Read(const std::string& k) {
    etcdserverpb::RangeRequest r;
    r.set_key(k);
    auto bytes = store_->Range(r);
    EXPECT_TRUE(bytes.ok());
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(bytes.ok() && resp.ParseFromString(*bytes));
    return resp.kvs_size() > 0 ? resp.kvs(0) : mvccpb::KeyValue();
  }
  void Grant(int64_t id) {
    internal::Command c;
    c.mutable_lease_grant()->set_id(id);
    c.mutable_lease_grant()->set_ttl(60);
    ASSERT_TRUE(Apply(c).ok);
  }
  void Revoke(int64_t id) {
    internal::Command c;
    c.mutable_lease_revoke()->set_id(id);
    ASSERT_TRUE(Apply(c).ok);
  }
  void Delete(const std::string& k) {
    internal::Command c;
    c.mutable_delete_range()->set_key(k);
    ApplyReply r = Apply(c);
    ASSERT_TRUE(r.ok) << r.error_message;
  }

  uint64_t cache_bytes_ = 1 << 20;
};

TEST_F(RecordCacheStoreTest, PutAfterPutCountsVersionsAndKeepsCreateRevision) {
  PutResp(PutCmd("k", "1"));  // revision 2
  PutResp(PutCmd("k", "2"));
  const mvccpb::KeyValue prev = PrevOfPut("k", "3");  // revision 4
  EXPECT_EQ(prev.value(), "2");
  EXPECT_EQ(prev.version(), 2);
  EXPECT_EQ(prev.create_revision(), 2);
  EXPECT_EQ(prev.mod_revision(), 3);
  const mvccpb::KeyValue now = Read("k");
  EXPECT_EQ(now.version(), 3);
  EXPECT_EQ(now.create_revision(), 2);
  EXPECT_EQ(now.mod_revision(), 4);
}

TEST_F(RecordCacheStoreTest, PutAfterDeleteStartsANewGeneration) {
  PutResp(PutCmd("k", "1"));  // 2
  PutResp(PutCmd("k", "2"));  // 3
  Delete("k");                // 4
  EXPECT_EQ(PrevOfPut("k", "3").version(), 0);  // no previous record after the delete
  const mvccpb::KeyValue now = Read("k");
  EXPECT_EQ(now.version(), 1);
  EXPECT_EQ(now.create_revision(), 5);
  const mvccpb::KeyValue prev = PrevOfPut("k", "4");
  EXPECT_EQ(prev.version(), 1);
  EXPECT_EQ(prev.create_revision(), 5);
}

TEST_F(RecordCacheStoreTest, PutAfterDeleteInOneBatchStartsANewGeneration) {
  internal::Command del;
  del.mutable_delete_range()->set_key("k");
  ApplyAll({PutCmd("k", "1"), PutCmd("k", "2"), del, PutCmd("k", "3")});
  const mvccpb::KeyValue now = Read("k");
  EXPECT_EQ(now.version(), 1);
  EXPECT_EQ(now.create_revision(), 5);
  EXPECT_EQ(PrevOfPut("k", "4").version(), 1);
}

// A txn puts "a", then a later op fails (its key was deleted earlier in the same txn): the
// request is rolled back, and the next put of "a" must see the record from before it.
TEST_F(RecordCacheStoreTest, RolledBackTxnLeavesNoTraceInTheCache) {
  PutResp(PutCmd("a", "old"));  // revision 2
  PutResp(PutCmd("m", "x"));    // revision 3
  internal::Command txn;
  *txn.mutable_txn()->add_success() = PutOp("a", "rolled-back");
  auto* del = txn.mutable_txn()->add_success()->mutable_request_delete_range();
  del->set_key("m");
  del->set_range_end(std::string(1, '\0'));  // every key from "m" on (never conflicts with a put)
  auto* keep = txn.mutable_txn()->add_success()->mutable_request_put();
  keep->set_key("m");
  keep->set_ignore_value(true);  // "m" existed at the check, not any more at the put
  ApplyReply r = Apply(txn);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error_message, kv_errors::kKeyNotFound);
  EXPECT_EQ(store_->current_revision(), 3);
  const mvccpb::KeyValue prev = PrevOfPut("a", "new");
  EXPECT_EQ(prev.value(), "old");
  EXPECT_EQ(prev.version(), 1);
  EXPECT_EQ(prev.mod_revision(), 2);
  EXPECT_EQ(Read("a").version(), 2);
  EXPECT_EQ(Read("m").value(), "x");
  EXPECT_EQ(PrevOfPut("m", "y").version(), 1);
}

// The same within one batch: the rolled-back request is followed by another in the batch.
TEST_F(RecordCacheStoreTest, RolledBackTxnInsideABatchIsNotSeenByLaterRequests) {
  PutResp(PutCmd("m", "x"));  // revision 2
  internal::Command txn;
  *txn.mutable_txn()->add_success() = PutOp("a", "rolled-back");
  auto* del = txn.mutable_txn()->add_success()->mutable_request_delete_range();
  del->set_key("m");
  del->set_range_end(std::string(1, '\0'));
  auto* keep = txn.mutable_txn()->add_success()->mutable_request_put();
  keep->set_key("m");
  keep->set_ignore_value(true);
  internal::Command put = PutCmd("a", "1");
  put.mutable_put()->set_prev_kv(true);
  ApplyOutput out = ApplyAll({PutCmd("a", "0"), txn, put});
  ASSERT_EQ(out.replies.size(), 3u);
  EXPECT_FALSE(out.replies[1].ok);
  etcdserverpb::PutResponse resp;
  ASSERT_TRUE(resp.ParseFromString(out.replies[2].response));
  EXPECT_EQ(resp.prev_kv().value(), "0");
  EXPECT_EQ(resp.prev_kv().version(), 1);
  EXPECT_EQ(Read("a").version(), 2);
}

TEST_F(RecordCacheStoreTest, LeaseAttachAndDetachFollowTheCachedRecord) {
  Grant(42);
  Grant(43);
  PutResp(PutCmd("k", "1", 42));
  PutResp(PutCmd("k", "2", 43));  // moves k from 42 to 43 (needs the cached lease 42)
  PutResp(PutCmd("k", "3", 0));   // detaches from 43
  Revoke(42);
  Revoke(43);
  EXPECT_EQ(Read("k").value(), "3");  // neither lease held it
  Grant(44);
  PutResp(PutCmd("k", "4", 44));
  internal::Command keep = PutCmd("k", "5");
  keep.mutable_put()->set_ignore_lease(true);
  PutResp(keep);
  EXPECT_EQ(Read("k").lease(), 44);
  Revoke(44);  // deletes k through the apply path
  EXPECT_EQ(Read("k").version(), 0);
  const mvccpb::KeyValue prev = PrevOfPut("k", "6");
  EXPECT_EQ(prev.version(), 0);  // absent: no prev_kv
  EXPECT_EQ(Read("k").version(), 1);
  EXPECT_EQ(Read("k").lease(), 0);
}

TEST_F(RecordCacheStoreTest, IgnoreValueIgnoreLeaseAndPrevKvComeFromTheCurrentRecord) {
  Grant(7);
  PutResp(PutCmd("k", "orig", 7));  // 2 (a grant keeps the revision)
  internal::Command c;
  c.mutable_put()->set_key("k");
  c.mutable_put()->set_ignore_value(true);
  c.mutable_put()->set_ignore_lease(true);
  c.mutable_put()->set_prev_kv(true);
  etcdserverpb::PutResponse r = PutResp(c);  // 3
  EXPECT_EQ(r.prev_kv().value(), "orig");
  EXPECT_EQ(r.prev_kv().lease(), 7);
  EXPECT_EQ(r.prev_kv().mod_revision(), 2);
  r = PutResp(c);  // 4
  EXPECT_EQ(r.prev_kv().value(), "orig");
  EXPECT_EQ(r.prev_kv().lease(), 7);
  EXPECT_EQ(r.prev_kv().version(), 2);
  EXPECT_EQ(r.prev_kv().mod_revision(), 3);
  const mvccpb::KeyValue now = Read("k");
  EXPECT_EQ(now.value(), "orig");
  EXPECT_EQ(now.version(), 3);
}

// An ApplyEntries call that fails (here: a malformed record met by a later put, an
// Internal error) writes nothing; what its earlier puts cached must go too.
TEST_F(RecordCacheStoreTest, AFailedApplyEntriesCallLeavesNoTraceInTheCache) {
  PutResp(PutCmd("k", "1"));
  PutResp(PutCmd("k", "2"));
  WriteRawRecords({{format::kKvFamily, "bad", "\xff\xff not a KeyValue"}});
  Reopen();
  std::vector<internal::Entry> entries;
  for (const internal::Command& cmd : {PutCmd("k", "3"), PutCmd("bad", "x")}) {
    internal::Entry& e = entries.emplace_back();
    e.set_index(next_index_ + entries.size() - 1);
    e.set_term(3);
    e.set_type(internal::Entry::NORMAL);
    e.set_data(cmd.SerializeAsString());
  }
  auto failed = store_->ApplyEntries(entries);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kInternal);
  const mvccpb::KeyValue prev = PrevOfPut("k", "4");
  EXPECT_EQ(prev.value(), "2");
  EXPECT_EQ(prev.version(), 2);
  EXPECT_EQ(Read("k").version(), 3);
}

class TinyRecordCacheStoreTest : public RecordCacheStoreTest {
 protected:
  TinyRecordCacheStoreTest() { cache_bytes_ = 2048; }  // a handful of records
};

TEST_F(TinyRecordCacheStoreTest, EvictedKeysAreReadFromRocksDb) {
  for (int round = 1; round <= 3; ++round) {
    for (int i = 0; i < 100; ++i) PutResp(PutCmd(Key(i), "value-" + std::to_string(round)));
  }
  for (int i = 0; i < 100; ++i) {
    const mvccpb::KeyValue prev = PrevOfPut(Key(i), "last");
    ASSERT_EQ(prev.version(), 3) << Key(i);
    ASSERT_EQ(prev.value(), "value-3") << Key(i);
    ASSERT_EQ(prev.create_revision(), 2 + i) << Key(i);
  }
}

TEST_F(RecordCacheStoreTest, ARestartStartsWithAnEmptyCacheAndTheSameAnswers) {
  PutResp(PutCmd("k", "1"));
  PutResp(PutCmd("k", "2"));
  Reopen();
  EXPECT_EQ(PrevOfPut("k", "3").version(), 2);
  EXPECT_EQ(Read("k").version(), 3);
}

}  // namespace
}  // namespace rusd::stored
