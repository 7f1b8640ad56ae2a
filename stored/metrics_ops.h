// stored's share of etcd's metrics, written into the segment's metrics area:
// - CountMvccOps: etcd_mvcc_put/delete/txn_total from a committed entry's Command bytes,
//   read by skipping fields (no parse, no allocation) on the apply thread.
// - PublishStoreStats: etcd_mvcc_db_total_size_in_bytes, _in_use_in_bytes and
//   etcd_debugging_mvcc_keys_total from RocksDB's properties (the apply loop calls it about
//   once a second: the properties cost microseconds, not nothing).
//
// Differences from etcd (docs/metrics.md): etcd counts the puts and deletes inside a txn
// and counts a txn only when it holds more than one operation; rusd counts one per request
// type (Put, DeleteRange, Txn).
#pragma once

#include <string_view>

namespace rusd::ipc {
struct MetricsArea;
}

namespace rusd::stored {

class KvStore;

void CountMvccOps(std::string_view command, ipc::MetricsArea& metrics);
void PublishStoreStats(const KvStore& store, ipc::MetricsArea& metrics);

}  // namespace rusd::stored
