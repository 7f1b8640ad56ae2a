// Snapshots in the core: the snapshot point kept by CompactLog, sending a snapshot to a
// follower whose next entry is compacted away (the caller carries the data and reports the
// outcome), and the follower restoring it (log reset, configuration restored).
#include <gtest/gtest.h>

#include "raftd/raft/raft_test_util.h"

namespace rusd::raft {
namespace {

using testing::TestCluster;

void CompactAll(TestCluster& c, uint64_t id) {
  RaftNode& n = c.node(id);
  n.CompactLog(n.log().applied());
  c.storage(id).Compact(n.snapshot_meta());
}

TEST(SnapshotTest, CompactLogKeepsTheSnapshotPointWithItsConfiguration) {
  TestCluster c(3);
  c.Elect(1);
  c.Propose(1, {"a"});
  c.Settle();
  const uint64_t before_change = c.node(1).log().applied();
  ASSERT_TRUE(c.node(1).ProposeConfChange({ConfChangeType::kAddLearnerNode, 4, ""}).ok());
  c.Settle();
  c.Propose(1, {"b"});
  c.Settle();
  RaftNode& n = c.node(1);
  n.CompactLog(before_change);
  SnapshotMeta meta = n.snapshot_meta();
  EXPECT_EQ(meta.index, before_change);
  EXPECT_EQ(meta.term, n.term());
  EXPECT_EQ(meta.conf, (ConfState{{1, 2, 3}, {}})) << "the change came after";
  n.CompactLog(n.log().applied());
  meta = n.snapshot_meta();
  EXPECT_EQ(meta.index, n.log().applied());
  EXPECT_EQ(meta.conf, (ConfState{{1, 2, 3}, {4}}));
  EXPECT_EQ(n.log().first_index(), meta.index + 1);
  n.CompactLog(1);  // never backwards
  EXPECT_EQ(n.snapshot_meta(), meta);
}

TEST(SnapshotTest, LaggingFollowerReceivesTheSnapshotAndCatchesUpFromIt) {
  TestCluster c(3);
  c.Elect(1);
  c.Isolate(3);
  for (int i = 0; i < 5; ++i) {
    c.Propose(1, {"p"});
    c.Settle();
  }
  ASSERT_TRUE(c.node(1).ProposeConfChange({ConfChangeType::kAddLearnerNode, 4, ""}).ok());
  c.Settle();
  CompactAll(c, 1);
  const SnapshotMeta meta = c.node(1).snapshot_meta();
  c.Propose(1, {"after snapshot"});
  c.Settle();
  const size_t applied_before = c.committed(3).size();
  const uint64_t held_before = c.node(3).log().last_index();
  c.Heal();
  c.ClearSent();
  c.TickAll(3);
  ASSERT_EQ(c.Count(MessageType::kSnapshot, 3), 1u);
  for (const Message& m : c.sent()) {
    if (m.type == MessageType::kSnapshot) {
      EXPECT_EQ(m.snapshot, meta);
    }
  }
  ASSERT_EQ(c.installed(3).size(), 1u);
  EXPECT_EQ(c.installed(3)[0], meta);
  EXPECT_EQ(c.storage(3).snap, meta);
  EXPECT_EQ(c.node(3).conf_state(), (ConfState{{1, 2, 3}, {4}})) << "restored with it";
  EXPECT_EQ(c.node(3).log().last_index(), c.node(1).log().last_index());
  EXPECT_EQ(c.node(3).log().committed(), c.node(1).log().committed());
  ASSERT_GT(c.committed(3).size(), applied_before);
  for (const Entry& e : c.committed(3)) {
    EXPECT_TRUE(e.index <= held_before || e.index > meta.index)
        << "entries inside the snapshot are not applied one by one: " << e.index;
  }
  EXPECT_EQ(c.committed(3).back().index, c.node(1).log().committed());
  EXPECT_EQ(c.committed(3).back().data, "after snapshot");
  EXPECT_EQ(c.node(1).progress().at(3).state, ProgressState::kReplicate);
  // A restart comes back from the snapshot point with its configuration.
  c.Start(3);
  EXPECT_EQ(c.node(3).log().first_index(), meta.index + 1);
  EXPECT_EQ(c.node(3).conf_state(), (ConfState{{1, 2, 3}, {4}}));
}

TEST(SnapshotTest, FailedTransferIsRetriedAfterAHeartbeat) {
  TestCluster c(3);
  c.Elect(1);
  c.Isolate(3);
  c.Propose(1, {"a", "b"});
  c.Settle();
  CompactAll(c, 1);
  c.Heal();
  bool drop = true;
  c.SetDrop([&](const Message& m) { return drop && m.type == MessageType::kSnapshot; });
  c.TickAll(2);
  EXPECT_EQ(c.node(1).progress().at(3).state, ProgressState::kSnapshot);
  c.ClearSent();
  c.TickAll(2);
  EXPECT_EQ(c.Count(MessageType::kSnapshot), 0u) << "nothing is sent while one is on its way";
  c.node(1).ReportSnapshot(3, false);
  EXPECT_EQ(c.node(1).progress().at(3).state, ProgressState::kProbe);
  drop = false;
  c.TickAll(2);
  EXPECT_EQ(c.Count(MessageType::kSnapshot, 3), 1u);
  EXPECT_EQ(c.node(3).log().committed(), c.node(1).log().committed());
}

TEST(SnapshotTest, SnapshotAtOrBelowTheCommitIndexIsNotInstalled) {
  TestCluster c(2);
  c.Elect(1);
  c.Propose(1, {"a"});
  c.Settle();
  c.TickAll();
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = 1;
  m.to = 2;
  m.term = c.node(1).term();
  m.snapshot = SnapshotMeta{1, 1, ConfState{{1, 2}, {}}};
  c.node(2).Step(m);
  c.ProcessReadies();
  EXPECT_TRUE(c.installed(2).empty());
  EXPECT_EQ(c.node(2).log().first_index(), 1u);
}

TEST(SnapshotTest, SnapshotWhoseLastEntryWeHoldOnlyMovesTheCommitIndex) {
  TestCluster c(2);
  for (uint64_t i = 1; i <= 3; ++i) c.storage(2).entries.push_back(Entry{i, 1, EntryType::kNormal, "e"});
  c.storage(2).hs = HardState{1, 0, 0};
  c.Start(2);
  const uint64_t last = 3;
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = 1;
  m.to = 2;
  m.term = 1;
  m.snapshot = SnapshotMeta{last, 1, ConfState{{1, 2}, {}}};
  c.node(2).Step(m);
  c.ProcessReadies();
  EXPECT_TRUE(c.installed(2).empty());
  EXPECT_EQ(c.node(2).log().committed(), last);
  EXPECT_EQ(c.node(2).log().first_index(), 1u) << "log kept";
}

TEST(SnapshotTest, NewMemberThatKnowsNobodyJoinsThroughTheSnapshot) {
  TestCluster c(3);
  c.Elect(1);
  c.Propose(1, {"x", "y"});
  c.Settle();
  ASSERT_TRUE(c.node(1).ProposeConfChange({ConfChangeType::kAddLearnerNode, 4, ""}).ok());
  c.Settle();
  CompactAll(c, 1);
  Config joiner;
  joiner.id = 4;
  joiner.voters = {1, 2, 3};  // the bootstrap members; 4 is none of them
  c.StartWith(joiner);
  c.TickAll(2);
  ASSERT_EQ(c.installed(4).size(), 1u);
  EXPECT_EQ(c.node(4).conf_state(), (ConfState{{1, 2, 3}, {4}}));
  EXPECT_EQ(c.node(4).log().committed(), c.node(1).log().committed());
  ASSERT_TRUE(c.node(1).ProposeConfChange({ConfChangeType::kAddNode, 4, ""}).ok());
  c.Settle();
  EXPECT_TRUE(c.node(4).IsVoter(4));
}

}  // namespace
}  // namespace rusd::raft
