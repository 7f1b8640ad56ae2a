// A single-producer single-consumer ring of framed, variable-length records in the
// shared-memory segment, and the two ends that use it.
//
// Guarantees:
// - Lock-free: head (producer) and tail (consumer) live on separate cache lines and are
//   published with release / read with acquire. Only whole frames are ever published, so
//   head and tail always sit on frame boundaries: a producer or consumer killed at any
//   instruction leaves a ring that its restarted successor continues without a handshake.
// - A message larger than what fits in one frame travels as several chunk frames with
//   first/last flags; the reader reassembles by (sender epoch, id). Chunks of different
//   messages may interleave. Partial messages of an older sender epoch are dropped.
// - At-most-once at the ring level: a consumer killed between acting on a message and
//   advancing its tail repeats or loses it. Every protocol above deduplicates by frame id.
// - Wake-ups: a consumer that finds all its rings empty spins briefly, then sleeps on its
//   doorbell's futex; a producer issues the futex wake only when the doorbell says its
//   consumer sleeps.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "ipc/message_type.h"
#include "ipc/segment.h"

namespace rusd::ipc {

// One reassembled message as the consumer sees it.
struct Message {
  MessageType type = MessageType::kInvalid;
  uint64_t id = 0;
  uint64_t sender_epoch = 0;
  std::string payload;
};

// The producer end. Thread-safe: a process-local mutex is held for one frame at a time,
// so many threads may write; chunks of different messages may interleave on the ring.
class RingWriter {
 public:
  RingWriter(Segment& segment, RingId ring, uint64_t sender_epoch);

  // Writes one message if the whole of it fits in the free space now; never blocks.
  // Returns ResourceExhausted when the ring is too full (the caller keeps it and retries
  // later, or fails the request). Used by raftd, which must never block on a ring.
  Status TryWrite(MessageType type, uint64_t id, std::string_view payload);

  // Writes one message of any size, in chunks, waiting for space as the consumer drains
  // (bounded polling, not a futex). Fails with DeadlineExceeded if `timeout` passes first.
  Status Write(MessageType type, uint64_t id, std::string_view payload,
               std::chrono::milliseconds timeout);

 private:
  Segment& segment_;
  Ring& ring_;
  DoorbellId doorbell_;
  uint64_t epoch_;
  std::mutex mu_;
};

// The consumer end. Not thread-safe: owned by the one thread that consumes the ring.
class RingReader {
 public:
  RingReader(Segment& segment, RingId ring);

  // Returns the next complete message, or nullopt if none is complete yet.
  std::optional<Message> TryRead();

  DoorbellId doorbell() const { return doorbell_; }

 private:
  Segment& segment_;
  Ring& ring_;
  DoorbellId doorbell_;
  std::unordered_map<uint64_t, Message> partial_;  // by id, while chunks arrive
};

// Blocks the calling consumer thread until one of `readers` may have a message, or
// `timeout` passes. All readers must share one doorbell. Spins briefly first, then sleeps
// on the futex. Spurious returns are allowed; callers loop over TryRead.
void WaitForMessages(Segment& segment, std::span<RingReader* const> readers,
                     std::chrono::milliseconds timeout);

}  // namespace rusd::ipc
