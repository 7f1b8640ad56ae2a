// KvStore through its public interface, on real RocksDB in a temp dir. Expected numbers
// come from etcd 3.4.23 driven by etcdctl -w json (see EtcdSequenceGivesEtcdRevisions).
#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "rusd/internal.pb.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/mvcc/kv_store.h"
#include "stored/mvcc/store_test_fixture.h"
#include "stored/mvcc/storage_format.h"

namespace rusd::stored {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

etcdserverpb::RequestOp PutOp(const std::string& k, const std::string& v) {
  etcdserverpb::RequestOp op;
  op.mutable_request_put()->set_key(k);
  op.mutable_request_put()->set_value(v);
  return op;
}
etcdserverpb::RequestOp DelOp(const std::string& k, const std::string& end = "") {
  etcdserverpb::RequestOp op;
  op.mutable_request_delete_range()->set_key(k);
  op.mutable_request_delete_range()->set_range_end(end);
  return op;
}
etcdserverpb::RequestOp GetOp(const std::string& k, const std::string& end = "") {
  etcdserverpb::RequestOp op;
  op.mutable_request_range()->set_key(k);
  op.mutable_request_range()->set_range_end(end);
  return op;
}
Compare Cmp(const std::string& key, Compare::CompareTarget target, Compare::CompareResult result,
            int64_t number, const std::string& value = "") {
  Compare c;
  c.set_key(key);
  c.set_target(target);
  c.set_result(result);
  switch (target) {
    case Compare::VERSION: c.set_version(number); break;
    case Compare::CREATE: c.set_create_revision(number); break;
    case Compare::MOD: c.set_mod_revision(number); break;
    case Compare::LEASE: c.set_lease(number); break;
    case Compare::VALUE: c.set_value(value); break;
    default: break;
  }
  return c;
}

class MvccTest : public StoreTestFixture {
 protected:
  internal::Entry MakeEntry(const internal::Command& cmd) {
    internal::Entry e;
    e.set_index(next_index_++);
    e.set_term(3);
    e.set_type(internal::Entry::NORMAL);
    e.set_data(cmd.SerializeAsString());
    return e;
  }
  // Applies one command, returns its reply.
  ApplyReply Apply(const internal::Command& cmd, std::vector<mvccpb::Event>* events = nullptr) {
    ApplyOutput out = ApplyAll({cmd});
    EXPECT_EQ(out.replies.size(), 1u);
    if (events) *events = out.events;
    return out.replies.empty() ? ApplyReply{} : out.replies[0];
  }
  etcdserverpb::PutResponse Put(const std::string& k, const std::string& v, bool prev_kv = false) {
    internal::Command c;
    c.mutable_put()->set_key(k);
    c.mutable_put()->set_value(v);
    c.mutable_put()->set_prev_kv(prev_kv);
    ApplyReply r = Apply(c);
    EXPECT_TRUE(r.ok) << r.error_message;
    etcdserverpb::PutResponse resp;
    EXPECT_TRUE(resp.ParseFromString(r.response));
    return resp;
  }
  etcdserverpb::DeleteRangeResponse Del(const std::string& k, const std::string& end = "",
                                        bool prev_kv = false) {
    internal::Command c;
    c.mutable_delete_range()->set_key(k);
    c.mutable_delete_range()->set_range_end(end);
    c.mutable_delete_range()->set_prev_kv(prev_kv);
    ApplyReply r = Apply(c);
    EXPECT_TRUE(r.ok) << r.error_message;
    etcdserverpb::DeleteRangeResponse resp;
    EXPECT_TRUE(resp.ParseFromString(r.response));
    return resp;
  }
  ApplyReply TxnReply(const TxnRequest& t) {
    internal::Command c;
    *c.mutable_txn() = t;
    return Apply(c);
  }
  TxnResponse Txn(const TxnRequest& t) {
    ApplyReply r = TxnReply(t);
    EXPECT_TRUE(r.ok) << r.error_message;
    TxnResponse resp;
    EXPECT_TRUE(resp.ParseFromString(r.response));
    return resp;
  }
  ApplyReply Compact(int64_t rev) {
    internal::Command c;
    c.mutable_compaction()->set_revision(rev);
    return Apply(c);
  }
  Result<RangeResponse> Range(const RangeRequest& r) {
    auto bytes = store_->Range(r);
    if (!bytes.ok()) return bytes.status();
    RangeResponse resp;
    EXPECT_TRUE(resp.ParseFromString(*bytes));
    return resp;
  }
  RangeResponse RangeOk(const RangeRequest& r) {
    auto resp = Range(r);
    EXPECT_TRUE(resp.ok()) << resp.status().ToString();
    return resp.ok() ? *resp : RangeResponse();
  }
  RangeResponse Get(const std::string& k, const std::string& end = "", int64_t rev = 0) {
    RangeRequest r;
    r.set_key(k);
    r.set_range_end(end);
    r.set_revision(rev);
    auto resp = Range(r);
    EXPECT_TRUE(resp.ok()) << resp.status().ToString();
    return resp.ok() ? *resp : RangeResponse();
  }
  static std::vector<std::string> Keys(const RangeResponse& r) {
    std::vector<std::string> out;
    for (const auto& kv : r.kvs()) out.push_back(kv.key());
    return out;
  }

};

// Numbers from etcd 3.4.23 (etcdctl -w json) for the same sequence.
TEST_F(MvccTest, EtcdSequenceGivesEtcdRevisions) {
  EXPECT_EQ(store_->current_revision(), 1);
  EXPECT_EQ(Put("a", "1").header().revision(), 2);
  EXPECT_EQ(Put("b", "1").header().revision(), 3);
  EXPECT_EQ(Put("a", "2").header().revision(), 4);
  auto d = Del("a");
  EXPECT_EQ(d.header().revision(), 5);
  EXPECT_EQ(d.deleted(), 1);
  EXPECT_EQ(Put("a", "3").header().revision(), 6);

  TxnRequest t;
  *t.add_compare() = Cmp("b", Compare::VERSION, Compare::EQUAL, 1);
  *t.add_success() = PutOp("b", "2");
  *t.add_success() = PutOp("c", "1");
  auto tr = Txn(t);
  EXPECT_TRUE(tr.succeeded());
  EXPECT_EQ(tr.header().revision(), 7);
  ASSERT_EQ(tr.responses_size(), 2);
  EXPECT_EQ(tr.responses(0).response_put().header().revision(), 7);
  EXPECT_EQ(tr.responses(1).response_put().header().revision(), 7);
  EXPECT_EQ(tr.header().cluster_id(), 9u);
  EXPECT_EQ(tr.header().member_id(), 7u);
  EXPECT_EQ(tr.header().raft_term(), 3u);
  EXPECT_EQ(tr.responses(0).response_put().header().member_id(), 0u);

  auto nothing = Del("zzz");
  EXPECT_EQ(nothing.header().revision(), 7);
  EXPECT_EQ(nothing.deleted(), 0);
  auto bc = Del("b", "d");
  EXPECT_EQ(bc.header().revision(), 8);
  EXPECT_EQ(bc.deleted(), 2);

  auto old = Get("a", "", 4);
  ASSERT_EQ(old.kvs_size(), 1);
  EXPECT_EQ(old.header().revision(), 8);
  EXPECT_EQ(old.kvs(0).create_revision(), 2);
  EXPECT_EQ(old.kvs(0).mod_revision(), 4);
  EXPECT_EQ(old.kvs(0).version(), 2);
  EXPECT_EQ(old.kvs(0).value(), "2");
  auto now = Get("a");
  ASSERT_EQ(now.kvs_size(), 1);
  EXPECT_EQ(now.kvs(0).create_revision(), 6);
  EXPECT_EQ(now.kvs(0).mod_revision(), 6);
  EXPECT_EQ(now.kvs(0).version(), 1);
  EXPECT_EQ(now.count(), 1);

  // A range before a put inside one txn sees the revision before the txn.
  TxnRequest t2;
  *t2.add_compare() = Cmp("a", Compare::MOD, Compare::GREATER, 5);
  *t2.add_success() = GetOp("a");
  *t2.add_success() = PutOp("x", "1");
  *t2.add_failure() = DelOp("nothing");
  auto tr2 = Txn(t2);
  EXPECT_TRUE(tr2.succeeded());
  EXPECT_EQ(tr2.header().revision(), 9);
  EXPECT_EQ(tr2.responses(0).response_range().header().revision(), 8);
  EXPECT_EQ(tr2.responses(0).response_range().kvs(0).mod_revision(), 6);
  EXPECT_EQ(tr2.responses(1).response_put().header().revision(), 9);

  EXPECT_TRUE(Compact(3).ok);
  ApplyReply again = Compact(3);
  EXPECT_FALSE(again.ok);
  EXPECT_EQ(again.error_message, kv_errors::kCompacted);
  EXPECT_EQ(again.error_code, static_cast<int>(StatusCode::kOutOfRange));
  ApplyReply future = Compact(100);
  EXPECT_FALSE(future.ok);
  EXPECT_EQ(future.error_message, kv_errors::kFutureRevision);
  RangeRequest r2;
  r2.set_key("a");
  r2.set_revision(2);
  auto compacted = Range(r2);
  ASSERT_FALSE(compacted.ok());
  EXPECT_EQ(compacted.status().message(), kv_errors::kCompacted);
  auto at3 = Get("a", "", 3);  // revision == compact revision still readable
  ASSERT_EQ(at3.kvs_size(), 1);
  EXPECT_EQ(at3.kvs(0).mod_revision(), 2);
  EXPECT_EQ(at3.kvs(0).value(), "1");

  // del a then put a in one txn: etcd's duplicate-key check.
  TxnRequest dup;
  *dup.add_success() = DelOp("a");
  *dup.add_success() = PutOp("a", "9");
  ApplyReply dr = TxnReply(dup);
  EXPECT_FALSE(dr.ok);
  EXPECT_EQ(dr.error_message, kv_errors::kDuplicateKey);
  EXPECT_EQ(store_->current_revision(), 9);
}

TEST_F(MvccTest, RangeSingleKeyRangeEndPrefixFromKeyAndAll) {
  for (std::string k : {"a", "ab", "abc", "b", "c"}) Put(k, "v" + k);
  EXPECT_EQ(Keys(Get("ab")), (std::vector<std::string>{"ab"}));
  EXPECT_EQ(Keys(Get("a", "b")), (std::vector<std::string>{"a", "ab", "abc"}));
  EXPECT_EQ(Keys(Get("ab", "ac")), (std::vector<std::string>{"ab", "abc"}));  // prefix "ab"
  EXPECT_EQ(Keys(Get("b", std::string(1, '\0'))), (std::vector<std::string>{"b", "c"}));
  auto all = Get(std::string(1, '\0'), std::string(1, '\0'));
  EXPECT_EQ(all.count(), 5);
  EXPECT_EQ(Keys(Get("c", "a")).size(), 0u);  // range_end <= key: nothing
  EXPECT_EQ(Get("zz").count(), 0);
}

TEST_F(MvccTest, RangeLimitReportsMoreAndCount) {
  for (int i = 0; i < 10; ++i) Put("k" + std::to_string(i), "v");
  RangeRequest r;
  r.set_key("k");
  r.set_range_end("l");
  r.set_limit(3);
  auto resp = Range(r);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(Keys(*resp), (std::vector<std::string>{"k0", "k1", "k2"}));
  EXPECT_TRUE(resp->more());
  EXPECT_EQ(resp->count(), 10);
  r.set_limit(10);
  resp = Range(r);
  EXPECT_FALSE(resp->more());
  EXPECT_EQ(resp->kvs_size(), 10);
  r.set_limit(0);
  EXPECT_EQ(Range(r)->kvs_size(), 10);
}

TEST_F(MvccTest, RangeSortOrdersAndTargets) {
  Put("a", "3");
  Put("b", "1");
  Put("c", "2");
  Put("b", "1b");  // b: version 2, mod 5
  Put("a", "3a");  // a: version 2, mod 6
  Put("a", "3b");  // a: version 3, mod 7
  RangeRequest r;
  r.set_key("a");
  r.set_range_end("z");
  r.set_sort_order(RangeRequest::DESCEND);
  r.set_sort_target(RangeRequest::KEY);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"c", "b", "a"}));
  r.set_sort_target(RangeRequest::VERSION);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"a", "b", "c"}));
  r.set_sort_order(RangeRequest::ASCEND);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"c", "b", "a"}));
  r.set_sort_target(RangeRequest::CREATE);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"a", "b", "c"}));
  r.set_sort_target(RangeRequest::MOD);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"c", "b", "a"}));
  r.set_sort_order(RangeRequest::DESCEND);
  r.set_sort_target(RangeRequest::VALUE);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"a", "c", "b"}));
  // Sorted with a limit: sorts everything, then truncates.
  r.set_sort_target(RangeRequest::MOD);
  r.set_limit(1);
  auto resp = Range(r);
  EXPECT_EQ(Keys(*resp), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(resp->more());
  EXPECT_EQ(resp->count(), 3);
  // etcd quirk: order NONE with a non-KEY target sorts ascending, but the limit is applied
  // to the key-ordered fetch first (limit+1 keys), then sorted.
  r.set_sort_order(RangeRequest::NONE);
  r.set_sort_target(RangeRequest::MOD);
  r.set_limit(1);
  resp = Range(r);  // fetches a, b (limit+1); by mod ascending: b(5), a(7)
  EXPECT_EQ(Keys(*resp), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(resp->more());
  // NONE + KEY: natural order.
  r.set_sort_target(RangeRequest::KEY);
  r.set_limit(0);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"a", "b", "c"}));
  // By key with a limit (served by a forward or reverse scan): etcd's keys, more, count.
  r.set_limit(2);
  r.set_sort_order(RangeRequest::ASCEND);
  resp = Range(r);
  EXPECT_EQ(Keys(*resp), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(resp->more());
  EXPECT_EQ(resp->count(), 3);
  r.set_sort_order(RangeRequest::DESCEND);
  resp = Range(r);
  EXPECT_EQ(Keys(*resp), (std::vector<std::string>{"c", "b"}));
  EXPECT_TRUE(resp->more());
  EXPECT_EQ(resp->count(), 3);
  r.set_limit(3);
  resp = Range(r);
  EXPECT_EQ(Keys(*resp), (std::vector<std::string>{"c", "b", "a"}));
  EXPECT_FALSE(resp->more());
  r.set_limit(1);
  r.set_range_end("c");  // end exclusive
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"b"}));
  r.set_key("b");
  r.set_range_end(std::string(1, '\0'));
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"c"}));
  r.set_key("a");
  r.set_range_end("z");
  r.set_revision(4);  // history: a, b, c exist at 4
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"c"}));
  // Inside a txn, after a write of the same txn.
  TxnRequest t;
  *t.add_success() = PutOp("d", "1");
  *t.add_success() = GetOp("a", "z");
  t.mutable_success(1)->mutable_request_range()->set_sort_order(RangeRequest::DESCEND);
  t.mutable_success(1)->mutable_request_range()->set_limit(2);
  auto tr = Txn(t);
  EXPECT_EQ(Keys(tr.responses(1).response_range()), (std::vector<std::string>{"d", "c"}));
  EXPECT_EQ(tr.responses(1).response_range().count(), 4);
}

TEST_F(MvccTest, RangeRevisionFiltersPruneAfterFetchAndCountIgnoresThem) {
  Put("a", "1");  // 2
  Put("b", "1");  // 3
  Put("c", "1");  // 4
  Put("a", "2");  // 5: a create 2 mod 5
  RangeRequest r;
  r.set_key("a");
  r.set_range_end("z");
  r.set_min_mod_revision(4);
  auto resp = Range(r);
  EXPECT_EQ(Keys(*resp), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(resp->count(), 3);  // etcd's count is taken before the filters
  r.clear_min_mod_revision();
  r.set_max_mod_revision(3);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"b"}));
  r.clear_max_mod_revision();
  r.set_min_create_revision(3);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"b", "c"}));
  r.set_max_create_revision(3);
  EXPECT_EQ(Keys(RangeOk(r)), (std::vector<std::string>{"b"}));
  // With filters, the limit applies after pruning.
  r.clear_min_create_revision();
  r.clear_max_create_revision();
  r.set_min_mod_revision(4);
  r.set_limit(1);
  resp = Range(r);
  EXPECT_EQ(Keys(*resp), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(resp->more());
}

TEST_F(MvccTest, RangeKeysOnlyAndCountOnly) {
  Put("a", "1");
  Put("b", "2");
  RangeRequest r;
  r.set_key("a");
  r.set_range_end("c");
  r.set_keys_only(true);
  auto resp = Range(r);
  ASSERT_EQ(resp->kvs_size(), 2);
  EXPECT_EQ(resp->kvs(0).value(), "");
  EXPECT_EQ(resp->kvs(0).version(), 1);
  r.set_keys_only(false);
  r.set_count_only(true);
  r.set_limit(1);
  resp = Range(r);
  EXPECT_EQ(resp->kvs_size(), 0);
  EXPECT_EQ(resp->count(), 2);
  EXPECT_FALSE(resp->more());
  r.set_serializable(true);  // accepted, no effect here
  EXPECT_EQ(Range(r)->count(), 2);
}

TEST_F(MvccTest, RangeEmptyKeyIsInvalidArgument) {
  RangeRequest r;
  auto resp = Range(r);
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(resp.status().message(), kv_errors::kEmptyKey);
  internal::Command c;
  c.mutable_put()->set_value("v");
  ApplyReply rep = Apply(c);
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.error_message, kv_errors::kEmptyKey);
  EXPECT_EQ(store_->current_revision(), 1);
}

TEST_F(MvccTest, HistoricalReadsAndRevisionErrors) {
  Put("a", "1");  // 2
  Put("b", "1");  // 3
  Del("a");       // 4
  Put("a", "2");  // 5
  Put("b", "2");  // 6
  EXPECT_EQ(Keys(Get("a", "z", 2)), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Keys(Get("a", "z", 3)), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Keys(Get("a", "z", 4)), (std::vector<std::string>{"b"}));
  auto at5 = Get("a", "z", 5);
  EXPECT_EQ(at5.count(), 2);
  EXPECT_EQ(at5.kvs(0).value(), "2");
  EXPECT_EQ(at5.kvs(1).value(), "1");
  EXPECT_EQ(at5.header().revision(), 6);
  EXPECT_EQ(Get("a", "", 1).kvs_size(), 0);
  RangeRequest r;
  r.set_key("a");
  r.set_revision(7);
  auto future = Range(r);
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(future.status().message(), kv_errors::kFutureRevision);
  // Count at a historical revision and limit.
  RangeRequest h;
  h.set_key("a");
  h.set_range_end("z");
  h.set_revision(3);
  h.set_limit(1);
  auto hr = Range(h);
  EXPECT_EQ(hr->count(), 2);
  EXPECT_TRUE(hr->more());
}

TEST_F(MvccTest, HistoricalReadsOverLongHistories) {
  // "a" gets 30 versions (revisions 2..31), "b" one at 32, "a" deleted at 33.
  for (int i = 0; i < 30; ++i) Put("a", std::to_string(i));
  Put("b", "x");
  Del("a");
  for (int64_t rev = 2; rev <= 31; ++rev) {
    auto r = Get("a", "c", rev);
    ASSERT_EQ(r.kvs_size(), 1) << rev;
    EXPECT_EQ(r.kvs(0).value(), std::to_string(rev - 2));
    EXPECT_EQ(r.kvs(0).version(), rev - 1);
  }
  EXPECT_EQ(Keys(Get("a", "c", 32)), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Keys(Get("a", "c", 33)), (std::vector<std::string>{"b"}));
  EXPECT_EQ(Get("a", "", 20).kvs(0).mod_revision(), 20);
}

TEST_F(MvccTest, CompactionKeepsNewestVersionsAndRemovesHistoryFromDisk) {
  Put("a", "1");  // 2
  Put("a", "2");  // 3
  Put("b", "1");  // 4
  Del("b");       // 5
  Put("c", "1");  // 6
  Put("a", "3");  // 7
  ASSERT_TRUE(Compact(6).ok);
  EXPECT_EQ(store_->compact_revision(), 6);
  // At the compact revision the state is intact: a@3, c@6; b deleted.
  auto at6 = Get("a", "z", 6);
  EXPECT_EQ(Keys(at6), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(at6.kvs(0).value(), "2");
  RangeRequest r;
  r.set_key("a");
  r.set_revision(5);
  EXPECT_EQ(Range(r).status().message(), kv_errors::kCompacted);
  EXPECT_EQ(Get("a").kvs(0).value(), "3");
  EXPECT_EQ(Get("a").kvs(0).version(), 3);
  // A second compaction drops the version the first one kept.
  Put("c", "2");  // 8
  ASSERT_TRUE(Compact(8).ok);
  store_.reset();

  // Look at RocksDB directly: only the newest versions at or below 8 remain in history
  // (a@7, c@8), nothing of the revlog at or below 8.
  std::vector<rocksdb::ColumnFamilyDescriptor> descs = {
      {rocksdb::kDefaultColumnFamilyName, {}},       {format::kKvFamily, {}},
      {format::kHistoryFamily, {}},                  {format::kRevlogFamily, {}},
      {format::kMetaFamily, {}}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly({}, dir_.string(), descs, &handles, &db).ok());
  std::vector<std::pair<std::string, int64_t>> history;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, handles[2]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string key;
      int64_t main = 0, sub = 0;
      ASSERT_TRUE(format::DecodeHistoryKey(it->key().ToString(), &key, &main, &sub));
      history.emplace_back(key, main);
    }
    std::unique_ptr<rocksdb::Iterator> rl(db->NewIterator({}, handles[3]));
    rl->SeekToFirst();
    EXPECT_FALSE(rl->Valid());
  }
  EXPECT_EQ(history, (std::vector<std::pair<std::string, int64_t>>{{"a", 7}, {"c", 8}}));
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  delete db;

  Reopen();
  EXPECT_EQ(store_->compact_revision(), 8);
  EXPECT_EQ(Get("c").kvs(0).version(), 2);
  EXPECT_EQ(Get("c").kvs(0).create_revision(), 6);
  EXPECT_EQ(Compact(8).error_message, kv_errors::kCompacted);
}

// The purge runs on its own thread: applying and reading go on meanwhile and stay correct;
// after close only the kept versions and newer ones are in history.
TEST_F(MvccTest, LargeCompactionPurgesBesideApplying) {
  std::vector<internal::Entry> entries;
  for (int i = 0; i < 3000; ++i) {
    internal::Command c;
    c.mutable_put()->set_key("k" + std::to_string(i % 10));
    c.mutable_put()->set_value(std::to_string(i));
    entries.push_back(MakeEntry(c));
  }
  ASSERT_TRUE(store_->ApplyEntries(entries).ok());
  ASSERT_TRUE(Compact(3001).ok);
  for (int i = 0; i < 50; ++i) Put("k" + std::to_string(i % 10), "after" + std::to_string(i));
  for (int k = 0; k < 10; ++k) {
    auto at = Get("k" + std::to_string(k), "", 3001);
    ASSERT_EQ(at.kvs_size(), 1);
    EXPECT_EQ(at.kvs(0).value(), std::to_string(2990 + k));
    EXPECT_EQ(at.kvs(0).version(), 300);
  }
  EXPECT_EQ(Get("k3").kvs(0).version(), 305);
  store_.reset();
  Reopen();
  // 10 kept versions at or below 3001 + 50 newer ones: count them through historical reads.
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(Get("k" + std::to_string(k), "", 3001).kvs(0).version(), 300);
  }
  store_.reset();
  std::vector<rocksdb::ColumnFamilyDescriptor> descs = {
      {rocksdb::kDefaultColumnFamilyName, {}}, {format::kKvFamily, {}},
      {format::kHistoryFamily, {}},            {format::kRevlogFamily, {}},
      {format::kMetaFamily, {}}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly({}, dir_.string(), descs, &handles, &db).ok());
  int history = 0;
  int revlog = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, handles[2]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++history;
    std::unique_ptr<rocksdb::Iterator> rl(db->NewIterator({}, handles[3]));
    for (rl->SeekToFirst(); rl->Valid(); rl->Next()) ++revlog;
  }
  EXPECT_EQ(history, 60);
  EXPECT_EQ(revlog, 50);
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  delete db;
  Reopen();
}

// Garbage in the store is reported as an error, never a crash or a wrong answer.
TEST_F(MvccTest, MalformedRecordsYieldInternalErrors) {
  Put("a", "1");
  Put("b", "1");
  Put("a", "2");
  WriteRawRecords({{format::kKvFamily, "b", "\xff\xff not a KeyValue"},
                   {format::kHistoryFamily, "c-without-terminator-and-revision", "p"}});
  Reopen();
  RangeRequest cur;
  cur.set_key("a");
  cur.set_range_end("z");
  auto bad_kv = Range(cur);
  ASSERT_FALSE(bad_kv.ok());
  EXPECT_EQ(bad_kv.status().code(), StatusCode::kInternal);
  RangeRequest hist;
  hist.set_key("a");
  hist.set_range_end("z");
  hist.set_revision(3);
  auto bad_history = Range(hist);
  ASSERT_FALSE(bad_history.ok());
  EXPECT_EQ(bad_history.status().code(), StatusCode::kInternal);
  EXPECT_EQ(Get("a").kvs(0).value(), "2");  // intact records still read
  // A write that must read the broken record fails the whole call, nothing applied.
  internal::Command c;
  c.mutable_put()->set_key("b");
  c.mutable_put()->set_value("x");
  std::vector<internal::Entry> entries = {MakeEntry(c)};
  auto out = store_->ApplyEntries(entries);
  EXPECT_FALSE(out.ok());
  EXPECT_EQ(store_->current_revision(), 4);
}

TEST_F(MvccTest, TxnEveryCompareTargetAndResult) {
  Put("k", "m");  // create 2, mod 2, version 1
  Put("k", "n");  // mod 3, version 2
  struct Case {
    Compare c;
    bool want;
  };
  std::vector<Case> cases = {
      {Cmp("k", Compare::VERSION, Compare::EQUAL, 2), true},
      {Cmp("k", Compare::VERSION, Compare::GREATER, 1), true},
      {Cmp("k", Compare::VERSION, Compare::LESS, 2), false},
      {Cmp("k", Compare::VERSION, Compare::NOT_EQUAL, 2), false},
      {Cmp("k", Compare::CREATE, Compare::EQUAL, 2), true},
      {Cmp("k", Compare::CREATE, Compare::LESS, 3), true},
      {Cmp("k", Compare::CREATE, Compare::GREATER, 2), false},
      {Cmp("k", Compare::MOD, Compare::EQUAL, 3), true},
      {Cmp("k", Compare::MOD, Compare::NOT_EQUAL, 3), false},
      {Cmp("k", Compare::MOD, Compare::GREATER, 2), true},
      {Cmp("k", Compare::VALUE, Compare::EQUAL, 0, "n"), true},
      {Cmp("k", Compare::VALUE, Compare::GREATER, 0, "m"), true},
      {Cmp("k", Compare::VALUE, Compare::LESS, 0, "m"), false},
      {Cmp("k", Compare::VALUE, Compare::NOT_EQUAL, 0, "n"), false},
      {Cmp("k", Compare::LEASE, Compare::EQUAL, 0), true},
      {Cmp("k", Compare::LEASE, Compare::GREATER, 0), false},
      // Missing key: zero KeyValue for numbers; VALUE always fails.
      {Cmp("missing", Compare::VERSION, Compare::EQUAL, 0), true},
      {Cmp("missing", Compare::CREATE, Compare::EQUAL, 0), true},
      {Cmp("missing", Compare::VALUE, Compare::EQUAL, 0, ""), false},
      {Cmp("missing", Compare::VALUE, Compare::NOT_EQUAL, 0, "x"), false},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    TxnRequest t;
    *t.add_compare() = cases[i].c;
    auto resp = Txn(t);
    EXPECT_EQ(resp.succeeded(), cases[i].want) << "case " << i;
    EXPECT_EQ(resp.header().revision(), 3) << "read-only txn keeps the revision";
  }
}

TEST_F(MvccTest, TxnCompareOverRangeNeedsEveryKey) {
  Put("p/a", "1");
  Put("p/b", "1");
  Put("p/b", "2");
  TxnRequest t;
  *t.add_compare() = Cmp("p/", Compare::VERSION, Compare::EQUAL, 1);
  t.mutable_compare(0)->set_range_end("p0");
  EXPECT_FALSE(Txn(t).succeeded());
  t.mutable_compare(0)->set_result(Compare::GREATER);
  t.mutable_compare(0)->set_version(0);
  EXPECT_TRUE(Txn(t).succeeded());
}

TEST_F(MvccTest, NestedTxnTakesBranchesAndSharesOneRevision) {
  Put("x", "1");  // 2
  TxnRequest inner_ok;
  *inner_ok.add_compare() = Cmp("x", Compare::VALUE, Compare::EQUAL, 0, "1");
  *inner_ok.add_success() = PutOp("y", "1");
  *inner_ok.add_failure() = PutOp("never", "1");
  TxnRequest inner_fail;
  *inner_fail.add_compare() = Cmp("x", Compare::VERSION, Compare::GREATER, 5);
  *inner_fail.add_success() = PutOp("never2", "1");
  *inner_fail.add_failure() = GetOp("x");
  *inner_fail.add_failure() = PutOp("z", "1");
  TxnRequest outer;
  *outer.add_compare() = Cmp("x", Compare::CREATE, Compare::EQUAL, 2);
  *outer.add_success()->mutable_request_txn() = inner_ok;
  *outer.add_success()->mutable_request_txn() = inner_fail;
  *outer.add_success() = GetOp("y");  // sees y written earlier in this txn
  std::vector<mvccpb::Event> events;
  internal::Command c;
  *c.mutable_txn() = outer;
  ApplyReply rep = Apply(c, &events);
  ASSERT_TRUE(rep.ok) << rep.error_message;
  TxnResponse resp;
  ASSERT_TRUE(resp.ParseFromString(rep.response));
  EXPECT_TRUE(resp.succeeded());
  EXPECT_EQ(resp.header().revision(), 3);
  ASSERT_EQ(resp.responses_size(), 3);
  EXPECT_TRUE(resp.responses(0).response_txn().succeeded());
  EXPECT_FALSE(resp.responses(1).response_txn().succeeded());
  EXPECT_EQ(resp.responses(1).response_txn().responses(0).response_range().kvs(0).value(), "1");
  EXPECT_EQ(resp.responses(2).response_range().kvs(0).key(), "y");
  EXPECT_EQ(resp.responses(2).response_range().header().revision(), 3);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv().key(), "y");
  EXPECT_EQ(events[1].kv().key(), "z");
  EXPECT_EQ(events[1].kv().mod_revision(), 3);
  EXPECT_EQ(Get("never").kvs_size(), 0);
  EXPECT_EQ(Get("never2").kvs_size(), 0);
  EXPECT_EQ(store_->current_revision(), 3);
}

TEST_F(MvccTest, PutIgnoreValueAndLeaseAndPrevKv) {
  internal::Command c;
  c.mutable_put()->set_key("k");
  c.mutable_put()->set_ignore_value(true);
  ApplyReply rep = Apply(c);
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.error_message, kv_errors::kKeyNotFound);
  EXPECT_EQ(rep.error_code, static_cast<int>(StatusCode::kInvalidArgument));
  c.mutable_put()->set_value("v");
  EXPECT_EQ(Apply(c).error_message, kv_errors::kValueProvided);
  internal::Command l;
  l.mutable_put()->set_key("k");
  l.mutable_put()->set_ignore_lease(true);
  l.mutable_put()->set_lease(5);
  EXPECT_EQ(Apply(l).error_message, kv_errors::kLeaseProvided);

  internal::Command grant;  // a put's lease must exist (checked at apply)
  grant.mutable_lease_grant()->set_id(42);
  grant.mutable_lease_grant()->set_ttl(60);
  ASSERT_TRUE(Apply(grant).ok);
  internal::Command withLease;
  withLease.mutable_put()->set_key("k");
  withLease.mutable_put()->set_value("orig");
  withLease.mutable_put()->set_lease(42);
  ASSERT_TRUE(Apply(withLease).ok);
  internal::Command keep;
  keep.mutable_put()->set_key("k");
  keep.mutable_put()->set_ignore_value(true);
  keep.mutable_put()->set_ignore_lease(true);
  keep.mutable_put()->set_prev_kv(true);
  rep = Apply(keep);
  ASSERT_TRUE(rep.ok);
  etcdserverpb::PutResponse pr;
  ASSERT_TRUE(pr.ParseFromString(rep.response));
  EXPECT_EQ(pr.prev_kv().value(), "orig");
  EXPECT_EQ(pr.prev_kv().lease(), 42);
  auto now = Get("k");
  EXPECT_EQ(now.kvs(0).value(), "orig");
  EXPECT_EQ(now.kvs(0).lease(), 42);
  EXPECT_EQ(now.kvs(0).version(), 2);
  EXPECT_FALSE(Put("new", "v", true).has_prev_kv());
}

TEST_F(MvccTest, DeleteRangePrevKvAndAll) {
  Put("a", "1");
  Put("b", "2");
  Put("c", "3");
  auto d = Del("a", "c", true);
  EXPECT_EQ(d.deleted(), 2);
  ASSERT_EQ(d.prev_kvs_size(), 2);
  EXPECT_EQ(d.prev_kvs(1).value(), "2");
  auto all = Del(std::string(1, '\0'), std::string(1, '\0'));
  EXPECT_EQ(all.deleted(), 1);
  EXPECT_EQ(Get(std::string(1, '\0'), std::string(1, '\0')).count(), 0);
}

TEST_F(MvccTest, EventsInRevisionOrderWithPrevKv) {
  Put("a", "1");
  std::vector<mvccpb::Event> events;
  TxnRequest t;
  *t.add_success() = PutOp("a", "2");
  *t.add_success() = DelOp("b");
  *t.add_success() = PutOp("c", "1");
  Put("b", "x");
  internal::Command c;
  *c.mutable_txn() = t;
  ASSERT_TRUE(Apply(c, &events).ok);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type(), mvccpb::Event::PUT);
  EXPECT_EQ(events[0].prev_kv().value(), "1");
  EXPECT_EQ(events[0].kv().version(), 2);
  EXPECT_EQ(events[1].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(events[1].kv().key(), "b");
  EXPECT_EQ(events[1].kv().mod_revision(), 4);
  EXPECT_EQ(events[1].prev_kv().value(), "x");
  EXPECT_FALSE(events[2].has_prev_kv());
  EXPECT_EQ(events[2].kv().mod_revision(), 4);
}

TEST_F(MvccTest, BatchAppliesInOrderAndRollsBackFailedRequests) {
  std::vector<internal::Entry> entries;
  internal::Command put;
  put.set_request_id(1);
  put.set_origin_member_id(7);
  put.mutable_put()->set_key("a");
  put.mutable_put()->set_value("1");
  entries.push_back(MakeEntry(put));
  internal::Entry empty;
  empty.set_index(next_index_++);
  empty.set_type(internal::Entry::EMPTY);
  entries.push_back(empty);
  // A txn that writes, then fails its check: nothing of it may stay.
  internal::Command bad;
  bad.set_request_id(2);
  bad.set_origin_member_id(7);
  *bad.mutable_txn()->add_success() = PutOp("zz", "1");
  *bad.mutable_txn()->add_success() = PutOp("yy", "1");  // sub-revision 1: no later write reuses it
  auto* ig = bad.mutable_txn()->add_success()->mutable_request_put();
  ig->set_key("absent");
  ig->set_ignore_value(true);
  entries.push_back(MakeEntry(bad));
  internal::Command other_member;
  other_member.set_request_id(3);
  other_member.set_origin_member_id(8);
  other_member.mutable_put()->set_key("a");
  other_member.mutable_put()->set_value("2");
  entries.push_back(MakeEntry(other_member));
  auto out = store_->ApplyEntries(entries);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->applied_index, 4u);
  ASSERT_EQ(out->replies.size(), 2u);  // member 8's reply is not ours
  EXPECT_TRUE(out->replies[0].ok);
  EXPECT_FALSE(out->replies[1].ok);
  EXPECT_EQ(out->replies[1].error_message, kv_errors::kKeyNotFound);
  EXPECT_EQ(out->events.size(), 2u);
  EXPECT_EQ(Get("zz").kvs_size(), 0);
  EXPECT_EQ(Get("yy").kvs_size(), 0);
  EXPECT_EQ(Get("a").kvs(0).version(), 2);
  EXPECT_EQ(store_->current_revision(), 3);
  EXPECT_EQ(store_->applied_index(), 4u);
  EXPECT_EQ(store_->raft_term(), 3u);
  // History (revlog and history families) holds the two puts only: the failed txn's
  // records were rolled back with it, whether or not the batch indexed them.
  HistoryQuery all;
  all.key = std::string(1, '\0');
  all.range_end = std::string(1, '\0');
  auto history = store_->ReadHistory(all);
  ASSERT_TRUE(history.ok()) << history.status().ToString();
  ASSERT_EQ(history->events.size(), 2u);
  EXPECT_EQ(history->events[0].kv().key(), "a");
  EXPECT_EQ(history->events[0].kv().mod_revision(), 2);
  EXPECT_EQ(history->events[1].kv().key(), "a");
  EXPECT_EQ(history->events[1].kv().mod_revision(), 3);
  EXPECT_EQ(history->events[1].kv().value(), "2");
}

// Reads of the kv family skip the batch's index for keys no earlier request of the batch
// wrote (a bloom filter of 4096 bits): every key written earlier in the batch, by a put or
// a delete, must still be seen, also once the filter is saturated.
TEST_F(MvccTest, EveryKeyWrittenEarlierInTheBatchIsSeenByLaterRequests) {
  constexpr int kKeys = 6000;
  std::vector<internal::Entry> entries;
  auto put = [&](int i, const std::string& v) {
    internal::Command c;
    c.mutable_put()->set_key("k" + std::to_string(i));
    c.mutable_put()->set_value(v);
    entries.push_back(MakeEntry(c));
  };
  auto del = [&](int i) {
    internal::Command c;
    c.mutable_delete_range()->set_key("k" + std::to_string(i));
    entries.push_back(MakeEntry(c));
  };
  for (int i = 0; i < kKeys; ++i) put(i, "1");
  for (int i = 0; i < kKeys; ++i) put(i, "2");
  for (int i = 0; i < kKeys; i += 3) del(i);
  for (int i = 0; i < kKeys; i += 6) put(i, "3");
  auto out = store_->ApplyEntries(entries);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  for (int i = 0; i < kKeys; ++i) {
    SCOPED_TRACE(i);
    auto r = Get("k" + std::to_string(i));
    if (i % 6 == 0) {
      ASSERT_EQ(r.kvs_size(), 1);
      EXPECT_EQ(r.kvs(0).version(), 1);  // re-created after its delete
      EXPECT_EQ(r.kvs(0).value(), "3");
    } else if (i % 3 == 0) {
      EXPECT_EQ(r.kvs_size(), 0);
    } else {
      ASSERT_EQ(r.kvs_size(), 1);
      EXPECT_EQ(r.kvs(0).version(), 2);
      EXPECT_EQ(r.kvs(0).value(), "2");
    }
  }
}

// A txn reading a past revision that an earlier request of the same batch wrote sees it:
// history records of the pending batch are read through the view (before any rollback in
// the batch, and after one).
TEST_F(MvccTest, TxnReadsPastRevisionsWrittenEarlierInTheSameBatch) {
  std::vector<internal::Entry> entries;
  auto put = [&](uint64_t id, const std::string& k, const std::string& v) {
    internal::Command c;
    c.set_request_id(id);
    c.set_origin_member_id(7);
    c.mutable_put()->set_key(k);
    c.mutable_put()->set_value(v);
    entries.push_back(MakeEntry(c));
  };
  auto read = [&](uint64_t id) {
    internal::Command c;
    c.set_request_id(id);
    c.set_origin_member_id(7);
    for (int64_t rev : {2, 3, 4}) {
      auto* r = c.mutable_txn()->add_success()->mutable_request_range();
      r->set_key("a");
      r->set_range_end("c");
      r->set_revision(rev);
    }
    entries.push_back(MakeEntry(c));
  };
  put(1, "a", "1");  // revision 2
  put(2, "a", "2");  // revision 3
  put(3, "b", "1");  // revision 4
  read(4);
  internal::Command bad;  // writes, then fails: rolled back
  bad.set_request_id(5);
  bad.set_origin_member_id(7);
  *bad.mutable_txn()->add_success() = PutOp("a", "bad");
  *bad.mutable_txn()->add_success() = PutOp("b", "bad");
  auto* ig = bad.mutable_txn()->add_success()->mutable_request_put();
  ig->set_key("absent");
  ig->set_ignore_value(true);
  entries.push_back(MakeEntry(bad));
  read(6);
  auto out = store_->ApplyEntries(entries);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->replies.size(), 6u);
  EXPECT_FALSE(out->replies[4].ok);
  for (int i : {3, 5}) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(out->replies[i].ok) << out->replies[i].error_message;
    etcdserverpb::TxnResponse txn;
    ASSERT_TRUE(txn.ParseFromString(out->replies[i].response));
    ASSERT_EQ(txn.responses_size(), 3);
    const auto& at2 = txn.responses(0).response_range();
    ASSERT_EQ(at2.kvs_size(), 1);
    EXPECT_EQ(at2.kvs(0).value(), "1");
    const auto& at3 = txn.responses(1).response_range();
    ASSERT_EQ(at3.kvs_size(), 1);
    EXPECT_EQ(at3.kvs(0).value(), "2");
    const auto& at4 = txn.responses(2).response_range();
    ASSERT_EQ(at4.kvs_size(), 2);
    EXPECT_EQ(at4.kvs(0).value(), "2");
    EXPECT_EQ(at4.kvs(1).value(), "1");
  }
  // The batch is written: the same reads agree, and nothing of the failed txn stayed.
  EXPECT_EQ(Get("a", "c", 3).kvs(0).value(), "2");
  EXPECT_EQ(Get("a").kvs(0).value(), "2");
  EXPECT_EQ(Get("b").kvs(0).value(), "1");
  EXPECT_EQ(store_->current_revision(), 4);
}

TEST_F(MvccTest, RestartKeepsStateAndSkipsAppliedEntries) {
  Put("a", "1");
  Put("b", "2");
  Del("a");
  auto synced = store_->SyncWal();
  ASSERT_TRUE(synced.ok());
  EXPECT_EQ(*synced, 3u);
  const uint64_t applied = store_->applied_index();
  Reopen();
  EXPECT_EQ(store_->applied_index(), applied);
  EXPECT_EQ(store_->current_revision(), 4);
  EXPECT_EQ(Get("a", "", 2).kvs(0).value(), "1");
  EXPECT_EQ(Get("b").kvs(0).mod_revision(), 3);
  // raftd re-sends entries 2..4: only 4 is new.
  std::vector<internal::Entry> entries;
  for (uint64_t i = 2; i <= 4; ++i) {
    internal::Command c;
    c.set_request_id(100 + i);
    c.set_origin_member_id(7);
    c.mutable_put()->set_key("r" + std::to_string(i));
    c.mutable_put()->set_value("v");
    internal::Entry e;
    e.set_index(i);
    e.set_term(5);
    e.set_data(c.SerializeAsString());
    entries.push_back(e);
  }
  auto out = store_->ApplyEntries(entries);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->replies.size(), 1u);
  EXPECT_EQ(out->applied_index, 4u);
  EXPECT_EQ(Get("r2").kvs_size(), 0);
  EXPECT_EQ(Get("r4").kvs_size(), 1);
  EXPECT_EQ(store_->current_revision(), 5);
  // Everything skipped: nothing changes.
  out = store_->ApplyEntries(entries);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->replies.empty());
  EXPECT_EQ(store_->current_revision(), 5);
}

TEST_F(MvccTest, AnyByteKeysAndEmptyValues) {
  const std::string k1("\x00", 1), k2("\x00\x00", 2), k3("\x00\x01", 2), k4("a\x00", 2),
      k5("a\xff", 2), k6("\xff\xff", 2);
  for (const auto& k : {k6, k4, k1, k5, k3, k2}) Put(k, "");
  Put(k4, "x");
  Del(k5);
  auto all = Get(std::string(1, '\0'), std::string(1, '\0'));
  EXPECT_EQ(Keys(all), (std::vector<std::string>{k1, k2, k3, k4, k6}));
  EXPECT_EQ(all.kvs(0).value(), "");
  EXPECT_EQ(all.kvs(3).value(), "x");
  // Historical read over the same keys (history family ordering).
  auto hist = Get(std::string(1, '\0'), std::string(1, '\0'), 7);
  EXPECT_EQ(Keys(hist), (std::vector<std::string>{k1, k2, k3, k4, k5, k6}));
  EXPECT_EQ(hist.kvs(3).value(), "");
  EXPECT_EQ(Keys(Get(k1, k3, 7)), (std::vector<std::string>{k1, k2}));
  EXPECT_EQ(Keys(Get(k4, "", 9)), (std::vector<std::string>{k4}));
  EXPECT_EQ(Get(k4, "", 9).kvs(0).value(), "x");
}

// Readers run beside the apply thread: each sees a consistent state, never data newer than
// the revision in its header, and revisions never go back.
TEST_F(MvccTest, ConcurrentReadersSeeConsistentSnapshots) {
  std::atomic<bool> stop{false};
  std::atomic<int> violations{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    int64_t last = 0;
    RangeRequest all;
    all.set_key(std::string(1, '\0'));
    all.set_range_end(std::string(1, '\0'));
    while (!stop.load()) {
      auto bytes = store_->Range(all);
      RangeResponse r;
      if (!bytes.ok() || !r.ParseFromString(*bytes)) {
        ++violations;
        continue;
      }
      const int64_t rev = r.header().revision();
      if (rev < last) ++violations;
      last = rev;
      // Every put creates a new key: keys == revision - 1.
      if (r.count() != rev - 1) ++violations;
      for (const auto& kv : r.kvs()) {
        if (kv.mod_revision() > rev) ++violations;
      }
      ++reads;
    }
  });
  for (int batch = 0; batch < 100; ++batch) {
    std::vector<internal::Entry> entries;
    for (int i = 0; i < 5; ++i) {
      internal::Command c;
      c.mutable_put()->set_key("k" + std::to_string(batch * 5 + i));
      c.mutable_put()->set_value("v");
      entries.push_back(MakeEntry(c));
    }
    ASSERT_TRUE(store_->ApplyEntries(entries).ok());
  }
  while (reads.load() < 10) std::this_thread::yield();
  stop = true;
  reader.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(store_->current_revision(), 501);
}

TEST_F(MvccTest, ManyRandomOpsMatchAModel) {
  std::mt19937 rng(42);
  std::map<std::string, std::string> model;
  for (int i = 0; i < 300; ++i) {
    std::string k(1, static_cast<char>('a' + rng() % 8));
    if (rng() % 4 == 0) {
      Del(k);
      model.erase(k);
    } else {
      std::string v = std::to_string(rng() % 100);
      Put(k, v);
      model[k] = v;
    }
  }
  auto all = Get("a", "z");
  ASSERT_EQ(static_cast<size_t>(all.kvs_size()), model.size());
  EXPECT_EQ(static_cast<size_t>(all.count()), model.size());
  RangeRequest limited;
  limited.set_key("a");
  limited.set_range_end("z");
  limited.set_limit(2);
  EXPECT_EQ(static_cast<size_t>(RangeOk(limited).count()), model.size());
  for (const auto& [k, v] : model) EXPECT_EQ(Get(k).count(), 1);
  size_t i = 0;
  for (const auto& [k, v] : model) {
    EXPECT_EQ(all.kvs(static_cast<int>(i)).key(), k);
    EXPECT_EQ(all.kvs(static_cast<int>(i)).value(), v);
    ++i;
  }
  // The history at the current revision matches the kv family.
  auto hist = Get("a", "z", store_->current_revision() - 1);
  EXPECT_GE(hist.count(), 0);
}

}  // namespace
}  // namespace rusd::stored
