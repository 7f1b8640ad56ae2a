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
#include "stored/mvcc/record_cache.h"
#include "stored/mvcc/storage_format.h"
#include "stored/mvcc/store_view.h"

namespace etcdserverpb {
class ResponseHeader;
}
namespace rusd::internal {
class Command;
}

namespace rusd::stored {

// The mutable state of one ApplyEntries call. `records` (owned by the store, outlives
// this) caches current kv records as this state's view sees them (DB + batch): every kv
// write goes through PutKv/DeleteKv, a rollback forgets what the request touched, and the
// caller clears it if the batch is not written (kv_store.cc ApplyEntries).
struct ApplyState {
  ApplyState(rocksdb::DB* db, const Families& families, RecordCache* records)
      : batch(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true),
        view(db, &batch, families, &history_generation),
        records(records),
        families(families) {}

  // Changes whenever the batch's history records do (a write or a rollback); declared
  // before `view`, which reads it.
  uint64_t history_generation = 0;
  rocksdb::WriteBatchWithIndex batch;
  BatchView view;

  RecordCache* records;

  void Clear() {
    batch.Clear();
    view.Reset();
    ++history_generation;
    records->ForgetLog();
  }
  // Save points nest only one deep here (one per request): the cache's log of written
  // records starts empty at each and is forgotten when the request's writes become final.
  void SetSavePoint() {
    batch.SetSavePoint();
    records->ForgetLog();
  }
  rocksdb::Status RollbackToSavePoint() {
    ++history_generation;
    // The request's kv writes leave the cache (a miss reads the rolled-back batch + DB).
    records->EraseSince(0);
    return batch.RollbackToSavePoint();
  }
  rocksdb::Status PopSavePoint() {
    records->ForgetLog();
    return batch.PopSavePoint();
  }

  // Writes a history record into the batch without indexing it (as PutRevlog). The rare
  // read of history through `view` indexes the batch's history records on demand
  // (store_view.h); the batch keeps its own copy, so key and value can be reused buffers.
  rocksdb::Status PutHistory(const rocksdb::Slice& key, const rocksdb::Slice& value) {
    ++history_generation;
    return batch.GetWriteBatch()->Put(families.history, key, value);
  }

  // The only writers of the kv family: the view must know every key written (store_view.h)
  // and the record cache must follow them.
  rocksdb::Status PutKv(const rocksdb::Slice& key, const rocksdb::Slice& value) {
    view.NoteKvWrite(key);
    // Inserts only while there is room: a put's GetCurrent has just cached its key if it
    // existed, and when full a new key enters on its next read (record_cache.h Offer).
    records->Offer(std::string_view(key.data(), key.size()), std::string_view(value.data(), value.size()));
    return batch.Put(families.kv, key, value);
  }
  rocksdb::Status DeleteKv(const rocksdb::Slice& key) {
    view.NoteKvWrite(key);
    records->Erase(std::string_view(key.data(), key.size()));
    return batch.Delete(families.kv, key);
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

  // The apply path's buffers (reused: their capacity stays): the record a read returns,
  // a history record's key and value.
  std::string read_buffer;
  std::string history_key;
  std::string history_value;

  Families families;
  int64_t revision = 1;
  int64_t compacted = -1;
  bool compaction_scheduled = false;
  std::vector<mvccpb::Event>* events = nullptr;
  std::vector<LeaseChange>* lease_changes = nullptr;
  int64_t min_lease_ttl = 2;
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
