#include "raftd/leader_wait_queue.h"

#include <iterator>
#include <utility>

namespace rusd::raftd {

bool LeaderWaitQueue::Add(ipc::MessageType type, uint64_t id, std::string& payload,
                          Clock::time_point now) {
  // One request larger than the bound is still held when nothing else is: the bound is
  // against a flood, not against one legitimate (frontend-checked) request.
  if (!waiting_.empty() && bytes_ + payload.size() > options_.max_bytes) return false;
  bytes_ += payload.size();
  waiting_.push_back(Request{type, id, std::move(payload), now});
  return true;
}

std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeAll() {
  std::vector<Request> out(std::make_move_iterator(waiting_.begin()),
                           std::make_move_iterator(waiting_.end()));
  waiting_.clear();
  bytes_ = 0;
  return out;
}

std::vector<LeaderWaitQueue::Request> LeaderWaitQueue::TakeExpired(Clock::time_point now) {
  std::vector<Request> out;
  while (!waiting_.empty() && now - waiting_.front().arrived >= options_.give_up_after) {
    bytes_ -= waiting_.front().payload.size();
    out.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  return out;
}

}  // namespace rusd::raftd
