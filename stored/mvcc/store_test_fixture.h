// StoreTestFixture: the gtest fixture the MVCC tests share: a real KvStore (RocksDB) in a
// fresh temp directory per test, reopened on demand, and commands applied as consecutive
// Raft entries the way stored's apply loop hands them over.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <rocksdb/db.h>

#include "rusd/internal.pb.h"
#include "stored/mvcc/kv_store.h"
#include "stored/mvcc/storage_format.h"

namespace rusd::stored {

class StoreTestFixture : public ::testing::Test {
 protected:
  static constexpr uint64_t kMemberId = 7;

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("rusd_store_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name() + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Options beyond the fixture's (member 7, cluster 9, an 8 MiB block cache).
  virtual void Configure(KvStoreOptions& /*options*/) {}

  // Closes and reopens the store on the same directory (a restart).
  void Reopen() {
    store_.reset();
    KvStoreOptions o;
    o.member_id = kMemberId;
    o.cluster_id = 9;
    o.block_cache_bytes = 8 << 20;
    Configure(o);
    auto r = KvStore::Open(dir_.string(), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(r).value();
    next_index_ = store_->applied_index() + 1;
  }

  // Applies `cmds` as consecutive entries of term 3 in one batch; each gets a request id
  // (its index + 1000) and this member as origin, so each has a reply.
  ApplyOutput ApplyAll(std::vector<internal::Command> cmds) {
    std::vector<internal::Entry> entries;
    for (internal::Command& cmd : cmds) {
      cmd.set_request_id(next_index_ + 1000);
      cmd.set_origin_member_id(kMemberId);
      internal::Entry& e = entries.emplace_back();
      e.set_index(next_index_++);
      e.set_term(3);
      e.set_type(internal::Entry::NORMAL);
      e.set_data(cmd.SerializeAsString());
    }
    auto out = store_->ApplyEntries(entries);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? std::move(out).value() : ApplyOutput{};
  }

  // One raw record written straight into a column family, past the store's format checks.
  struct RawRecord {
    const char* family;  // a format::k*Family name
    std::string key;
    std::string value;
  };
  // Closes the store, writes `records` with RocksDB directly (e.g. malformed ones), and
  // leaves the store closed: the test reopens it.
  void WriteRawRecords(const std::vector<RawRecord>& records) {
    store_.reset();
    const std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName, format::kKvFamily,
                                            format::kHistoryFamily, format::kRevlogFamily,
                                            format::kMetaFamily, format::kKeysFamily};
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& name : names) descs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open({}, dir_.string(), descs, &handles, &db).ok());
    for (const RawRecord& r : records) {
      size_t i = 0;
      while (i < names.size() && names[i] != r.family) ++i;
      ASSERT_LT(i, names.size()) << r.family;
      EXPECT_TRUE(db->Put({}, handles[i], r.key, r.value).ok());
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }

  std::filesystem::path dir_;
  std::unique_ptr<KvStore> store_;
  uint64_t next_index_ = 1;
};

}  // namespace rusd::stored
