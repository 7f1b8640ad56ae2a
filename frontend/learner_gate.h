// etcd's rule for a learner (a non-voting member catching up): its gRPC interceptors refuse
// every unary RPC but Maintenance.Status and serializable KV.Range, and every stream, with
// Unavailable "etcdserver: rpc not supported for learner" (etcd 3.4/3.5 v3rpc
// interceptor.go, isRPCSupportedForLearner). rusd checks at the top of each handler instead
// of in an interceptor, because a gRPC C++ server interceptor cannot stop the handler from
// running. KV (and Lock/Election, which run on it) check in KvDispatcher::Submit.
//
// Whether this member is a learner follows the member list raftd last reported
// (RingClient::is_learner). Any thread.
#pragma once

#include <grpcpp/support/server_callback.h>

#include "frontend/etcd_errors.h"
#include "frontend/grpc_status.h"
#include "frontend/ring_client.h"

namespace rusd::frontend {

// Finishes `reactor` with etcd's learner error and returns true when this member is a
// learner; returns false (and leaves the call alone) otherwise.
inline bool RefusedOnLearner(const RingClient& ring, grpc::ServerUnaryReactor* reactor) {
  if (!ring.is_learner()) return false;
  reactor->Finish(ToGrpcStatus(etcd_errors::NotSupportedForLearner()));
  return true;
}

// A bidi stream finished at once with etcd's learner error.
template <typename Request, typename Response>
class LearnerRefusedStream final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  LearnerRefusedStream() { this->Finish(ToGrpcStatus(etcd_errors::NotSupportedForLearner())); }
  void OnDone() override { delete this; }
};

}  // namespace rusd::frontend
