// The one place where a rusd::Status becomes a grpc::Status (style: "a gRPC status is made
// in exactly one place"). rusd's StatusCode values are gRPC's on purpose, so the code maps
// one to one and the message (etcd's text, e.g. "etcdserver: request timed out") travels
// unchanged: clientv3 recognises etcd errors by exactly these strings.
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace rusd::frontend {

inline grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), status.message());
}

// A status carried as (grpc code, message) on a ring (rusd.internal.ErrorReply). Codes out
// of gRPC's range become kUnknown rather than an invalid grpc::StatusCode.
inline Status StatusFromWire(int code, std::string message) {
  if (code <= 0 || code > static_cast<int>(StatusCode::kUnauthenticated)) {
    return Status(StatusCode::kUnknown, std::move(message));
  }
  return Status(static_cast<StatusCode>(code), std::move(message));
}

}  // namespace rusd::frontend
