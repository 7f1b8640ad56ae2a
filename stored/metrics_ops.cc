#include "stored/metrics_ops.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

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
  metrics.Set(ipc::Metric::kKeysTotal, store.EstimatedKeyCount());
}

}  // namespace rusd::stored
