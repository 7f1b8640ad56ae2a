// etcd's client-visible errors that the frontend itself produces, with etcd 3.5's gRPC codes
// and texts (api/v3rpc/rpctypes/error.go). Clients match on these strings: never reword.
#pragma once

#include "common/status.h"

namespace rusd::frontend::etcd_errors {

inline Status EmptyKey() { return Status::InvalidArgument("etcdserver: key is not provided"); }
inline Status KeyNotFound() { return Status::InvalidArgument("etcdserver: key not found"); }
inline Status ValueProvided() { return Status::InvalidArgument("etcdserver: value is provided"); }
inline Status LeaseProvided() { return Status::InvalidArgument("etcdserver: lease is provided"); }
inline Status TooManyOps() {
  return Status::InvalidArgument("etcdserver: too many operations in txn request");
}
inline Status DuplicateKey() {
  return Status::InvalidArgument("etcdserver: duplicate key given in txn request");
}
inline Status RequestTooLarge() {
  return Status::InvalidArgument("etcdserver: request is too large");
}
inline Status TooManyRequests() {
  return Status::ResourceExhausted("etcdserver: too many requests");
}
inline Status RequestTimedOut() { return Status::Unavailable("etcdserver: request timed out"); }
inline Status ServerStopped() { return Status::Unavailable("etcdserver: server stopped"); }

}  // namespace rusd::frontend::etcd_errors
