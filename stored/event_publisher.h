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
// With `wanted` (the segment's kWatchEventsWanted), batches are not built at all while it
// reads 0: the frontend has had no Watch stream yet. That saves every put the building and
// serializing of its events, and the frontend's events thread a wake-up. No watcher can miss
// a skipped revision: the frontend sets the flag before a stream opens, so before the watch
// hub's probe reads stored's current revision R (under the store's publish lock); a batch
// with revisions above R took that lock after the probe, and Publish reads the flag after
// ApplyEntries released it, so it sees 1. Revisions at or below R the hub never needs live
// (a watcher starting there reads history). The flag never goes back to 0 while that
// frontend lives.
//
// Threads: the apply thread only.
#pragma once

#include <atomic>
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
  // `wanted` may be null: then every batch is published.
  explicit EventPublisher(ipc::RingWriter& events, size_t max_frame_bytes = 256u << 10,
                          const std::atomic<uint64_t>* wanted = nullptr);

  // Publishes `events` (in revision order, as KvStore::ApplyEntries returns them); moves
  // them into the frames, leaving `events` unspecified.
  void Publish(std::span<mvccpb::Event> events);

  // True while events were dropped and no later frame has announced it yet.
  bool gap() const { return gap_; }
  uint64_t dropped_frames() const { return dropped_frames_; }
  // Batches not built because no watcher wanted them.
  uint64_t skipped_batches() const { return skipped_batches_; }

 private:
  void SendFrame(std::span<mvccpb::Event> events);

  ipc::RingWriter& events_;
  const size_t max_frame_bytes_;
  const std::atomic<uint64_t>* const wanted_;
  uint64_t skipped_batches_ = 0;
  bool gap_ = false;
  uint64_t dropped_frames_ = 0;
  // While gap_: the ring's free bytes when the last frame was dropped. Until the consumer
  // frees more, a new frame is dropped without being built (the watchers must catch up
  // from history anyway; with no frontend draining the ring this saves every put the cost
  // of serializing its events).
  uint64_t free_at_drop_ = 0;
};

}  // namespace rusd::stored
