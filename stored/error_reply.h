// The payload of a kError frame (rusd.internal.ErrorReply), built in one place so the apply
// thread, the reads thread and the read workers encode errors identically.
#pragma once

#include <string>

#include "common/status.h"

namespace rusd::stored {

// `code` is a grpc::StatusCode value (rusd::StatusCode mirrors them); `message` is etcd's
// error text, which the frontend passes to the client unchanged.
std::string EncodeErrorReply(int code, const std::string& message);
inline std::string EncodeErrorReply(const Status& status) {
  return EncodeErrorReply(static_cast<int>(status.code()), status.message());
}

}  // namespace rusd::stored
