// A Watch stream's response (WatchSendQueue::Parts) as the gRPC message the reactor writes.
//
// Promises: the message's bytes are prefix + body. A response of at most kJoinedBytes is
// copied into one slice (one allocation, the parts joined there: cheaper than two slices
// for the many small event responses); a larger one keeps its body's bytes where they are
// (the slice owns the string, freed by gRPC) with the prefix, if any, as a second slice.
#pragma once

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>

#include "frontend/watch_send_queue.h"

namespace rusd::frontend {

inline constexpr size_t kJoinedBytes = 1024;

grpc::ByteBuffer ToByteBuffer(WatchSendQueue::Parts&& parts);

}  // namespace rusd::frontend
