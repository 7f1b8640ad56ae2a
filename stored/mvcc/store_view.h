// StoreView: one consistent read view of the store's column families, internal to
// rusd_mvcc. Two kinds:
// - SnapshotView: a RocksDB snapshot (read workers, any thread);
// - BatchView: the apply thread's pending WriteBatchWithIndex over the DB, so that later
//   operations of one ApplyEntries call see earlier ones (etcd applies them one by one).
// A view is used by one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

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
// The revlog and history families are written past the batch's index (ApplyState::
// PutRevlog, PutHistory). Reading revlog through the view fails (NotSupported) instead of
// silently missing pending records; nothing in the apply path reads it. History is read in
// one rare case (a txn's Range at a past revision): the view then indexes the batch's
// pending history records (`pending_history`, kept by ApplyState) in a small batch of its
// own and reads through that.
class BatchView final : public StoreView {
 public:
  using PendingRecords = std::vector<std::pair<std::string, std::string>>;

  BatchView(rocksdb::DB* db, rocksdb::WriteBatchWithIndex* batch, const Families& families,
            const PendingRecords* pending_history)
      : StoreView(families), db_(db), batch_(batch), pending_history_(pending_history) {}

  rocksdb::Status Get(rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key,
                      std::string* value) override {
    if (cf == families().revlog) return Unindexed();
    return BatchFor(cf)->GetFromBatchAndDB(db_, options_, cf, key, value);
  }
  std::unique_ptr<rocksdb::Iterator> NewIterator(rocksdb::ColumnFamilyHandle* cf) override {
    if (cf == families().revlog) {
      return std::unique_ptr<rocksdb::Iterator>(rocksdb::NewErrorIterator(Unindexed()));
    }
    return std::unique_ptr<rocksdb::Iterator>(
        BatchFor(cf)->NewIteratorWithBase(cf, db_->NewIterator(options_, cf)));
  }

  // Drops the history indexes built for reads (the batch was cleared: no iterator of the
  // view may be alive).
  void Reset() {
    history_indexes_.clear();
    indexed_history_ = 0;
  }

 private:
  rocksdb::DB* db_;
  static rocksdb::Status Unindexed() {
    return rocksdb::Status::NotSupported("mvcc: revlog is not readable through the pending batch");
  }

  // The batch whose index shows `cf`'s pending records.
  rocksdb::WriteBatchWithIndex* BatchFor(rocksdb::ColumnFamilyHandle* cf) {
    if (cf != families().history || pending_history_ == nullptr) return batch_;
    // Re-index when the records changed since the last build (a rollback can shrink them
    // and new ones grow them). Earlier indexes stay alive: an iterator may still use one.
    if (history_indexes_.empty() || indexed_history_ != pending_history_->size()) {
      auto index = std::make_unique<rocksdb::WriteBatchWithIndex>(rocksdb::BytewiseComparator(),
                                                                   0, /*overwrite_key=*/true);
      for (const auto& [key, value] : *pending_history_) index->Put(cf, key, value);
      history_indexes_.push_back(std::move(index));
      indexed_history_ = pending_history_->size();
    }
    return history_indexes_.back().get();
  }

  rocksdb::WriteBatchWithIndex* batch_;
  const PendingRecords* pending_history_;
  std::vector<std::unique_ptr<rocksdb::WriteBatchWithIndex>> history_indexes_;
  size_t indexed_history_ = 0;
  rocksdb::ReadOptions options_;
};

}  // namespace rusd::stored
