#include "frontend/watch_send_queue.h"

#include <algorithm>
#include <utility>

#include "frontend/watch_response.h"

namespace rusd::frontend {

void WatchSendQueue::PushRaw(std::string response) {
  mergeable_.clear();
  Out o;
  o.body = std::move(response);
  Push(std::move(o));
}

void WatchSendQueue::PushEvents(int64_t watch_id, std::string_view header, std::string&& events,
                                size_t max_body) {
  if (header.size() > kInlineHeaderBytes) {  // never for a real ResponseHeader
    mergeable_.erase(watch_id);
    Out o;
    o.body = EncodeEventsResponse(header, watch_id, events);
    Push(std::move(o));
    return;
  }
  auto it = mergeable_.find(watch_id);
  if (it != mergeable_.end() && it->second >= front_seq_) {
    Out& o = queue_[static_cast<size_t>(it->second - front_seq_)];
    if (o.body.size() + events.size() <= std::min(max_body, kMaxMergedBytes)) {
      // The later header is right for the merged response: each response the hub sends
      // promises every event of its watcher up to its header, these events follow o's with
      // none of this watcher's in between (anything but an event response is a barrier),
      // and the later header is not below o's.
      queued_bytes_ = queued_bytes_ - o.header_size + header.size() + events.size();
      o.bytes = o.bytes - o.header_size + header.size() + events.size();
      o.set_header(header);
      o.body.append(events);
      return;
    }
  }
  mergeable_[watch_id] = front_seq_ + queue_.size();
  Out o;
  o.raw = false;
  o.watch_id = watch_id;
  o.set_header(header);
  o.body = std::move(events);
  Push(std::move(o));
}

void WatchSendQueue::Push(Out o) {
  o.bytes = o.body.size() + o.header_size;
  queued_bytes_ += o.bytes;
  queue_.push_back(std::move(o));
}

WatchSendQueue::Parts WatchSendQueue::PopForWriteParts() {
  Out& o = queue_.front();
  Parts parts;
  if (!o.raw) parts.prefix = EncodeEventsResponsePrefix(o.header_view(), o.watch_id);
  parts.body = std::move(o.body);
  in_flight_bytes_ = o.bytes;
  queue_.pop_front();
  ++front_seq_;
  return parts;
}

std::string WatchSendQueue::PopForWrite() {
  Parts parts = PopForWriteParts();
  parts.prefix.append(parts.body);
  return std::move(parts.prefix);
}

std::string WatchSendQueue::PopPrefixedForWrite(size_t max_bytes) {
  constexpr size_t kPrefix = 5;
  std::string out;
  in_flight_bytes_ = 0;
  while (!queue_.empty()) {
    Out& o = queue_.front();
    const std::string prefix =
        o.raw ? std::string() : EncodeEventsResponsePrefix(o.header_view(), o.watch_id);
    const size_t length = prefix.size() + o.body.size();
    if (!out.empty() && out.size() + kPrefix + length > max_bytes) break;
    const auto len = static_cast<uint32_t>(length);
    const char framing[kPrefix] = {0, static_cast<char>(len >> 24), static_cast<char>(len >> 16),
                                   static_cast<char>(len >> 8), static_cast<char>(len)};
    out.append(framing, kPrefix);
    out.append(prefix);
    out.append(o.body);
    in_flight_bytes_ += o.bytes;
    queue_.pop_front();
    ++front_seq_;
  }
  return out;
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
