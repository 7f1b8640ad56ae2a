#include "raftd/heartbeat_delay_detector.h"

#include <gtest/gtest.h>

namespace rusd::raftd {
namespace {

using namespace std::chrono_literals;
using Clock = HeartbeatDelayDetector::Clock;

TEST(HeartbeatDelayDetector, ALateHeartbeatIsReportedPerPeerUntilReset) {
  HeartbeatDelayDetector d(200ms);  // 2 heartbeat intervals of 100 ms
  const Clock::time_point t0 = Clock::now();
  EXPECT_EQ(d.Observe(2, t0), Clock::duration::zero()) << "the first one has no predecessor";
  EXPECT_EQ(d.Observe(3, t0), Clock::duration::zero());
  EXPECT_EQ(d.Observe(2, t0 + 100ms), Clock::duration::zero());
  EXPECT_EQ(d.Observe(2, t0 + 300ms), Clock::duration::zero()) << "exactly the limit is on time";
  EXPECT_EQ(d.Observe(2, t0 + 550ms), 50ms);
  EXPECT_EQ(d.Observe(3, t0 + 550ms), 350ms) << "each peer has its own clock";
  EXPECT_EQ(d.Observe(2, t0 + 600ms), Clock::duration::zero());
  d.Reset();  // e.g. leadership lost and regained: the gap is not the loop's fault
  EXPECT_EQ(d.Observe(2, t0 + 5s), Clock::duration::zero());
  EXPECT_EQ(d.Observe(2, t0 + 5s + 201ms), 1ms);
}

}  // namespace
}  // namespace rusd::raftd
