#include "raftd/leader_wait_queue.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace rusd::raftd {

bool LeaderWaitQueue::Add(ipc::MessageType type, uint64_t id, std::string& payload,
                          uint64_t frontend_epoch, Clock::time_point give_up_at) {
  const size_t cost = payload.size() + kEntryOverhead;
  // One request larger than the bound is still held when nothing else is: the bound is
  // against a flood, not against one legitimate (frontend-checked) request.
  if (!waiting_.empty() && bytes_ + cost > options_.max_bytes) return false;
  bytes_ += cost;
  waiting_.push_back(Request{type, id, std::move(payload), frontend_epoch, give_up_at});
  return true;
}

std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeAll() {
  std::vector<Request> out(std::make_move_iterator(waiting_.begin()),
                           std::make_move_iterator(waiting_.end()));
  waiting_.clear();
  bytes_ = 0;
  return out;
}

template <typename Pred>
std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeIf(Pred pred) {
  std::vector<Request> out;
  // Called every tick: without a match, nothing is moved.
  if (std::none_of(waiting_.begin(), waiting_.end(), pred)) return out;
  std::deque<Request> kept;
  for (Request& r : waiting_) {
    if (pred(r)) {
      bytes_ -= r.payload.size() + kEntryOverhead;
      out.push_back(std::move(r));
    } else {
      kept.push_back(std::move(r));
    }
  }
  waiting_.swap(kept);
  return out;
}

std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeExpired(Clock::time_point now) {
  return TakeIf([now](const Request& r) { return r.give_up_at <= now; });
}

std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeOrphaned(uint64_t live_epoch) {
  return TakeIf([live_epoch](const Request& r) { return r.frontend_epoch < live_epoch; });
}

}  // namespace rusd::raftd
