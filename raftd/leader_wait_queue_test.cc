#include "raftd/leader_wait_queue.h"

#include <gtest/gtest.h>

namespace rusd::raftd {
namespace {

using namespace std::chrono_literals;
using Clock = LeaderWaitQueue::Clock;
using ipc::MessageType;
constexpr size_t kOverhead = LeaderWaitQueue::kEntryOverhead;

std::vector<uint64_t> Ids(const std::vector<LeaderWaitQueue::Request>& rs) {
  std::vector<uint64_t> ids;
  for (const auto& r : rs) ids.push_back(r.id);
  return ids;
}

TEST(LeaderWaitQueue, KeepsArrivalOrderAndExpiresEachAtItsOwnTime) {
  LeaderWaitQueue q({/*max_bytes=*/1u << 20});
  const Clock::time_point t0 = Clock::now();
  std::string a = "a", b = "bb", c = "ccc", d = "d";
  // Give-up times need not follow arrival: the frontend's clock starts before its ring
  // write, which may wait.
  ASSERT_TRUE(q.Add(MessageType::kPropose, 1, a, 1, t0 + 7000ms));
  ASSERT_TRUE(q.Add(MessageType::kMemberChange, 2, b, 1, t0 + 6000ms));
  ASSERT_TRUE(q.Add(MessageType::kPropose, 3, c, 1, t0 + 9000ms));
  ASSERT_TRUE(q.Add(MessageType::kPropose, 4, d, 1, t0 + 6500ms));
  EXPECT_EQ(q.bytes(), 7 + 4 * kOverhead);
  EXPECT_TRUE(q.TakeExpired(t0 + 5999ms).empty());
  std::vector<LeaderWaitQueue::Request> gone = q.TakeExpired(t0 + 7000ms);
  EXPECT_EQ(Ids(gone), (std::vector<uint64_t>{1, 2, 4}));
  EXPECT_EQ(gone[0].payload, "a");
  EXPECT_EQ(gone[1].type, MessageType::kMemberChange);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.bytes(), 3 + kOverhead);
  std::vector<LeaderWaitQueue::Request> all = q.TakeAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].payload, "ccc");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(LeaderWaitQueue, DropsTheRequestsOfADeadFrontendEpoch) {
  LeaderWaitQueue q({1u << 20});
  const Clock::time_point later = Clock::now() + 7s;
  std::string a = "a", b = "b", c = "c";
  ASSERT_TRUE(q.Add(MessageType::kPropose, 1, a, /*frontend_epoch=*/1, later));
  ASSERT_TRUE(q.Add(MessageType::kPropose, 2, b, /*frontend_epoch=*/3, later));
  ASSERT_TRUE(q.Add(MessageType::kMemberChange, 3, c, /*frontend_epoch=*/1, later));
  EXPECT_TRUE(q.TakeOrphaned(1).empty()) << "epoch 1 is the live one";
  EXPECT_EQ(Ids(q.TakeOrphaned(3)), (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(Ids(q.TakeAll()), (std::vector<uint64_t>{2}));
}

TEST(LeaderWaitQueue, RefusesOverItsByteBoundButAlwaysTakesOne) {
  LeaderWaitQueue q({/*max_bytes=*/2 * kOverhead + 4});
  const Clock::time_point t = Clock::now() + 7s;
  std::string big(3 * kOverhead, 'x'), small = "yy";
  EXPECT_TRUE(q.Add(MessageType::kPropose, 1, big, 1, t)) << "one request alone is held";
  EXPECT_FALSE(q.Add(MessageType::kPropose, 2, small, 1, t));
  EXPECT_EQ(small, "yy") << "a refused payload is left to the caller";
  q.TakeAll();
  EXPECT_TRUE(q.Add(MessageType::kPropose, 2, small, 1, t));
  std::string two = "zz";
  EXPECT_TRUE(q.Add(MessageType::kPropose, 3, two, 1, t));
  // Empty payloads still cost their bookkeeping: a flood of tiny requests is bounded.
  std::string empty;
  EXPECT_FALSE(q.Add(MessageType::kPropose, 4, empty, 1, t));
}

// raftd asks every tick; the queue looks at its requests only when one is due or orphaned.
TEST(LeaderWaitQueue, ScansOnlyWhenARequestIsDueOrOrphaned) {
  LeaderWaitQueue q({1u << 20});
  const Clock::time_point t0 = Clock::now();
  EXPECT_EQ(q.earliest_give_up(), Clock::time_point::max());
  std::string a = "a", b = "b", c = "c";
  ASSERT_TRUE(q.Add(MessageType::kPropose, 1, a, /*frontend_epoch=*/2, t0 + 6s));
  ASSERT_TRUE(q.Add(MessageType::kPropose, 2, b, /*frontend_epoch=*/3, t0 + 5s));
  ASSERT_TRUE(q.Add(MessageType::kPropose, 3, c, /*frontend_epoch=*/3, t0 + 7s));
  EXPECT_EQ(q.earliest_give_up(), t0 + 5s);
  EXPECT_EQ(q.lowest_epoch(), 2u);
  for (int tick = 0; tick < 100; ++tick) {
    EXPECT_TRUE(q.TakeExpired(t0 + 4s).empty());
    EXPECT_TRUE(q.TakeOrphaned(2).empty());
  }
  EXPECT_EQ(q.scans(), 0u) << "a tick with nothing due or orphaned looked at the requests";
  EXPECT_EQ(Ids(q.TakeExpired(t0 + 5s)), (std::vector<uint64_t>{2}));
  EXPECT_EQ(q.scans(), 1u);
  EXPECT_EQ(q.earliest_give_up(), t0 + 6s) << "recomputed from what is left";
  EXPECT_TRUE(q.TakeExpired(t0 + 5s).empty());
  EXPECT_EQ(q.scans(), 1u);
  EXPECT_EQ(Ids(q.TakeOrphaned(3)), (std::vector<uint64_t>{1}));
  EXPECT_EQ(q.lowest_epoch(), 3u);
  EXPECT_EQ(q.earliest_give_up(), t0 + 7s);
  EXPECT_TRUE(q.TakeOrphaned(3).empty());
  EXPECT_EQ(q.scans(), 2u);
  q.TakeAll();
  EXPECT_EQ(q.earliest_give_up(), Clock::time_point::max());
  EXPECT_EQ(q.lowest_epoch(), UINT64_MAX);
}

// A request keeps its frame's deadline (raftd hands a member change back to its checks when a
// leader appears; should it have to wait again, it must still give up before its client).
TEST(LeaderWaitQueue, KeepsEachRequestsDeadline) {
  LeaderWaitQueue q({1u << 20});
  const Clock::time_point t0 = Clock::now();
  std::string a = "a", b = "b";
  ASSERT_TRUE(q.Add(MessageType::kMemberChange, 1, a, 1, t0 + 4s, t0 + 5s));
  ASSERT_TRUE(q.Add(MessageType::kPropose, 2, b, 1, t0 + 7s));
  std::vector<LeaderWaitQueue::Request> all = q.TakeAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].deadline, t0 + 5s);
  EXPECT_EQ(all[0].give_up_at, t0 + 4s);
  EXPECT_EQ(all[1].deadline, ipc::kNoDeadline);
}

}  // namespace
}  // namespace rusd::raftd
