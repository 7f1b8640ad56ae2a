// ReadIndex: batching into shared confirmation rounds, quorum confirmation, forwarding
// from followers (the answer goes to the member that asked).
#include <gtest/gtest.h>

#include "raftd/raft/raft_test_util.h"

namespace rusd::raft {
namespace {

using testing::TestCluster;

size_t ReadRoundHeartbeats(const TestCluster& c) {
  size_t n = 0;
  for (const Message& m : c.sent()) n += m.type == MessageType::kHeartbeat && m.context != 0;
  return n;
}

TEST(ReadIndexTest, ManyReadsShareOneConfirmationRound) {
  TestCluster c(3);
  c.Elect(1);
  c.Propose(1, {"a", "b"});
  c.Settle();
  c.ClearSent();
  for (uint64_t rid = 1; rid <= 100; ++rid) ASSERT_TRUE(c.node(1).ReadIndex(rid).ok());
  c.Settle();
  EXPECT_EQ(ReadRoundHeartbeats(c), 2u) << "one heartbeat per follower for 100 reads";
  ASSERT_EQ(c.reads(1).size(), 100u);
  for (uint64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(c.reads(1)[i].request_id, i + 1) << "answered in order";
    EXPECT_EQ(c.reads(1)[i].index, c.node(1).log().committed());
  }
}

TEST(ReadIndexTest, ReadsOfALaterReadyJoinALaterRoundAndAnEarlierAckDoesNotConfirmThem) {
  TestCluster c(3);
  c.Elect(1);
  c.ClearSent();
  ASSERT_TRUE(c.node(1).ReadIndex(1).ok());
  c.ProcessReadies();  // round 1 goes out, not answered yet
  ASSERT_TRUE(c.node(1).ReadIndex(2).ok());
  ASSERT_TRUE(c.node(1).ReadIndex(3).ok());
  // Deliver only round 1's heartbeats and their answers.
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();  // round 2 goes out with the answers to round 1 processed
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();
  ASSERT_EQ(c.reads(1).size(), 1u) << "round 1 answers confirm read 1 only";
  EXPECT_EQ(c.reads(1)[0].request_id, 1u);
  c.Settle();
  ASSERT_EQ(c.reads(1).size(), 3u);
  EXPECT_EQ(ReadRoundHeartbeats(c), 4u) << "two rounds for three reads";
}

TEST(ReadIndexTest, NoQuorumNoAnswer) {
  TestCluster c(3);
  c.Elect(1);
  c.Isolate(2);
  c.Isolate(3);
  ASSERT_TRUE(c.node(1).ReadIndex(7).ok());
  c.Settle();
  EXPECT_TRUE(c.reads(1).empty());
  c.Heal();
  c.TickAll();  // the periodic heartbeat carries the pending round again
  ASSERT_EQ(c.reads(1).size(), 1u);
  EXPECT_EQ(c.reads(1)[0].request_id, 7u);
}

TEST(ReadIndexTest, FollowerReadsAreForwardedAndAnsweredToTheAskingMember) {
  TestCluster c(3);
  c.Elect(1);
  c.Propose(1, {"x"});
  c.Settle();
  ASSERT_TRUE(c.node(2).ReadIndex(41).ok());
  ASSERT_TRUE(c.node(3).ReadIndex(42).ok());
  ASSERT_TRUE(c.node(3).ReadIndex(43).ok());
  c.Settle();
  EXPECT_TRUE(c.reads(1).empty());
  ASSERT_EQ(c.reads(2).size(), 1u);
  EXPECT_EQ(c.reads(2)[0].request_id, 41u);
  EXPECT_EQ(c.reads(2)[0].index, c.node(1).log().committed());
  ASSERT_EQ(c.reads(3).size(), 2u);
  EXPECT_EQ(c.reads(3)[1].request_id, 43u);
  EXPECT_EQ(c.Count(MessageType::kReadIndex), 2u) << "one message per follower";
  EXPECT_EQ(c.Count(MessageType::kReadIndexResp), 2u) << "one answer per follower";
}

TEST(ReadIndexTest, AFollowersBurstOfReadsTravelsAsOneRequestAndOneAnswer) {
  TestCluster c(3);
  c.Elect(1);
  c.ClearSent();
  for (uint64_t rid = 100; rid < 150; ++rid) ASSERT_TRUE(c.node(3).ReadIndex(rid).ok());
  ASSERT_TRUE(c.node(2).ReadIndex(7).ok());
  c.Settle();
  EXPECT_EQ(c.Count(MessageType::kReadIndex, 1), 2u);
  EXPECT_EQ(c.Count(MessageType::kReadIndexResp, 3), 1u);
  EXPECT_EQ(ReadRoundHeartbeats(c), 2u) << "both followers' reads share one round";
  ASSERT_EQ(c.reads(3).size(), 50u);
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(c.reads(3)[i].request_id, 100 + i);
    EXPECT_EQ(c.reads(3)[i].index, c.node(1).log().committed());
  }
  ASSERT_EQ(c.reads(2).size(), 1u);
}

TEST(ReadIndexTest, NewLeaderAnswersOnlyAfterCommittingAnEntryOfItsTerm) {
  // Without check-quorum there is no leader lease: node 2 can win at once.
  TestCluster c(3, [](Config& cfg) { cfg.check_quorum = false; });
  c.Elect(1);
  c.Propose(1, {"x"});
  c.Settle();
  c.Isolate(1);
  c.node(2).Campaign();
  c.ProcessReadies();
  // Deliver votes but not yet the new leader's appends' answers.
  c.SetDrop([](const Message& m) { return m.type == MessageType::kAppendResp; });
  c.Settle();
  ASSERT_EQ(c.node(2).role(), Role::kLeader);
  ASSERT_FALSE(c.node(2).CommittedInCurrentTerm());
  ASSERT_TRUE(c.node(2).ReadIndex(5).ok());
  c.Settle();
  EXPECT_TRUE(c.reads(2).empty());
  c.SetDrop(nullptr);
  c.TickAll();
  ASSERT_EQ(c.reads(2).size(), 1u);
  EXPECT_EQ(c.reads(2)[0].index, c.node(2).log().committed());
  EXPECT_EQ(c.node(2).log().Term(c.reads(2)[0].index), c.node(2).term());
}

TEST(ReadIndexTest, LearnersDoNotConfirmReads) {
  TestCluster c(2);
  c.Elect(1);
  ASSERT_TRUE(c.node(1).ProposeConfChange({ConfChangeType::kAddLearnerNode, 3, ""}).ok());
  c.Start(3);
  c.Settle();
  ASSERT_TRUE(c.node(1).IsLearner(3));
  c.Isolate(2);
  ASSERT_TRUE(c.node(1).ReadIndex(9).ok());
  c.Settle();
  EXPECT_TRUE(c.reads(1).empty()) << "1 voter of 2 plus a learner is no quorum";
  c.Heal();
  c.TickAll();
  EXPECT_EQ(c.reads(1).size(), 1u);
}

}  // namespace
}  // namespace rusd::raft
