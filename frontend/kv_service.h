// etcd's KV gRPC service (Range, Put, DeleteRange, Txn, Compact) on top of the rings.
//
// Each method validates as etcd's API layer does (request_validation.h), then:
// - Put, DeleteRange, Txn, Compact: a kPropose of rusd.internal.Command{request_id,
//   origin_member_id, op}; a command over --max-request-bytes fails with InvalidArgument
//   "etcdserver: request is too large" (etcd checks the marshalled raft request the same way).
//   A read-only Txn also goes through Raft here (etcd 3.5 serves it locally as a read): the
//   result is the same, since a txn without writes does not advance the revision.
// - Range: a linearizable or serializable read through RingClient::Read.
// The services use gRPC's raw callback methods: requests are parsed once (for validation)
// and spliced into the Command / RangeRead bytes unchanged, and stored's serialized response
// is sent to the client as is — no parse and re-encode on the hot path.
//
// Thread safety: gRPC calls the methods on its threads; the object is immutable after
// construction. It must outlive the grpc::Server it is registered with.
#pragma once

#include <cstdint>
#include <memory>

namespace grpc {
class Service;
}

namespace rusd::frontend {

class RingClient;

struct KvServiceOptions {
  uint64_t member_id = 0;
  uint64_t max_request_bytes = 1572864;
  uint32_t max_txn_ops = 128;
};

std::unique_ptr<grpc::Service> MakeKvService(RingClient& ring, const KvServiceOptions& options);

// Maintenance with only Status implemented (what `etcdctl endpoint status` needs); every
// other method answers Unimplemented. Status reads stored's current revision and term through
// a serializable read; raftIndex and raftAppliedIndex are not known to the frontend and are 0.
std::unique_ptr<grpc::Service> MakeMaintenanceService(RingClient& ring, uint64_t member_id,
                                                      uint64_t cluster_id);

}  // namespace rusd::frontend
