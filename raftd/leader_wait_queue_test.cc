#include "raftd/leader_wait_queue.h"

#include <gtest/gtest.h>

namespace rusd::raftd {
namespace {

using namespace std::chrono_literals;
using Clock = LeaderWaitQueue::Clock;
using ipc::MessageType;

TEST(LeaderWaitQueue, KeepsArrivalOrderAndExpiresTheOldestFirst) {
  LeaderWaitQueue q({/*give_up_after=*/7000ms, /*max_bytes=*/1024});
  const Clock::time_point t0 = Clock::now();
  std::string a = "a", b = "bb", c = "ccc";
  ASSERT_TRUE(q.Add(MessageType::kPropose, 1, a, t0));
  ASSERT_TRUE(q.Add(MessageType::kMemberChange, 2, b, t0 + 1000ms));
  ASSERT_TRUE(q.Add(MessageType::kPropose, 3, c, t0 + 2000ms));
  EXPECT_EQ(q.bytes(), 6u);
  EXPECT_TRUE(q.TakeExpired(t0 + 6999ms).empty());
  std::vector<LeaderWaitQueue::Request> gone = q.TakeExpired(t0 + 8000ms);
  ASSERT_EQ(gone.size(), 2u);
  EXPECT_EQ(gone[0].id, 1u);
  EXPECT_EQ(gone[0].payload, "a");
  EXPECT_EQ(gone[1].id, 2u);
  EXPECT_EQ(gone[1].type, MessageType::kMemberChange);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.bytes(), 3u);
  std::vector<LeaderWaitQueue::Request> all = q.TakeAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].payload, "ccc");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(LeaderWaitQueue, RefusesOverItsByteBoundButAlwaysTakesOne) {
  LeaderWaitQueue q({7000ms, /*max_bytes=*/4});
  const Clock::time_point t0 = Clock::now();
  std::string big(10, 'x'), small = "yy";
  EXPECT_TRUE(q.Add(MessageType::kPropose, 1, big, t0)) << "one request alone is held";
  EXPECT_FALSE(q.Add(MessageType::kPropose, 2, small, t0));
  EXPECT_EQ(small, "yy") << "a refused payload is left to the caller";
  q.TakeAll();
  EXPECT_TRUE(q.Add(MessageType::kPropose, 2, small, t0));
  std::string two = "zz";
  EXPECT_TRUE(q.Add(MessageType::kPropose, 3, two, t0));
  std::string one = "w";
  EXPECT_FALSE(q.Add(MessageType::kPropose, 4, one, t0));
}

}  // namespace
}  // namespace rusd::raftd
