// StoreView: one consistent read view of the store's column families, internal to
// rusd_mvcc. Two kinds:
// - SnapshotView: a RocksDB snapshot (read workers, any thread);
// - BatchView: the apply thread's pending WriteBatchWithIndex over the DB, so that later
//   operations of one ApplyEntries call see earlier ones (etcd applies them one by one).
// A view is used by one thread at a time.
#pragma once

#include <memory>
#include <string>

#include <rocksdb/db.h>
#include <rocksdb/utilities/write_batch_with_index.h>

namespace rusd::stored {

struct Families {
  rocksdb::ColumnFamilyHandle* kv = nullptr;
  rocksdb::ColumnFamilyHandle* history = nullptr;
  rocksdb::ColumnFamilyHandle* revlog = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* keys = nullptr;
};

class StoreView {
 public:
  explicit StoreView(const Families& families) : families_(families) {}
  virtual ~StoreView() = default;
  // NotFound is a normal outcome.
  virtual rocksdb::Status Get(rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key,
                              std::string* value) = 0;
  virtual std::unique_ptr<rocksdb::Iterator> NewIterator(rocksdb::ColumnFamilyHandle* cf) = 0;
  const Families& families() const { return families_; }

 private:
  Families families_;
};

// Reads a DB snapshot; releases it on destruction.
class SnapshotView final : public StoreView {
 public:
  SnapshotView(rocksdb::DB* db, const Families& families)
      : StoreView(families), db_(db), snapshot_(db->GetSnapshot()) {
    options_.snapshot = snapshot_;
  }
  ~SnapshotView() override { db_->ReleaseSnapshot(snapshot_); }
  SnapshotView(const SnapshotView&) = delete;
  SnapshotView& operator=(const SnapshotView&) = delete;

  rocksdb::Status Get(rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key,
                      std::string* value) override {
    return db_->Get(options_, cf, key, value);
  }
  std::unique_ptr<rocksdb::Iterator> NewIterator(rocksdb::ColumnFamilyHandle* cf) override {
    return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(options_, cf));
  }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
  rocksdb::ReadOptions options_;
};

// Reads the pending batch layered over the DB's latest state (only the apply thread
// writes, so the DB does not move underneath).
//
// The revlog family is written past the batch's index (ApplyState::PutRevlog), so the view
// cannot show its pending entries: reading revlog through it fails (NotSupported) instead
// of silently missing them. Nothing in the apply path reads revlog.
class BatchView final : public StoreView {
 public:
  BatchView(rocksdb::DB* db, rocksdb::WriteBatchWithIndex* batch, const Families& families)
      : StoreView(families), db_(db), batch_(batch) {}

  rocksdb::Status Get(rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key,
                      std::string* value) override {
    if (cf == families().revlog) return Unindexed();
    return batch_->GetFromBatchAndDB(db_, options_, cf, key, value);
  }
  std::unique_ptr<rocksdb::Iterator> NewIterator(rocksdb::ColumnFamilyHandle* cf) override {
    if (cf == families().revlog) {
      return std::unique_ptr<rocksdb::Iterator>(rocksdb::NewErrorIterator(Unindexed()));
    }
    return std::unique_ptr<rocksdb::Iterator>(
        batch_->NewIteratorWithBase(cf, db_->NewIterator(options_, cf)));
  }

 private:
  rocksdb::DB* db_;
  static rocksdb::Status Unindexed() {
    return rocksdb::Status::NotSupported("mvcc: revlog is not readable through the pending batch");
  }

  rocksdb::WriteBatchWithIndex* batch_;
  rocksdb::ReadOptions options_;
};

}  // namespace rusd::stored
