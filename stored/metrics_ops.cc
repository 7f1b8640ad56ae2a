#include "stored/metrics_ops.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "etcd/mvccpb/kv.pb.h"
#include "ipc/metrics_area.h"
#include "stored/mvcc/kv_store.h"

namespace rusd::stored {

void CountMvccOps(std::string_view command, ipc::MetricsArea& metrics) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(command.data()),
                                            static_cast<int>(command.size()));
  // rusd.internal.Command: oneof op { put = 10; delete_range = 11; txn = 12; compaction = 13 }.
  while (uint32_t tag = in.ReadTag()) {
    switch (WireFormatLite::GetTagFieldNumber(tag)) {
      case 10: metrics.Add(ipc::Metric::kMvccPut); return;
      case 11: metrics.Add(ipc::Metric::kMvccDelete); return;
      case 12: metrics.Add(ipc::Metric::kMvccTxn); return;
      default:
        if (!WireFormatLite::SkipField(&in, tag)) return;
    }
  }
}

void PublishStoreStats(const KvStore& store, ipc::MetricsArea& metrics) {
  metrics.Set(ipc::Metric::kDbTotalSize, store.ApproximateSizeBytes());
  metrics.Set(ipc::Metric::kDbInUseSize, store.EstimatedLiveDataBytes());
}

void StartKeyCount(const KvStore& store, ipc::MetricsArea& metrics) {
  // A restarted stored finds the count its predecessor kept: it matches the store (a killed
  // process loses no RocksDB write, and entries applied before are not applied again).
  if (metrics.Get(ipc::Metric::kKeysCounted) != 0) return;
  metrics.Set(ipc::Metric::kKeysTotal, store.CountLiveKeys());
  metrics.Set(ipc::Metric::kKeysCounted, 1);
}

void CountKeyChanges(std::span<const mvccpb::Event> events, ipc::MetricsArea& metrics) {
  int64_t delta = 0;
  for (const mvccpb::Event& e : events) {
    if (e.type() == mvccpb::Event::PUT) {
      if (e.kv().version() == 1) ++delta;  // created (a new generation of the key)
    } else if (e.type() == mvccpb::Event::DELETE) {
      --delta;
    }
  }
  if (delta == 0) return;
  // One writer (the apply thread): load + store is enough; never below zero.
  const uint64_t keys = metrics.Get(ipc::Metric::kKeysTotal);
  const bool below_zero = delta < 0 && static_cast<uint64_t>(-delta) > keys;
  metrics.Set(ipc::Metric::kKeysTotal, below_zero ? 0 : keys + static_cast<uint64_t>(delta));
}

}  // namespace rusd::stored
