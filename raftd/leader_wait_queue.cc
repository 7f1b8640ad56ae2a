#include "raftd/leader_wait_queue.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace rusd::raftd {

bool LeaderWaitQueue::Add(ipc::MessageType type, uint64_t id, std::string& payload,
                          uint64_t frontend_epoch, Clock::time_point give_up_at,
                          Clock::time_point deadline) {
  const size_t cost = payload.size() + kEntryOverhead;
  // One request larger than the bound is still held when nothing else is: the bound is
  // against a flood, not against one legitimate (frontend-checked) request.
  if (!waiting_.empty() && bytes_ + cost > options_.max_bytes) return false;
  bytes_ += cost;
  earliest_give_up_ = std::min(earliest_give_up_, give_up_at);
  lowest_epoch_ = std::min(lowest_epoch_, frontend_epoch);
  waiting_.push_back(
      Request{type, id, std::move(payload), frontend_epoch, give_up_at, deadline});
  return true;
}

std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeAll() {
  std::vector<Request> out(std::make_move_iterator(waiting_.begin()),
                           std::make_move_iterator(waiting_.end()));
  waiting_.clear();
  bytes_ = 0;
  earliest_give_up_ = Clock::time_point::max();
  lowest_epoch_ = UINT64_MAX;
  return out;
}

template <typename Pred>
std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeIf(Pred pred) {
  // Only called when the bounds say at least one request matches.
  ++scans_;
  std::vector<Request> out;
  std::deque<Request> kept;
  earliest_give_up_ = Clock::time_point::max();
  lowest_epoch_ = UINT64_MAX;
  for (Request& r : waiting_) {
    if (pred(r)) {
      bytes_ -= r.payload.size() + kEntryOverhead;
      out.push_back(std::move(r));
    } else {
      earliest_give_up_ = std::min(earliest_give_up_, r.give_up_at);
      lowest_epoch_ = std::min(lowest_epoch_, r.frontend_epoch);
      kept.push_back(std::move(r));
    }
  }
  waiting_.swap(kept);
  return out;
}

std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeExpired(Clock::time_point now) {
  if (earliest_give_up_ > now) return {};  // nothing is due: no scan
  return TakeIf([now](const Request& r) { return r.give_up_at <= now; });
}

std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeOrphaned(uint64_t live_epoch) {
  if (lowest_epoch_ >= live_epoch) return {};  // no request of an older epoch: no scan
  return TakeIf([live_epoch](const Request& r) { return r.frontend_epoch < live_epoch; });
}

}  // namespace rusd::raftd
