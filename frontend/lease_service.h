// etcd's Lease gRPC service on the rings.
//
// - LeaseGrant / LeaseRevoke are Raft proposals (rusd.internal.Command lease_grant /
//   lease_revoke); a grant without an ID gets one from the request-id generator, as etcd
//   picks them (its reqIDGen, top bit cleared).
// - LeaseKeepAlive (a bidi stream carrying any number of leases) and LeaseTimeToLive are
//   linearizable reads on the reads ring (kLeaseKeepAliveBatch / kLeaseTimeToLive): a
//   ReadIndex first, so only a confirmed leader's stored renews (etcd 3.5). On a follower
//   they go to the leader's frontend instead (LeaseForwarder). Replies on one stream go
//   out in the order they are answered, one write at a time.
// - LeaseLeases is a serializable read (kLeaseLeases).
// Errors and texts are stored's / raftd's, unchanged.
//
// Thread safety: gRPC calls the methods on its threads; the service is immutable after
// construction and must outlive the grpc::Server.
#pragma once

#include <memory>

namespace grpc {
class Service;
}

namespace rusd::ipc {
struct MetricsArea;
}

namespace rusd::frontend {

class RingClient;
class LeaseForwarder;

// `ring` and `leader` (and `metrics`) must outlive the service. With `metrics`, the
// service counts LeaseKeepAlive streams itself (grpc_call_metrics.h: started, messages
// received and sent, handled), which is cheaper than gRPC's interceptor hooks on every
// message; the metrics interceptor must then skip that method
// ("etcdserverpb.Lease/LeaseKeepAlive").
std::unique_ptr<grpc::Service> MakeLeaseService(RingClient& ring, LeaseForwarder& leader,
                                                ipc::MetricsArea* metrics = nullptr);

}  // namespace rusd::frontend
