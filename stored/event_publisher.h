// EventPublisher: puts the events of each applied batch on the events ring for the
// frontend's watchers, without ever blocking the apply thread.
//
// Events travel as rusd.internal.EventBatch frames (frame id = the batch's last revision),
// at most ~max_frame_bytes each, never splitting one revision across frames. A frame that
// does not fit the ring now is dropped and the publisher remembers the gap: the next frame it
// delivers carries after_gap = true, which tells the frontend that its watchers must catch
// up from history (docs/architecture.md, "Reads, watches and leases"). While the consumer
// frees no space after a drop, later frames are dropped without being serialized.
//
// Threads: the apply thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace mvccpb {
class Event;
}
namespace rusd::ipc {
class RingWriter;
}

namespace rusd::stored {

class EventPublisher {
 public:
  explicit EventPublisher(ipc::RingWriter& events, size_t max_frame_bytes = 256u << 10);

  // Publishes `events` (in revision order, as KvStore::ApplyEntries returns them); moves
  // them into the frames, leaving `events` unspecified.
  void Publish(std::span<mvccpb::Event> events);

  // True while events were dropped and no later frame has announced it yet.
  bool gap() const { return gap_; }
  uint64_t dropped_frames() const { return dropped_frames_; }

 private:
  void SendFrame(std::span<mvccpb::Event> events);

  ipc::RingWriter& events_;
  const size_t max_frame_bytes_;
  bool gap_ = false;
  uint64_t dropped_frames_ = 0;
  // While gap_: the ring's free bytes when the last frame was dropped. Until the consumer
  // frees more, a new frame is dropped without being built (the watchers must catch up
  // from history anyway; with no frontend draining the ring this saves every put the cost
  // of serializing its events).
  uint64_t free_at_drop_ = 0;
};

}  // namespace rusd::stored
