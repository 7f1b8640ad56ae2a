// etcd's KV gRPC service (Range, Put, DeleteRange, Txn, Compact) on top of the rings.
//
// Each method hands its request bytes to KvDispatcher (validation, then propose or read).
// The service uses gRPC's raw callback methods: requests are parsed once (for validation)
// and spliced into the Command / RangeRead bytes unchanged, and stored's serialized response
// is sent to the client as is — no parse and re-encode on the hot path.
//
// Thread safety: gRPC calls the methods on its threads; the object is immutable after
// construction. It must outlive the grpc::Server it is registered with.
#pragma once

#include <cstdint>
#include <memory>

#include "frontend/kv_dispatcher.h"

namespace grpc {
class Service;
}

namespace rusd::frontend {

class RingClient;

std::unique_ptr<grpc::Service> MakeKvService(RingClient& ring, const KvServiceOptions& options);

// Maintenance with only Status implemented (what `etcdctl endpoint status` needs); every
// other method answers Unimplemented. Status reads stored's current revision and term through
// a serializable read; raftIndex and raftAppliedIndex are not known to the frontend and are 0.
std::unique_ptr<grpc::Service> MakeMaintenanceService(RingClient& ring, uint64_t member_id,
                                                      uint64_t cluster_id);

}  // namespace rusd::frontend
