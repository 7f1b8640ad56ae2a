// When to restart a component that exited, and when to give up.
//
// Exponential backoff: the first restart after a crash waits `initial_backoff`, each
// further consecutive crash doubles the wait up to `max_backoff`; a component that ran for
// at least `healthy_after` before exiting starts again from `initial_backoff`.
// Crash loop: if more than `max_restarts` exits fall within `window`, the node stops (a
// component that cannot stay up would otherwise flap forever while clients see errors).
//
// Pure bookkeeping over the time points it is given (tests drive it with fake times);
// owned by the supervisor's main thread, one instance per component.
#pragma once

#include <chrono>
#include <deque>
#include <optional>

namespace rusd::supervisor {

class RestartPolicy {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{5000};
    int max_restarts = 5;
    std::chrono::milliseconds window{30000};
    std::chrono::milliseconds healthy_after{10000};
  };

  explicit RestartPolicy(Options options) : options_(options) {}

  // The component started at `started` exited at `now`. Returns how long to wait before
  // starting it again, or nullopt when this exit makes it a crash loop.
  std::optional<std::chrono::milliseconds> OnExit(Clock::time_point started, Clock::time_point now);

  const Options& options() const { return options_; }

 private:
  Options options_;
  int consecutive_ = 0;
  std::deque<Clock::time_point> exits_;  // within the last `window`
};

}  // namespace rusd::supervisor
