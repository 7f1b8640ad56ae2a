// etcd's client-visible errors that the frontend itself produces (the request checks' own
// texts live in stored/mvcc/kv_errors.h), with etcd 3.5's gRPC codes
// and texts (api/v3rpc/rpctypes/error.go). Clients match on these strings: never reword.
#pragma once

#include "common/status.h"

namespace rusd::frontend::etcd_errors {

inline Status RequestTooLarge() {
  return Status::InvalidArgument("etcdserver: request is too large");
}
inline Status TooManyRequests() {
  return Status::ResourceExhausted("etcdserver: too many requests");
}
inline Status RequestTimedOut() { return Status::Unavailable("etcdserver: request timed out"); }
inline Status ServerStopped() { return Status::Unavailable("etcdserver: server stopped"); }
// A learner serves only Maintenance.Status and serializable Range (etcd's v3rpc
// isRPCSupportedForLearner); everything else, every stream included, gets this.
inline Status NotSupportedForLearner() {
  return Status::Unavailable("etcdserver: rpc not supported for learner");
}

}  // namespace rusd::frontend::etcd_errors
