// StoreView: one consistent read view of the store's column families, internal to
// rusd_mvcc. Two kinds:
// - SnapshotView: a RocksDB snapshot (read workers, any thread);
// - BatchView: the apply thread's pending WriteBatchWithIndex over the DB, so that later
//   operations of one ApplyEntries call see earlier ones (etcd applies them one by one).
// A view is used by one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
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
// one rare case (a txn's Range at a past revision): the view then indexes the history
// records of the batch's WriteBatch (rollbacks truncate it, so it holds exactly the
// pending ones) in a small batch of its own and reads through that, rebuilt when
// `history_generation` changed since.
class BatchView final : public StoreView {
 public:
  BatchView(rocksdb::DB* db, rocksdb::WriteBatchWithIndex* batch, const Families& families,
            const uint64_t* history_generation)
      : StoreView(families), db_(db), batch_(batch), history_generation_(history_generation) {}

  rocksdb::Status Get(rocksdb::ColumnFamilyHandle* cf, const rocksdb::Slice& key,
                      std::string* value) override {
    if (cf == families().revlog) return Unindexed();
    // Most puts read a key no earlier request of the batch wrote: read the DB directly,
    // without searching the batch's index.
    if (cf == families().kv && !MayHaveWrittenKv(key)) return db_->Get(options_, cf, key, value);
    rocksdb::WriteBatchWithIndex* b = BatchFor(cf);
    if (b == nullptr) return index_status_;
    return b->GetFromBatchAndDB(db_, options_, cf, key, value);
  }
  std::unique_ptr<rocksdb::Iterator> NewIterator(rocksdb::ColumnFamilyHandle* cf) override {
    if (cf == families().revlog) {
      return std::unique_ptr<rocksdb::Iterator>(rocksdb::NewErrorIterator(Unindexed()));
    }
    rocksdb::WriteBatchWithIndex* b = BatchFor(cf);
    if (b == nullptr) return std::unique_ptr<rocksdb::Iterator>(rocksdb::NewErrorIterator(index_status_));
    return std::unique_ptr<rocksdb::Iterator>(
        b->NewIteratorWithBase(cf, db_->NewIterator(options_, cf)));
  }

  // Every write of the kv family into the batch must be noted here (ApplyState::PutKv,
  // DeleteKv), before the next read: a key not noted is read from the DB alone.
  void NoteKvWrite(const rocksdb::Slice& key) {
    const size_t bit = KvBit(key);
    kv_written_[bit / 64] |= uint64_t{1} << (bit % 64);
  }

  // Drops the history indexes built for reads and the kv write filter (the batch was
  // cleared: no iterator of the view may be alive).
  void Reset() {
    history_indexes_.clear();
    kv_written_.fill(0);
  }

 private:
  rocksdb::DB* db_;
  static rocksdb::Status Unindexed() {
    return rocksdb::Status::NotSupported("mvcc: revlog is not readable through the pending batch");
  }

  // Copies the history family's records of a WriteBatch into an index; the batch holds
  // only puts there (tombstones are 't' records), everything else is skipped.
  class HistoryCollector final : public rocksdb::WriteBatch::Handler {
   public:
    HistoryCollector(rocksdb::ColumnFamilyHandle* cf, rocksdb::WriteBatchWithIndex* index)
        : cf_(cf), index_(index) {}
    rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
      if (id != cf_->GetID()) return rocksdb::Status::OK();
      return index_->Put(cf_, key, value);
    }
    rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
    rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }

   private:
    rocksdb::ColumnFamilyHandle* cf_;
    rocksdb::WriteBatchWithIndex* index_;
  };

  // The batch whose index shows `cf`'s pending records; nullptr if indexing the history
  // records failed (index_status_ says why).
  rocksdb::WriteBatchWithIndex* BatchFor(rocksdb::ColumnFamilyHandle* cf) {
    if (cf != families().history || history_generation_ == nullptr) return batch_;
    // Re-index when the records changed since the last build. Earlier indexes stay alive:
    // an iterator may still use one.
    if (history_indexes_.empty() || indexed_generation_ != *history_generation_) {
      auto index = std::make_unique<rocksdb::WriteBatchWithIndex>(rocksdb::BytewiseComparator(),
                                                                   0, /*overwrite_key=*/true);
      HistoryCollector collector(cf, index.get());
      index_status_ = batch_->GetWriteBatch()->Iterate(&collector);
      if (!index_status_.ok()) return nullptr;
      history_indexes_.push_back(std::move(index));
      indexed_generation_ = *history_generation_;
    }
    return history_indexes_.back().get();
  }

  // A one-hash bloom filter of the kv keys written into the batch since Reset: no false
  // negatives; a rolled-back write stays in it (a false positive: the batch is searched).
  static size_t KvBit(const rocksdb::Slice& key) {
    return std::hash<std::string_view>{}(std::string_view(key.data(), key.size())) % kKvFilterBits;
  }
  bool MayHaveWrittenKv(const rocksdb::Slice& key) const {
    const size_t bit = KvBit(key);
    return (kv_written_[bit / 64] >> (bit % 64)) & 1;
  }
  static constexpr size_t kKvFilterBits = 4096;
  std::array<uint64_t, kKvFilterBits / 64> kv_written_{};

  rocksdb::WriteBatchWithIndex* batch_;
  const uint64_t* history_generation_;
  std::vector<std::unique_ptr<rocksdb::WriteBatchWithIndex>> history_indexes_;
  uint64_t indexed_generation_ = 0;
  rocksdb::Status index_status_;
  rocksdb::ReadOptions options_;
};

}  // namespace rusd::stored
