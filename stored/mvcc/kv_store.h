// KvStore: etcd's MVCC key-value semantics on RocksDB. The state machine that stored's
// apply thread feeds with committed Raft entries and its read workers query.
//
// What it promises:
// - Apply: the entries of one ApplyEntries call are applied in index order and written in
//   ONE RocksDB WriteBatch together with the new applied index, so the applied index is never
//   persisted ahead of (or behind) the data it covers. Entries at or below applied_index()
//   are skipped (raftd re-sends after restarts): nothing is applied twice.
// - Semantics are etcd 3.5's, byte for byte: revisions (one main revision per write request,
//   sub-revisions inside a txn), versions, create/mod revisions, Range options, Txn compares,
//   compaction, and etcd's error texts (see kv_errors.h).
// - The key index lives in RocksDB, not in memory: memory does not grow with the number of
//   keys (the apply path's record cache is bounded by bytes, record_cache_bytes).
// - Writes are not synced one by one; SyncWal() makes everything applied so far durable and
//   returns the index it covers (stored reports it to raftd as the durable applied index).
//
// Threads: ApplyEntries and SyncWal from one thread (the apply thread); Range, and the
// accessors, from any thread concurrently with it (reads use RocksDB snapshots).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "stored/mvcc/history_query.h"

namespace etcdserverpb {
class RangeRequest;
}
namespace mvccpb {
class Event;
}
namespace rusd::internal {
class Entry;
}

namespace rusd::stored {

struct KvStoreOptions {
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  // Budget for RocksDB's block cache and memtables, so RSS stays small and flat.
  uint64_t block_cache_bytes = 64ull << 20;
  int background_threads = 1;  // machines have two cores
  // The apply path's cache of current key records (record_cache.h), in bytes: a put reads
  // its key's record from it instead of RocksDB. Bounded; 0 disables it.
  uint64_t record_cache_bytes = 32ull << 20;
  // etcd's minimum lease TTL in seconds: ceil(1.5 x election timeout) (2 s by default). A
  // grant asking for less gets this.
  int64_t min_lease_ttl = 2;
};

// A change to the set of leases made by applied entries, for the process's in-memory
// lessor (expiry clock, keep-alives). Kinds: granted (id, ttl), revoked (id), checkpointed
// (id, remaining_ttl).
struct LeaseChange {
  enum class Kind { kGranted, kRevoked, kCheckpointed };
  Kind kind = Kind::kGranted;
  int64_t id = 0;
  int64_t ttl = 0;
  int64_t remaining_ttl = 0;
};

// One persisted lease, as Leases() lists them.
struct LeaseInfo {
  int64_t id = 0;
  int64_t ttl = 0;
  int64_t remaining_ttl = 0;
};

// The outcome of one applied entry that some frontend waits for.
struct ApplyReply {
  uint64_t request_id = 0;
  uint64_t origin_member_id = 0;
  bool ok = true;
  // ok: the serialized etcd response (PutResponse, DeleteRangeResponse, TxnResponse or
  // CompactionResponse, header filled). !ok: error_code (grpc code) and error_message.
  std::string response;
  int error_code = 0;
  std::string error_message;
};

struct ApplyOutput {
  std::vector<ApplyReply> replies;
  // Every applied event in revision order, each with prev_kv set when a previous version
  // existed (watch needs it).
  std::vector<mvccpb::Event> events;
  uint64_t applied_index = 0;  // after this call
  // Lease grants, revocations and checkpoints applied, in order.
  std::vector<LeaseChange> lease_changes;
};

class KvStore {
 public:
  // Opens (creating if absent) the store in `dir` (<data-dir>/member/store).
  static Result<std::unique_ptr<KvStore>> Open(const std::string& dir,
                                               const KvStoreOptions& options);
  virtual ~KvStore() = default;

  // Applies committed entries (contiguous, ascending). Entries <= applied_index() are
  // skipped. An entry whose request is invalid (e.g. compacting a future revision) yields an
  // error reply, not a failed call; a failed call (I/O) means nothing of the batch applied.
  virtual Result<ApplyOutput> ApplyEntries(std::span<const rusd::internal::Entry> entries) = 0;

  // Serves a Range at the store's current state. Returns the serialized RangeResponse
  // (header filled) or etcd's error (e.g. OutOfRange "etcdserver: mvcc: required revision
  // has been compacted", "etcdserver: mvcc: required revision is a future revision").
  virtual Result<std::string> Range(const etcdserverpb::RangeRequest& request) = 0;

  // Watch catch-up: the events of revisions [query.start_revision, C] on the query's range,
  // read from one snapshot whose current revision is C, bounded per chunk (history_query.h).
  // Any thread. Default (test fakes): Unimplemented.
  virtual Result<HistoryChunk> ReadHistory(const HistoryQuery& query) {
    (void)query;
    return Status::Unimplemented("rusd-stored: watch history is not supported");
  }

  // etcd's Maintenance.HashKV at `revision` (0 = the current one), from one snapshot
  // (kv_hash.h says what is hashed): the serialized HashKVResponse (header revision = the
  // current revision; compact_revision -1 before any compaction), or etcd's OutOfRange
  // "etcdserver: mvcc: required revision has been compacted" (0 < revision <= compacted) /
  // "... is a future revision" (revision > current). Any thread. Default: Unimplemented.
  virtual Result<std::string> HashKv(int64_t revision) {
    (void)revision;
    return Status::Unimplemented("rusd-stored: hash is not supported");
  }
  // Maintenance.Hash: the serialized HashResponse, rusd's hash of its whole applied state
  // (NOT etcd's bbolt file hash; equal on members holding the same state). Any thread.
  virtual Result<std::string> Hash() {
    return Status::Unimplemented("rusd-stored: hash is not supported");
  }

  // Makes all applied state durable; returns the applied index it covers.
  virtual Result<uint64_t> SyncWal() = 0;

  // Writes a consistent, durable copy of the store (a RocksDB checkpoint: SST files hard
  // linked, memtables flushed first) to `dir`, which must not exist; returns the applied
  // index it holds. Apply thread only (no entry is applied meanwhile). Default (test
  // fakes): Unimplemented.
  virtual Result<uint64_t> CreateCheckpoint(const std::string& dir) {
    (void)dir;
    return Status::Unimplemented("rusd-stored: checkpoints are not supported");
  }

  virtual uint64_t applied_index() const = 0;
  virtual int64_t current_revision() const = 0;
  virtual int64_t compact_revision() const = 0;
  virtual uint64_t raft_term() const = 0;  // term of the last applied entry
  // On-disk size (for Maintenance.Status dbSize later).
  virtual uint64_t ApproximateSizeBytes() const = 0;
  // For metrics: RocksDB's estimates of the live keys and of the bytes of live data, and
  // the exact number of live keys (a scan of the key set: ~0.1 s per million keys).
  virtual uint64_t EstimatedKeyCount() const { return 0; }
  virtual uint64_t CountLiveKeys() const { return EstimatedKeyCount(); }
  virtual uint64_t EstimatedLiveDataBytes() const { return 0; }

  // Every persisted lease (stored rebuilds its lessor from them at start). Any thread.
  virtual Result<std::vector<LeaseInfo>> Leases() { return std::vector<LeaseInfo>(); }
  // The keys attached to lease `id`, in key order, at the current state. Any thread.
  virtual Result<std::vector<std::string>> LeaseKeys(int64_t /*id*/) {
    return std::vector<std::string>();
  }
};

}  // namespace rusd::stored
