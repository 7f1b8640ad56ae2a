// ReplySender: how the apply thread answers the frontend on the store-replies ring without
// ever blocking (the apply thread consumes the committed ring; blocking it on another ring
// could deadlock the node, and would stall every write).
//
// A reply goes out with RingWriter::TryWrite. If the ring is full, it waits in a bounded
// overflow queue that Drain() retries, oldest first, before the apply thread takes new work;
// while the queue is non-empty new replies join its back, so replies leave in apply order.
// When the queue is full the oldest reply is dropped and logged: its frontend request then
// times out with an unknown outcome, as etcd's do when a reply is lost. A reply too large to
// ever fit through TryWrite is handed to the read workers, which may wait for space.
//
// Wake-ups: Send and Drain publish replies without waking the frontend; WakeFrontend() then
// wakes it once (if it sleeps) for all of them, so an apply batch of N replies costs one
// doorbell check instead of N. The apply thread calls it after each batch's replies; Drain
// wakes by itself.
//
// Threads: the apply thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "ipc/message_type.h"

namespace rusd::ipc {
class RingWriter;
}

namespace rusd::stored {

class ReadWorkerPool;

struct ReplySenderOptions {
  size_t max_queued_replies = 4096;
  size_t max_queued_bytes = 64ull << 20;
  // Replies larger than this go to the read workers (chunked, blocking Write).
  size_t max_inline_reply_bytes = 512u << 10;
};

class ReplySender {
 public:
  ReplySender(ipc::RingWriter& replies, ReadWorkerPool& workers,
              const ReplySenderOptions& options = {});

  // Sends the reply now, or queues it. Never blocks. A reply written now reaches a sleeping
  // frontend only with the next WakeFrontend() (or Drain).
  void Send(ipc::MessageType type, uint64_t request_id, std::string payload);

  // Wakes the frontend if a reply went out since the last wake and it sleeps. Call after the
  // last Send of a batch.
  void WakeFrontend();

  // Retries queued replies, oldest first, until the ring is full again, then wakes the
  // frontend for every reply written so far. Returns true when nothing is left queued.
  bool Drain();

  bool has_backlog() const { return !queue_.empty(); }
  size_t queued() const { return queue_.size(); }
  uint64_t dropped() const { return dropped_; }

 private:
  struct Pending {
    ipc::MessageType type;
    uint64_t request_id;
    std::string payload;
  };

  void Queue(Pending pending);

  ipc::RingWriter& replies_;
  ReadWorkerPool& workers_;
  const ReplySenderOptions options_;
  std::deque<Pending> queue_;
  size_t queued_bytes_ = 0;
  uint64_t dropped_ = 0;
  bool wake_owed_ = false;  // a reply was written without waking the frontend
};

}  // namespace rusd::stored
