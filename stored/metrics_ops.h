// stored's share of etcd's metrics, written into the segment's metrics area:
// - CountMvccOps: etcd_mvcc_put/delete/txn_total from a committed entry's Command bytes,
//   read by skipping fields (no parse, no allocation) on the apply thread.
// - PublishStoreStats: etcd_mvcc_db_total_size_in_bytes and _in_use_in_bytes from RocksDB's
//   properties (the apply loop calls it about once a second: the properties cost
//   microseconds, not nothing).
//
// Differences from etcd (docs/metrics.md): etcd counts the puts and deletes inside a txn
// and counts a txn only when it holds more than one operation; rusd counts one per request
// type (Put, DeleteRange, Txn).
#pragma once

#include <span>
#include <string_view>

namespace rusd::ipc {
struct MetricsArea;
}
namespace mvccpb {
class Event;
}

namespace rusd::stored {

class KvStore;

void CountMvccOps(std::string_view command, ipc::MetricsArea& metrics);
void PublishStoreStats(const KvStore& store, ipc::MetricsArea& metrics);
// etcd_debugging_mvcc_keys_total, as etcd keeps it (a key counts from its creation to its
// deletion): StartKeyCount at start (counts the live keys once per node start; a restarted
// stored keeps the count in the segment), then CountKeyChanges on each applied batch's
// events.
void StartKeyCount(const KvStore& store, ipc::MetricsArea& metrics);
void CountKeyChanges(std::span<const mvccpb::Event> events, ipc::MetricsArea& metrics);

}  // namespace rusd::stored
