// Applying one committed command (Put, DeleteRange, Txn, Compaction, lease grant/revoke/
// checkpoint) inside the pending
// batch of an ApplyEntries call, with etcd 3.5's semantics (etcdserver/apply.go,
// mvcc/kvstore_txn.go). Internal to rusd_mvcc; apply thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rocksdb/status.h>

#include "common/status.h"
#include "stored/mvcc/kv_store.h"
#include "stored/mvcc/storage_format.h"
#include "stored/mvcc/store_view.h"

namespace etcdserverpb {
class ResponseHeader;
}
namespace rusd::internal {
class Command;
}

namespace rusd::stored {

// The mutable state of one ApplyEntries call.
struct ApplyState {
  ApplyState(rocksdb::DB* db, const Families& families)
      : batch(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true),
        view(db, &batch, families, &pending_history),
        families(families) {}

  // Declared before `view`, which reads it.
  BatchView::PendingRecords pending_history;
  rocksdb::WriteBatchWithIndex batch;
  BatchView view;

  // The batch's save points, with the pending history records they cover: use these,
  // not batch's own.
  void Clear() {
    batch.Clear();
    view.Reset();
    pending_history.clear();
    history_marks_.clear();
  }
  void SetSavePoint() {
    batch.SetSavePoint();
    history_marks_.push_back(pending_history.size());
  }
  rocksdb::Status RollbackToSavePoint() {
    rocksdb::Status s = batch.RollbackToSavePoint();
    if (s.ok() && !history_marks_.empty()) {
      pending_history.resize(history_marks_.back());
      history_marks_.pop_back();
    }
    return s;
  }
  rocksdb::Status PopSavePoint() {
    rocksdb::Status s = batch.PopSavePoint();
    if (s.ok() && !history_marks_.empty()) history_marks_.pop_back();
    return s;
  }

  // Writes a history record into the batch without indexing it (as PutRevlog), keeping a
  // copy for the rare read of history through `view` (store_view.h).
  rocksdb::Status PutHistory(std::string key, std::string value) {
    rocksdb::Status s = batch.GetWriteBatch()->Put(families.history, key, value);
    if (s.ok()) pending_history.emplace_back(std::move(key), std::move(value));
    return s;
  }

  // Writes a revlog record (`mark` then `body`) into the batch without indexing it.
  // Indexing costs two searches of the batch's skiplist per write (overwrite_key); revlog
  // keys are new revisions, never read back through `view` (which refuses to), and save
  // points and rollbacks work on the underlying batch, so they cover these writes too.
  // The value goes in as two parts: no joined copy of the key.
  rocksdb::Status PutRevlog(const format::RevisionBytes& revision, char mark,
                            std::string_view body) {
    const rocksdb::Slice key(revision.bytes, sizeof(revision.bytes));
    const rocksdb::Slice value[2] = {rocksdb::Slice(&mark, 1), rocksdb::Slice(body.data(), body.size())};
    return batch.GetWriteBatch()->Put(families.revlog, rocksdb::SliceParts(&key, 1),
                                      rocksdb::SliceParts(value, 2));
  }

  // The apply path's buffer for the record a read returns (reused: its capacity stays).
  std::string read_buffer;

  Families families;
  int64_t revision = 1;
  int64_t compacted = -1;
  bool compaction_scheduled = false;
  std::vector<mvccpb::Event>* events = nullptr;
  std::vector<LeaseChange>* lease_changes = nullptr;
  int64_t min_lease_ttl = 2;

 private:
  std::vector<size_t> history_marks_;  // pending_history's size at each save point
};

// Applies `cmd` at the state's current revision; returns the serialized etcd response
// (header filled with options' ids and `term`). A request error (etcd's InvalidArgument,
// OutOfRange...) may leave partial writes in the batch: the caller rolls back to the save
// point it set. Internal/DataLoss errors mean I/O or corruption.
Result<std::string> ApplyCommand(ApplyState& state, const internal::Command& cmd,
                                 const KvStoreOptions& options, uint64_t term);

// Sets the cluster/member ids and the term of a top-level response header (etcd fills
// these in its gRPC layer; nested txn responses carry only the revision).
void FillHeader(etcdserverpb::ResponseHeader* header, const KvStoreOptions& options,
                uint64_t term);

// Converts a RocksDB status into ours (Internal).
Status FromRocks(const rocksdb::Status& s, std::string_view what);

}  // namespace rusd::stored
