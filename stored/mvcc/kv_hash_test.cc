// KvStore::HashKv / Hash (kv_hash.h): etcd's HashByRev over a known history. The expected
// values are built here from etcd's on-disk layout written out by hand (revision keys and
// KeyValue bytes assembled byte by byte, not through protobuf), so they check the layout,
// the record selection around compactions and the error cases independently of kv_hash.cc.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/crc32c.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "rusd/internal.pb.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/mvcc/kv_hash.h"
#include "stored/mvcc/kv_store.h"
#include "stored/mvcc/store_test_fixture.h"

namespace rusd::stored {
namespace {

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

// etcd's bbolt key of a revision.
std::string RevKey(int64_t main, int64_t sub, bool tombstone = false) {
  std::string k;
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(uint64_t(main) >> (8 * i)));
  k.push_back('_');
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(uint64_t(sub) >> (8 * i)));
  if (tombstone) k.push_back('t');
  return k;
}

// gogoproto's mvccpb.KeyValue.Marshal: key=1, create_revision=2, mod_revision=3, version=4,
// value=5, lease=6; zero fields omitted.
std::string EtcdKv(const std::string& key, int64_t create, int64_t mod, int64_t version,
                   const std::string& value) {
  std::string b = "\x0a" + Varint(key.size()) + key;
  if (create != 0) b += "\x10" + Varint(static_cast<uint64_t>(create));
  if (mod != 0) b += "\x18" + Varint(static_cast<uint64_t>(mod));
  if (version != 0) b += "\x20" + Varint(static_cast<uint64_t>(version));
  if (!value.empty()) b += "\x2a" + Varint(value.size()) + value;
  return b;
}
std::string Tomb(const std::string& key) { return "\x0a" + Varint(key.size()) + key; }

struct Record {
  std::string key;
  std::string value;
};

uint32_t Expected(const std::vector<Record>& records) {
  uint32_t crc = Crc32cExtend(0, "key", 3);
  for (const Record& r : records) {
    crc = Crc32cExtend(crc, r.key.data(), r.key.size());
    crc = Crc32cExtend(crc, r.value.data(), r.value.size());
  }
  return crc;
}

class KvHashTest : public StoreTestFixture {
 protected:
  void Put(const std::string& k, const std::string& v) {
    internal::Command c;
    c.mutable_put()->set_key(k);
    c.mutable_put()->set_value(v);
    ApplyAll({c});
  }
  void Del(const std::string& k, const std::string& end = "") {
    internal::Command c;
    c.mutable_delete_range()->set_key(k);
    c.mutable_delete_range()->set_range_end(end);
    ApplyAll({c});
  }
  void Compact(int64_t rev) {
    internal::Command c;
    c.mutable_compaction()->set_revision(rev);
    ApplyAll({c});
  }
  etcdserverpb::HashKVResponse HashKv(int64_t rev) {
    auto r = store_->HashKv(rev);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    etcdserverpb::HashKVResponse resp;
    if (r.ok()) {
      EXPECT_TRUE(resp.ParseFromString(*r));
    }
    return resp;
  }

  // Revisions 2..7: a=1 (2), b=2 (3), a=3 (4), delete b (5), txn {put c=4, put d=5,
  // delete a} (6), delete [c, e) (7).
  void WriteHistory() {
    Put("a", "1");
    Put("b", "2");
    Put("a", "3");
    Del("b");
    internal::Command txn;
    auto* p1 = txn.mutable_txn()->add_success()->mutable_request_put();
    p1->set_key("c");
    p1->set_value("4");
    auto* p2 = txn.mutable_txn()->add_success()->mutable_request_put();
    p2->set_key("d");
    p2->set_value("5");
    txn.mutable_txn()->add_success()->mutable_request_delete_range()->set_key("a");
    ApplyAll({txn});
    Del("c", "e");
    ASSERT_EQ(store_->current_revision(), 7);
  }

  // etcd's records of that history.
  const Record a2{RevKey(2, 0), EtcdKv("a", 2, 2, 1, "1")};
  const Record b3{RevKey(3, 0), EtcdKv("b", 3, 3, 1, "2")};
  const Record a4{RevKey(4, 0), EtcdKv("a", 2, 4, 2, "3")};
  const Record b5{RevKey(5, 0, true), Tomb("b")};
  const Record c6{RevKey(6, 0), EtcdKv("c", 6, 6, 1, "4")};
  const Record d6{RevKey(6, 1), EtcdKv("d", 6, 6, 1, "5")};
  const Record a6{RevKey(6, 2, true), Tomb("a")};
  const Record c7{RevKey(7, 0, true), Tomb("c")};
  const Record d7{RevKey(7, 1, true), Tomb("d")};
};

TEST(KvHashCrc, IsCastagnoli) {
  EXPECT_EQ(Crc32cExtend(0, "123456789", 9), 0xE3069283u);
  // Extending in pieces equals one pass (Go's hash.Hash32 Write calls).
  EXPECT_EQ(Crc32cExtend(Crc32cExtend(0, "1234", 4), "56789", 5), 0xE3069283u);
}

TEST_F(KvHashTest, EmptyStoreHashesOnlyTheBucketName) {
  etcdserverpb::HashKVResponse r = HashKv(0);
  EXPECT_EQ(r.hash(), Expected({}));
  EXPECT_EQ(r.compact_revision(), -1);
  EXPECT_EQ(r.header().revision(), 1);
  EXPECT_EQ(r.header().member_id(), kMemberId);
}

TEST_F(KvHashTest, UncompactedHistoryHashesEveryRecordUpToTheRevision) {
  WriteHistory();
  EXPECT_EQ(HashKv(0).hash(), Expected({a2, b3, a4, b5, c6, d6, a6, c7, d7}));
  EXPECT_EQ(HashKv(7).hash(), HashKv(0).hash());
  EXPECT_EQ(HashKv(6).hash(), Expected({a2, b3, a4, b5, c6, d6, a6}));
  EXPECT_EQ(HashKv(3).hash(), Expected({a2, b3}));
  etcdserverpb::HashKVResponse r = HashKv(3);
  EXPECT_EQ(r.header().revision(), 7);  // etcd: the current revision, not the hashed one
  EXPECT_EQ(r.compact_revision(), -1);
  // etcd: a negative revision counts no record.
  EXPECT_EQ(HashKv(-5).hash(), Expected({}));
}

TEST_F(KvHashTest, CompactionKeepsEtcdsRecordsAndFiltersThemByKeep) {
  WriteHistory();
  Compact(4);  // etcd keeps a@4 and b@3 (each key's newest record <= 4, both puts)
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "purge maybe running" : "after reopen (purge finished)");
    // At 5 a@4 is still a's newest (counted), b@3 was superseded by b's tombstone.
    EXPECT_EQ(HashKv(5).hash(), Expected({a4, b5}));
    // At 6 both kept records are superseded and c, d are live: neither counted.
    EXPECT_EQ(HashKv(6).hash(), Expected({b5, c6, d6, a6}));
    // At 7 no key is live: etcd's Keep(7) is empty and every kept record counts.
    EXPECT_EQ(HashKv(7).hash(), Expected({b3, a4, b5, c6, d6, a6, c7, d7}));
    EXPECT_EQ(HashKv(0).compact_revision(), 4);
    // etcd's errors: at or below the compacted revision, above the current one.
    auto compacted = store_->HashKv(4);
    ASSERT_FALSE(compacted.ok());
    EXPECT_EQ(compacted.status().code(), StatusCode::kOutOfRange);
    EXPECT_EQ(compacted.status().message(), kv_errors::kCompacted);
    auto future = store_->HashKv(8);
    ASSERT_FALSE(future.ok());
    EXPECT_EQ(future.status().code(), StatusCode::kOutOfRange);
    EXPECT_EQ(future.status().message(), kv_errors::kFutureRevision);
    Reopen();
  }
}

TEST_F(KvHashTest, CompactionAtTheCurrentRevisionHashesTheKeptRecords) {
  Put("a", "1");
  Put("b", "2");
  Put("a", "3");
  Compact(4);
  // Revision 0 = current = compacted: only the kept records (a@4, b@3) in revision order.
  EXPECT_EQ(HashKv(0).hash(), Expected({{RevKey(3, 0), EtcdKv("b", 3, 3, 1, "2")},
                                        {RevKey(4, 0), EtcdKv("a", 2, 4, 2, "3")}}));
  Put("c", "x");
  EXPECT_EQ(HashKv(5).hash(), Expected({{RevKey(3, 0), EtcdKv("b", 3, 3, 1, "2")},
                                        {RevKey(4, 0), EtcdKv("a", 2, 4, 2, "3")},
                                        {RevKey(5, 0), EtcdKv("c", 5, 5, 1, "x")}}));
}

TEST_F(KvHashTest, StateHashFollowsTheStateAndSurvivesReopen) {
  auto first = store_->Hash();
  ASSERT_TRUE(first.ok());
  Put("a", "1");
  auto second = store_->Hash();
  ASSERT_TRUE(second.ok());
  etcdserverpb::HashResponse r1, r2;
  ASSERT_TRUE(r1.ParseFromString(*first));
  ASSERT_TRUE(r2.ParseFromString(*second));
  EXPECT_NE(r1.hash(), r2.hash());
  EXPECT_EQ(r2.header().revision(), 2);
  Reopen();
  auto again = store_->Hash();
  ASSERT_TRUE(again.ok());
  etcdserverpb::HashResponse r3;
  ASSERT_TRUE(r3.ParseFromString(*again));
  EXPECT_EQ(r3.hash(), r2.hash());
}

}  // namespace
}  // namespace rusd::stored
