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

}  // namespace rusd::frontend::etcd_errors
