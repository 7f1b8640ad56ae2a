#include "stored/reply_sender.h"

#include <spdlog/spdlog.h>

#include "ipc/ring.h"
#include "stored/read_worker_pool.h"

namespace rusd::stored {

ReplySender::ReplySender(ipc::RingWriter& replies, ReadWorkerPool& workers,
                         const ReplySenderOptions& options)
    : replies_(replies), workers_(workers), options_(options) {}

void ReplySender::Send(ipc::MessageType type, uint64_t request_id, std::string payload) {
  if (payload.size() > options_.max_inline_reply_bytes) {
    workers_.SendReply(type, request_id, std::move(payload));
    return;
  }
  if (queue_.empty()) {
    Status st = replies_.TryWriteWithoutWake(type, request_id, payload);
    if (st.ok()) {
      wake_owed_ = true;
      return;
    }
    if (st.code() != StatusCode::kResourceExhausted) {
      // Not a full ring: a message the ring can never take. Let a worker try (and log).
      workers_.SendReply(type, request_id, std::move(payload));
      return;
    }
  }
  Queue(Pending{type, request_id, std::move(payload)});
}

void ReplySender::Queue(Pending pending) {
  queued_bytes_ += pending.payload.size();
  queue_.push_back(std::move(pending));
  while (queue_.size() > options_.max_queued_replies ||
         (queued_bytes_ > options_.max_queued_bytes && queue_.size() > 1)) {
    const Pending& oldest = queue_.front();
    ++dropped_;
    spdlog::warn(
        "store-replies overflow full ({} replies, {} bytes): dropping the reply for request "
        "{:016x}; the frontend will time it out (outcome unknown)",
        queue_.size(), queued_bytes_, oldest.request_id);
    queued_bytes_ -= oldest.payload.size();
    queue_.pop_front();
  }
}

void ReplySender::WakeFrontend() {
  if (!wake_owed_) return;
  wake_owed_ = false;
  replies_.WakeConsumer();
}

bool ReplySender::Drain() {
  bool empty = true;
  while (!queue_.empty()) {
    Pending& next = queue_.front();
    const size_t bytes = next.payload.size();
    Status st = replies_.TryWriteWithoutWake(next.type, next.request_id, next.payload);
    if (st.ok()) {
      wake_owed_ = true;
    } else {
      if (st.code() == StatusCode::kResourceExhausted) {
        empty = false;
        break;
      }
      workers_.SendReply(next.type, next.request_id, std::move(next.payload));
    }
    queued_bytes_ -= bytes;
    queue_.pop_front();
  }
  WakeFrontend();
  return empty;
}

}  // namespace rusd::stored
