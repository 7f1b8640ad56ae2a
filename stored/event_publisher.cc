#include "stored/event_publisher.h"

#include <spdlog/spdlog.h>

#include "etcd/mvccpb/kv.pb.h"
#include "ipc/ring.h"
#include "rusd/internal.pb.h"

namespace rusd::stored {

EventPublisher::EventPublisher(ipc::RingWriter& events, size_t max_frame_bytes,
                               const std::atomic<uint64_t>* wanted)
    : events_(events), max_frame_bytes_(max_frame_bytes), wanted_(wanted) {}

void EventPublisher::Publish(std::span<mvccpb::Event> events) {
  if (events.empty()) return;
  if (wanted_ != nullptr && wanted_->load(std::memory_order_acquire) == 0) {
    // Nobody watches (event_publisher.h says why no watcher can miss these revisions).
    ++skipped_batches_;
    return;
  }
  if (gap_ && events_.FreeBytes() <= free_at_drop_) {
    ++dropped_frames_;  // nothing drained since the last drop: this would not fit either
    return;
  }
  size_t begin = 0;
  size_t bytes = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    // Cut before event i when the frame is full, but only at a revision boundary: a
    // watcher must see all events of one revision (one txn) together, as etcd sends them.
    const bool new_revision =
        i > begin && events[i].kv().mod_revision() != events[i - 1].kv().mod_revision();
    if (new_revision && bytes >= max_frame_bytes_) {
      SendFrame(events.subspan(begin, i - begin));
      begin = i;
      bytes = 0;
    }
    bytes += events[i].ByteSizeLong();
  }
  if (begin < events.size()) SendFrame(events.subspan(begin));
}

void EventPublisher::SendFrame(std::span<mvccpb::Event> events) {
  const int64_t first_revision = events.front().kv().mod_revision();
  const int64_t revision = events.back().kv().mod_revision();
  internal::EventBatch batch;
  batch.mutable_events()->Reserve(static_cast<int>(events.size()));
  for (auto& e : events) *batch.add_events() = std::move(e);
  batch.set_revision(revision);
  batch.set_after_gap(gap_);
  const std::string payload = batch.SerializeAsString();
  Status st = events_.TryWrite(ipc::MessageType::kEvents, static_cast<uint64_t>(revision),
                               payload);
  if (st.ok()) {
    gap_ = false;
    return;
  }
  if (!gap_) {
    spdlog::warn("events ring full: dropping events from revision {} on ({}); watchers will "
                 "catch up from history",
                 first_revision, st.ToString());
  }
  gap_ = true;
  free_at_drop_ = events_.FreeBytes();
  ++dropped_frames_;
}

}  // namespace rusd::stored
