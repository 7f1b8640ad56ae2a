#include "raftd/read_index_waiters.h"

namespace rusd::raftd {

void ReadIndexWaiters::Add(uint64_t request_id, Clock::time_point now) {
  waiting_.try_emplace(request_id, Waiting{now, now});
}

bool ReadIndexWaiters::Answer(uint64_t request_id) { return waiting_.erase(request_id) != 0; }

std::vector<uint64_t> ReadIndexWaiters::TakeAll() {
  std::vector<uint64_t> ids;
  ids.reserve(waiting_.size());
  for (const auto& [id, w] : waiting_) ids.push_back(id);
  waiting_.clear();
  return ids;
}

ReadIndexWaiters::Due ReadIndexWaiters::Poll(Clock::time_point now) {
  Due due;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (now - it->second.first_asked >= options_.give_up_after) {
      due.expired.push_back(it->first);
      it = waiting_.erase(it);
      continue;
    }
    if (now - it->second.last_asked >= options_.retry_after) {
      due.retry.push_back(it->first);
      it->second.last_asked = now;
    }
    ++it;
  }
  return due;
}

}  // namespace rusd::raftd
