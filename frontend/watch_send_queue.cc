#include "frontend/watch_send_queue.h"

#include <algorithm>
#include <utility>

#include "frontend/watch_response.h"

namespace rusd::frontend {

void WatchSendQueue::PushRaw(std::string response) {
  mergeable_.clear();
  Push(Out{true, 0, std::string(), std::move(response)});
}

void WatchSendQueue::PushEvents(int64_t watch_id, std::string_view header, std::string&& events,
                                size_t max_body) {
  auto it = mergeable_.find(watch_id);
  if (it != mergeable_.end() && it->second >= front_seq_) {
    Out& o = queue_[static_cast<size_t>(it->second - front_seq_)];
    if (o.body.size() + events.size() <= std::min(max_body, kMaxMergedBytes)) {
      // The later header is right for the merged response: each response the hub sends
      // promises every event of its watcher up to its header, these events follow o's with
      // none of this watcher's in between (anything but an event response is a barrier),
      // and the later header is not below o's.
      queued_bytes_ = queued_bytes_ - o.header.size() + header.size() + events.size();
      o.bytes = o.bytes - o.header.size() + header.size() + events.size();
      o.header.assign(header);
      o.body.append(events);
      return;
    }
  }
  mergeable_[watch_id] = front_seq_ + queue_.size();
  Push(Out{false, watch_id, std::string(header), std::move(events)});
}

void WatchSendQueue::Push(Out o) {
  o.bytes = o.body.size() + o.header.size();
  queued_bytes_ += o.bytes;
  queue_.push_back(std::move(o));
}

std::string WatchSendQueue::PopForWrite() {
  Out o = std::move(queue_.front());
  queue_.pop_front();
  ++front_seq_;
  in_flight_bytes_ = o.bytes;
  return o.raw ? std::move(o.body) : EncodeEventsResponse(o.header, o.watch_id, o.body);
}

void WatchSendQueue::WriteDone() {
  queued_bytes_ -= in_flight_bytes_;
  in_flight_bytes_ = 0;
}

void WatchSendQueue::Clear() {
  front_seq_ += queue_.size();
  queue_.clear();
  mergeable_.clear();
  queued_bytes_ = in_flight_bytes_;
}

}  // namespace rusd::frontend
