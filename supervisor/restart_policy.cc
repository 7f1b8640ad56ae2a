#include "supervisor/restart_policy.h"

#include <algorithm>

namespace rusd::supervisor {

std::optional<std::chrono::milliseconds> RestartPolicy::OnExit(Clock::time_point started,
                                                               Clock::time_point now) {
  while (!exits_.empty() && now - exits_.front() > options_.window) exits_.pop_front();
  exits_.push_back(now);
  if (static_cast<int>(exits_.size()) > options_.max_restarts) return std::nullopt;

  if (now - started >= options_.healthy_after) consecutive_ = 0;
  auto delay = options_.initial_backoff;
  for (int i = 0; i < consecutive_ && delay < options_.max_backoff; ++i) delay *= 2;
  ++consecutive_;
  return std::min(delay, options_.max_backoff);
}

}  // namespace rusd::supervisor
