#include "frontend/watch_byte_buffer.h"

#include <grpc/slice.h>
#include <grpcpp/support/slice.h>

#include <array>
#include <cstring>
#include <string>
#include <utility>

namespace rusd::frontend {
namespace {

grpc::Slice OwnedSlice(std::string&& bytes) {
  auto* owned = new std::string(std::move(bytes));  // freed by gRPC through the slice
  return grpc::Slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
}

}  // namespace

grpc::ByteBuffer ToByteBuffer(WatchSendQueue::Parts&& parts) {
  const size_t total = parts.prefix.size() + parts.body.size();
  if (total <= kJoinedBytes) {
    grpc_slice raw = grpc_slice_malloc(total);
    uint8_t* p = GRPC_SLICE_START_PTR(raw);
    std::memcpy(p, parts.prefix.data(), parts.prefix.size());
    std::memcpy(p + parts.prefix.size(), parts.body.data(), parts.body.size());
    grpc::Slice slice(raw, grpc::Slice::STEAL_REF);
    return grpc::ByteBuffer(&slice, 1);
  }
  if (parts.prefix.empty()) {
    grpc::Slice slice = OwnedSlice(std::move(parts.body));
    return grpc::ByteBuffer(&slice, 1);
  }
  std::array<grpc::Slice, 2> slices = {grpc::Slice(parts.prefix.data(), parts.prefix.size()),
                                       OwnedSlice(std::move(parts.body))};
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace rusd::frontend
