#include "supervisor/restart_policy.h"

#include <gtest/gtest.h>

namespace rusd::supervisor {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = RestartPolicy::Clock;

TEST(RestartPolicy, BackoffDoublesFrom100msAndCapsAt5s) {
  RestartPolicy::Options o;
  o.max_restarts = 100;  // no crash-loop stop in this test
  RestartPolicy p(o);
  Clock::time_point t{};
  std::vector<long> delays;
  for (int i = 0; i < 9; ++i) {
    auto d = p.OnExit(t, t + milliseconds(10));
    ASSERT_TRUE(d.has_value());
    delays.push_back(d->count());
    t += seconds(10);  // far apart: the window does not matter here
  }
  // Each exit came 10ms after its start: consecutive crashes.
  EXPECT_EQ(delays, (std::vector<long>{100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000}));
}

TEST(RestartPolicy, HealthyRunResetsBackoff) {
  RestartPolicy p(RestartPolicy::Options{});
  Clock::time_point t{};
  EXPECT_EQ(p.OnExit(t, t + milliseconds(5))->count(), 100);
  EXPECT_EQ(p.OnExit(t, t + milliseconds(10))->count(), 200);
  // This run lasted a minute before it crashed: back to the first step.
  EXPECT_EQ(p.OnExit(t, t + seconds(60))->count(), 100);
}

TEST(RestartPolicy, SixthExitWithin30sIsACrashLoop) {
  RestartPolicy p(RestartPolicy::Options{});
  Clock::time_point t{};
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(p.OnExit(t, t + seconds(i)).has_value()) << i;
  }
  EXPECT_FALSE(p.OnExit(t, t + seconds(5)).has_value());
}

TEST(RestartPolicy, ExitsOutsideTheWindowAreForgotten) {
  RestartPolicy p(RestartPolicy::Options{});
  Clock::time_point t{};
  for (int i = 0; i < 20; ++i) {
    // One crash every 7 s: at most 5 in any 30 s window.
    EXPECT_TRUE(p.OnExit(t + seconds(7 * i), t + seconds(7 * i) + milliseconds(1)).has_value()) << i;
  }
}

}  // namespace
}  // namespace rusd::supervisor
