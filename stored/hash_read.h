// Serving Maintenance.HashKV and Maintenance.Hash in rusd-stored (kHashKvRead, kHashRead on
// the reads ring; payload = the etcd request). etcd answers both locally, without
// ReadIndex, so they skip the applied-index gate: the reads thread hands them to a read
// worker, which hashes one RocksDB snapshot (KvStore::HashKv / Hash, mvcc/kv_hash.h) while
// applies go on, and replies kResult (the etcd response) or kError.
#pragma once

#include <cstdint>
#include <string_view>

#include "ipc/message_type.h"

namespace rusd::stored {

class KvStore;
class ReadWorkerPool;

// `type` is kHashKvRead or kHashRead. Reads thread; never blocks (the work is queued).
void ServeHash(KvStore& store, ReadWorkerPool& workers, ipc::MessageType type,
               uint64_t request_id, std::string_view payload);

}  // namespace rusd::stored
