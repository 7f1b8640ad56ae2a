// Membership: learners, single-member configuration changes (applied when committed, one
// at a time), removing the leader, restarts replaying changes, and leader transfer.
#include <gtest/gtest.h>

#include "raftd/raft/conf_change.h"
#include "raftd/raft/raft_test_util.h"

namespace rusd::raft {
namespace {

using testing::TestCluster;

Status Change(RaftNode& n, ConfChangeType t, uint64_t id) {
  return n.ProposeConfChange(ConfChange{t, id, "member-" + std::to_string(id)});
}

TEST(ConfChangeTest, EncodeDecodeRoundTripAndBadInput) {
  ConfChange cc{ConfChangeType::kAddLearnerNode, 0x1234567890abcdefULL, "ctx"};
  Result<ConfChange> back = DecodeConfChange(EncodeConfChange(cc));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, cc);
  EXPECT_FALSE(DecodeConfChange("").ok());
  EXPECT_FALSE(DecodeConfChange(std::string(10, '\0')).ok()) << "version 0";
  std::string bad = EncodeConfChange(cc);
  bad[1] = 9;
  EXPECT_FALSE(DecodeConfChange(bad).ok()) << "unknown type";
  std::string zero = EncodeConfChange(ConfChange{ConfChangeType::kAddNode, 1, ""});
  zero[2] = 0;
  EXPECT_FALSE(DecodeConfChange(zero).ok()) << "node id 0";
}

TEST(ConfChangeTest, ApplyFollowsEtcdRules) {
  ConfState s{{1, 2, 3}, {}};
  s = ApplyToConfState(s, {ConfChangeType::kAddLearnerNode, 4, ""});
  EXPECT_EQ(s, (ConfState{{1, 2, 3}, {4}}));
  s = ApplyToConfState(s, {ConfChangeType::kAddLearnerNode, 2, ""});
  EXPECT_EQ(s, (ConfState{{1, 2, 3}, {4}})) << "a voter is never demoted";
  s = ApplyToConfState(s, {ConfChangeType::kAddNode, 4, ""});
  EXPECT_EQ(s, (ConfState{{1, 2, 3, 4}, {}})) << "promotion";
  s = ApplyToConfState(s, {ConfChangeType::kRemoveNode, 1, ""});
  EXPECT_EQ(s, (ConfState{{2, 3, 4}, {}}));
  s = ApplyToConfState(s, {ConfChangeType::kUpdateNode, 2, "x"});
  EXPECT_EQ(s, (ConfState{{2, 3, 4}, {}}));
}

TEST(MembershipTest, LearnerReceivesTheLogButNeitherVotesNorCountsNorCampaigns) {
  TestCluster c(3);
  c.Elect(1);
  c.Propose(1, {"a"});
  c.Settle();
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kAddLearnerNode, 4).ok());
  c.Start(4);  // knows the bootstrap configuration; not a member of it
  c.Settle();
  EXPECT_EQ(c.node(1).conf_state(), (ConfState{{1, 2, 3}, {4}}));
  EXPECT_EQ(c.node(4).conf_state(), (ConfState{{1, 2, 3}, {4}}));
  EXPECT_EQ(c.node(4).log().committed(), c.node(1).log().committed());
  EXPECT_TRUE(c.node(1).progress().at(4).is_learner);
  // With two voters gone, the learner's acknowledgement does not make a quorum.
  c.Isolate(2);
  c.Isolate(3);
  const uint64_t before = c.node(1).log().committed();
  c.Propose(1, {"b"});
  c.Settle();
  EXPECT_EQ(c.node(1).log().committed(), before);
  EXPECT_EQ(c.node(4).log().last_index(), c.node(1).log().last_index()) << "still replicated";
  // The learner never campaigns, however long it waits.
  c.Isolate(1);
  c.TickAll(100);
  EXPECT_EQ(c.node(4).role(), Role::kFollower);
  for (const Message& m : c.sent()) {
    EXPECT_FALSE(m.from == 4 && (m.type == MessageType::kPreVote || m.type == MessageType::kVote));
  }
}

TEST(MembershipTest, PromotedLearnerCountsForQuorum) {
  TestCluster c(1);
  c.Elect(1);
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kAddLearnerNode, 2).ok());
  c.Start(2);
  c.Settle();
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kAddNode, 2).ok());
  c.Settle();
  EXPECT_EQ(c.node(1).conf_state(), (ConfState{{1, 2}, {}}));
  EXPECT_EQ(c.node(2).conf_state(), (ConfState{{1, 2}, {}}));
  c.Isolate(2);
  const uint64_t before = c.node(1).log().committed();
  c.Propose(1, {"needs 2"});
  c.Settle();
  EXPECT_EQ(c.node(1).log().committed(), before) << "quorum of 2 voters is 2";
  c.Heal();
  c.TickAll();
  EXPECT_GT(c.node(1).log().committed(), before);
}

TEST(MembershipTest, OneChangeAtATime) {
  TestCluster c(3);
  c.Elect(1);
  c.Start(4);
  c.Start(5);
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kAddLearnerNode, 4).ok());
  Status second = Change(c.node(1), ConfChangeType::kAddLearnerNode, 5);
  EXPECT_EQ(second.code(), StatusCode::kFailedPrecondition) << second.ToString();
  c.Settle();  // the first is committed and applied
  EXPECT_TRUE(Change(c.node(1), ConfChangeType::kAddLearnerNode, 5).ok());
  c.Settle();
  EXPECT_EQ(c.node(1).conf_state(), (ConfState{{1, 2, 3}, {4, 5}}));
  // A change forwarded by a follower while one is pending becomes a no-op entry.
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kAddNode, 4).ok());
  ASSERT_TRUE(Change(c.node(2), ConfChangeType::kAddNode, 5).ok());
  c.Settle();
  EXPECT_EQ(c.node(1).conf_state(), (ConfState{{1, 2, 3, 4}, {5}}));
  EXPECT_EQ(c.node(5).conf_state(), (ConfState{{1, 2, 3, 4}, {5}}));
}

TEST(MembershipTest, NewLeaderProposesNoChangeBeforeItsOwnFirstEntryIsApplied) {
  TestCluster c(3);
  c.Elect(1);
  // Hold back the appends' answers: the new leader's empty entry cannot commit.
  c.SetDrop([](const Message& m) { return m.type == MessageType::kAppendResp; });
  ASSERT_TRUE(c.node(1).TransferLeadership(2).ok());
  c.Settle();
  RaftNode* leader = &c.node(2);
  ASSERT_EQ(leader->role(), Role::kLeader);
  ASSERT_FALSE(leader->CommittedInCurrentTerm());
  EXPECT_EQ(Change(*leader, ConfChangeType::kRemoveNode, 3).code(), StatusCode::kFailedPrecondition);
  c.SetDrop(nullptr);
  c.Settle();
  c.TickAll();
  EXPECT_TRUE(Change(*leader, ConfChangeType::kRemoveNode, 3).ok());
}

TEST(MembershipTest, RemovingAFollowerShrinksTheQuorumAndCommitsWhatWaited) {
  TestCluster c(3);
  c.Elect(1);
  c.Isolate(3);
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kRemoveNode, 3).ok());
  c.Settle();
  EXPECT_EQ(c.node(1).conf_state(), (ConfState{{1, 2}, {}}));
  EXPECT_FALSE(c.node(1).progress().count(3));
  // Down to two voters, then one: the last one commits alone.
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kRemoveNode, 2).ok());
  c.Settle();
  EXPECT_EQ(c.node(1).conf_state(), (ConfState{{1}, {}}));
  c.Isolate(2);
  c.Propose(1, {"alone"});
  c.Settle();
  EXPECT_EQ(c.node(1).log().committed(), c.node(1).log().last_index());
  EXPECT_EQ(Change(c.node(1), ConfChangeType::kRemoveNode, 1).code(),
            StatusCode::kFailedPrecondition);
}

TEST(MembershipTest, LeaderRemovingItselfStepsDownAndHandsOver) {
  TestCluster c(3);
  c.Elect(1);
  c.Propose(1, {"before"});
  c.Settle();
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kRemoveNode, 1).ok());
  c.Settle();
  EXPECT_EQ(c.node(1).role(), Role::kFollower);
  EXPECT_FALSE(c.node(1).IsVoter(1));
  // An up-to-date voter got kTimeoutNow and won without waiting for a timeout.
  uint64_t leader = 0;
  for (uint64_t id : {2, 3}) {
    if (c.node(id).role() == Role::kLeader) leader = id;
  }
  ASSERT_NE(leader, 0u);
  EXPECT_EQ(c.node(leader).conf_state(), (ConfState{{2, 3}, {}}));
  c.Propose(leader, {"after"});
  c.Settle();
  EXPECT_EQ(c.committed(leader).back().data, "after");
  // The removed member never campaigns again.
  c.ClearSent();
  c.Isolate(leader);
  c.TickAll(100);
  for (const Message& m : c.sent()) {
    EXPECT_FALSE(m.from == 1 && (m.type == MessageType::kPreVote || m.type == MessageType::kVote));
  }
}

// The removed leader crashed before handing over; the remaining voter holds the removal
// but never learned it committed, and the removed node's longer log makes it refuse its
// vote. The vote answers carry the commit index, so the voter learns it and wins alone.
TEST(MembershipTest, VoterLearnsTheCommittedRemovalFromTheRemovedLeadersVoteAnswer) {
  TestCluster c(2);
  const Entry e1{1, 1, EntryType::kEmpty, ""};
  const Entry e2{2, 1, EntryType::kConfChange,
                 EncodeConfChange({ConfChangeType::kRemoveNode, 1, ""})};
  const Entry e3{3, 1, EntryType::kNormal, "never replicated"};
  c.storage(1).entries = {e1, e2, e3};
  c.storage(1).hs = HardState{1, 1, 2};
  c.storage(2).entries = {e1, e2};
  c.storage(2).hs = HardState{1, 1, 1};
  c.Start(1);
  c.Start(2);
  c.Settle();
  ASSERT_EQ(c.node(1).conf_state(), (ConfState{{2}, {}}));
  ASSERT_EQ(c.node(2).conf_state(), (ConfState{{1, 2}, {}}));
  c.TickAll(100);
  EXPECT_EQ(c.node(2).role(), Role::kLeader);
  EXPECT_EQ(c.node(2).conf_state(), (ConfState{{2}, {}}));
  c.Propose(2, {"alone"});
  c.Settle();
  EXPECT_EQ(c.committed(2).back().data, "alone");
}

TEST(MembershipTest, RestartReplaysAppliedChangesFromTheLog) {
  TestCluster c(3);
  c.Elect(1);
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kAddLearnerNode, 4).ok());
  c.Start(4);
  c.Settle();
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kRemoveNode, 3).ok());
  c.Settle();
  c.TickAll();  // followers learn the commit
  c.Start(2);   // restart
  c.ProcessReadies();  // committed entries are handed out again and their changes applied
  // Applied entries count as applied again only up to the persisted commit index.
  EXPECT_EQ(c.node(2).conf_state().voters, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(c.node(2).conf_state().learners, (std::vector<uint64_t>{4}));
  // raftd's way: everything up to the persisted commit counts as applied at once.
  Config cfg = testing::MakeConfig(2, {1, 2, 3});
  cfg.applied = c.storage(2).hs.commit;
  RaftNode restarted(cfg, c.storage(2).Recover());
  EXPECT_EQ(restarted.conf_state(), (ConfState{{1, 2}, {4}}));
}

TEST(LeaderTransferTest, TransfersToAnUpToDateFollower) {
  TestCluster c(3);
  c.Elect(1);
  ASSERT_TRUE(c.node(1).TransferLeadership(3).ok());
  c.Settle();
  EXPECT_EQ(c.node(3).role(), Role::kLeader);
  EXPECT_EQ(c.node(1).role(), Role::kFollower);
  EXPECT_EQ(c.node(1).leader(), 3u);
  EXPECT_EQ(c.Count(MessageType::kTimeoutNow, 3), 1u);
}

TEST(LeaderTransferTest, FollowerForwardsTheRequest) {
  TestCluster c(3);
  c.Elect(1);
  ASSERT_TRUE(c.node(2).TransferLeadership(2).ok());
  c.Settle();
  EXPECT_EQ(c.node(2).role(), Role::kLeader);
}

TEST(LeaderTransferTest, LaggingTransfereeCatchesUpFirstAndProposalsWaitMeanwhile) {
  TestCluster c(3);
  c.Elect(1);
  c.Isolate(3);
  c.Propose(1, {"a", "b", "c"});
  c.Settle();
  c.Heal();
  ASSERT_TRUE(c.node(1).TransferLeadership(3).ok());
  EXPECT_EQ(c.node(1).lead_transferee(), 3u);
  auto d = testing::Data({"during"});
  Status st = c.node(1).Propose(d);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_EQ(st.message(), RaftNode::kProposalDropped);
  EXPECT_EQ(c.node(1).ProposeConfChange({ConfChangeType::kAddLearnerNode, 9, ""}).code(),
            StatusCode::kUnavailable);
  c.Settle();
  EXPECT_EQ(c.node(3).role(), Role::kLeader);
  for (const Entry& e : c.node(3).log().Slice(1, c.node(3).log().last_index())) {
    EXPECT_NE(e.data, "during");
  }
}

TEST(LeaderTransferTest, AbortsAfterAnElectionTimeout) {
  TestCluster c(3);
  c.Elect(1);
  c.SetDrop([](const Message& m) { return m.to == 3 && m.type == MessageType::kTimeoutNow; });
  ASSERT_TRUE(c.node(1).TransferLeadership(3).ok());
  c.Settle();
  EXPECT_EQ(c.node(1).lead_transferee(), 3u);
  auto d = testing::Data({"x"});
  EXPECT_FALSE(c.node(1).Propose(d).ok());
  for (int i = 0; i < 10; ++i) c.node(1).Tick();
  c.Settle();
  EXPECT_EQ(c.node(1).role(), Role::kLeader);
  EXPECT_EQ(c.node(1).lead_transferee(), 0u);
  EXPECT_TRUE(c.node(1).Propose(d).ok());
}

TEST(LeaderTransferTest, RefusesLearnersAndStrangers) {
  TestCluster c(2);
  c.Elect(1);
  ASSERT_TRUE(Change(c.node(1), ConfChangeType::kAddLearnerNode, 3).ok());
  c.Start(3);
  c.Settle();
  EXPECT_EQ(c.node(1).TransferLeadership(3).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.node(1).TransferLeadership(7).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.node(1).lead_transferee(), 0u);
}

}  // namespace
}  // namespace rusd::raft
