// Replication and flow control: inflight windows, pipelining, probing, fast back-off, and
// that a slow or dead follower never holds back the leader or the other followers.
#include <gtest/gtest.h>

#include "raftd/raft/progress.h"
#include "raftd/raft/raft_test_util.h"

namespace rusd::raft {
namespace {

using testing::Data;
using testing::TestCluster;

TEST(ProgressTest, InflightsLimitByCountAndBytes) {
  Inflights by_count(3, 0);
  by_count.Add(1, 10);
  by_count.Add(2, 10);
  EXPECT_FALSE(by_count.Full());
  by_count.Add(3, 10);
  EXPECT_TRUE(by_count.Full());
  by_count.FreeLE(2);
  EXPECT_EQ(by_count.count(), 1u);
  EXPECT_EQ(by_count.bytes(), 10u);
  EXPECT_FALSE(by_count.Full());

  Inflights by_bytes(100, 25);
  by_bytes.Add(1, 10);
  EXPECT_FALSE(by_bytes.Full());
  by_bytes.Add(2, 20);
  EXPECT_TRUE(by_bytes.Full());
  by_bytes.FreeFirstOne();
  EXPECT_FALSE(by_bytes.Full());
}

TEST(ProgressTest, ProbeWaitsForAnswerAndIgnoresStaleRejections) {
  Progress pr(11, 8, 0);
  EXPECT_FALSE(pr.IsPaused());
  pr.SentAppend(true, 11, 1);  // probing: one message out
  EXPECT_TRUE(pr.IsPaused());
  EXPECT_FALSE(pr.MaybeDecrTo(5, 3)) << "answers an older probe";
  EXPECT_TRUE(pr.MaybeDecrTo(10, 4));
  EXPECT_EQ(pr.next, 5u);
  EXPECT_FALSE(pr.IsPaused());
  EXPECT_TRUE(pr.MaybeUpdate(4));
  pr.BecomeReplicate();
  EXPECT_EQ(pr.next, 5u);
  pr.SentAppend(true, 9, 5);
  EXPECT_EQ(pr.next, 10u) << "replicate advances optimistically";
  EXPECT_FALSE(pr.MaybeDecrTo(3, 0)) << "at or below match: stale";
  EXPECT_TRUE(pr.MaybeDecrTo(7, 6));
  EXPECT_EQ(pr.next, 5u) << "replicate falls back to match + 1";
}

TEST(ReplicationTest, PipelinesAppendsUpToTheInflightWindowThenPauses) {
  TestCluster c(3, [](Config& cfg) {
    cfg.max_inflight_messages = 4;
    cfg.max_entries_per_message = 1;
  });
  c.Elect(1);
  c.ClearSent();
  // Ten proposals, nothing delivered: each follower gets exactly the window's worth.
  for (int i = 0; i < 10; ++i) {
    c.Propose(1, {"x"});
    c.ProcessReadies();
  }
  EXPECT_EQ(c.Count(MessageType::kAppend, 2), 4u);
  EXPECT_EQ(c.Count(MessageType::kAppend, 3), 4u);
  EXPECT_EQ(c.node(1).progress().at(2).state, ProgressState::kReplicate);
  EXPECT_TRUE(c.node(1).progress().at(2).IsPaused());
  c.Settle();  // acks open the window: everything goes and commits
  EXPECT_EQ(c.node(1).log().committed(), c.node(1).log().last_index());
  EXPECT_EQ(c.committed(2).size(), c.committed(1).size());
  EXPECT_GE(c.Count(MessageType::kAppend, 2), 10u);
}

TEST(ReplicationTest, NewCommitIndexRidesOnTheAppendsOfTheSameReady) {
  TestCluster c(3);
  c.Elect(1);
  c.Propose(1, {"a"});
  c.ProcessReadies();  // appends of "a" to 2 and 3
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();  // the followers persist "a" and acknowledge
  const uint64_t a = c.node(1).log().last_index();
  c.ClearSent();
  // One turn of the leader: the acknowledgements commit "a" while "b" is proposed.
  while (c.DeliverOne()) {
  }
  EXPECT_EQ(c.node(1).log().committed(), a);
  c.Propose(1, {"b"});
  c.ProcessReadies();
  for (uint64_t f : {2u, 3u}) {
    // One append carries both "b" and the new commit index; no empty one for the commit.
    ASSERT_EQ(c.Count(MessageType::kAppend, f), 1u) << "to " << f;
    for (const Message& m : c.sent()) {
      if (m.type != MessageType::kAppend || m.to != f) continue;
      EXPECT_EQ(m.entries.size(), 1u);
      EXPECT_EQ(m.commit, a);
    }
  }
  c.Settle();
  EXPECT_EQ(c.committed(2).size(), c.committed(1).size());
  // Idle: the commit of "b" still reaches the followers, in an empty append.
  EXPECT_EQ(c.node(2).log().committed(), c.node(1).log().committed());
}

// Followers 2 and 3 were each sent exactly one append since the last ClearSent: an empty
// commit announcement carrying `commit`.
void ExpectOneCommitAnnouncementToEachFollower(TestCluster& c, uint64_t commit) {
  for (uint64_t f : {2u, 3u}) {
    ASSERT_EQ(c.Count(MessageType::kAppend, f), 1u) << "to " << f;
    for (const Message& m : c.sent()) {
      if (m.type != MessageType::kAppend || m.to != f) continue;
      EXPECT_TRUE(m.entries.empty());
      EXPECT_EQ(m.commit, commit);
      EXPECT_EQ(m.context, kCommitAnnouncement);
    }
  }
}

// An idle leader's commit announcement (an empty append to a replicating follower) is
// marked kCommitAnnouncement and applied without an acknowledgement: the follower already
// acknowledged the entries it covers.
TEST(ReplicationTest, CommitAnnouncementIsAppliedButNotAcknowledged) {
  TestCluster c(3);
  c.Elect(1);
  c.Propose(1, {"a"});
  c.ProcessReadies();
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();  // the followers persist "a" and acknowledge
  c.ClearSent();
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();  // the leader commits "a" with nothing new to send
  const uint64_t a = c.node(1).log().last_index();
  ASSERT_EQ(c.node(1).log().committed(), a);
  ExpectOneCommitAnnouncementToEachFollower(c, a);
  c.ClearSent();
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();
  EXPECT_EQ(c.node(2).log().committed(), a);
  EXPECT_EQ(c.node(3).log().committed(), a);
  EXPECT_EQ(c.Count(MessageType::kAppendResp, 1), 0u) << "an announcement is not answered";
  // The cluster keeps replicating and committing afterwards.
  c.Propose(1, {"b"});
  c.Settle();
  EXPECT_EQ(c.node(2).log().committed(), c.node(1).log().last_index());
}

// With defer_commit_announcements a leader's new commit index waits for the next append
// to a replicating follower (which carries it) instead of an empty append of its own; the
// caller's flush sends the empty announcement when none came.
TEST(ReplicationTest, DeferredCommitRidesTheNextAppendOrTheFlush) {
  TestCluster c(3, [](Config& cfg) { cfg.defer_commit_announcements = true; });
  c.Elect(1);
  c.Propose(1, {"a"});
  c.ProcessReadies();
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();  // the followers persist "a" and acknowledge
  c.ClearSent();
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();  // the leader commits "a": nothing is sent for it yet
  const uint64_t a = c.node(1).log().last_index();
  ASSERT_EQ(c.node(1).log().committed(), a);
  EXPECT_EQ(c.Count(MessageType::kAppend, 2), 0u);
  EXPECT_EQ(c.Count(MessageType::kAppend, 3), 0u);
  ASSERT_TRUE(c.node(1).CommitAnnouncementDeferred());
  EXPECT_FALSE(c.node(1).HasReady()) << "a deferred announcement alone makes no Ready";
  // The next proposal's appends carry the commit of "a".
  c.Propose(1, {"b"});
  c.ProcessReadies();
  EXPECT_FALSE(c.node(1).CommitAnnouncementDeferred());
  for (uint64_t f : {2u, 3u}) {
    ASSERT_EQ(c.Count(MessageType::kAppend, f), 1u) << "to " << f;
    for (const Message& m : c.sent()) {
      if (m.type == MessageType::kAppend && m.to == f) {
        EXPECT_EQ(m.entries.size(), 1u);
        EXPECT_EQ(m.commit, a);
      }
    }
  }
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();
  EXPECT_EQ(c.node(2).log().committed(), a);
  EXPECT_EQ(c.node(3).log().committed(), a);
  // "b" commits on the acknowledgements; nothing else goes: the flush announces it.
  c.ClearSent();
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();
  const uint64_t b = c.node(1).log().last_index();
  ASSERT_EQ(c.node(1).log().committed(), b);
  EXPECT_EQ(c.Count(MessageType::kAppend, 2), 0u);
  ASSERT_TRUE(c.node(1).CommitAnnouncementDeferred());
  c.node(1).FlushCommitAnnouncements();
  EXPECT_FALSE(c.node(1).CommitAnnouncementDeferred());
  c.ProcessReadies();
  ExpectOneCommitAnnouncementToEachFollower(c, b);
  c.ClearSent();
  while (c.DeliverOne()) {
  }
  c.ProcessReadies();
  EXPECT_EQ(c.node(2).log().committed(), b);
  EXPECT_EQ(c.node(3).log().committed(), b);
  EXPECT_EQ(c.Count(MessageType::kAppendResp, 1), 0u) << "an announcement is not answered";
  // A second flush with nothing new sends nothing.
  c.node(1).FlushCommitAnnouncements();
  EXPECT_FALSE(c.node(1).HasReady());
}

// An announcement the follower cannot accept (it lost the entries before it) is rejected
// like any append, so the leader learns where the follower's log ends and catches it up.
TEST(ReplicationTest, RejectedCommitAnnouncementIsAnswered) {
  TestCluster c(3);
  c.Elect(1);
  int dropped = 0;  // only the append that carries "a" to 2
  c.SetDrop([&](const Message& m) {
    return m.type == MessageType::kAppend && m.to == 2 && !m.entries.empty() && dropped++ == 0;
  });
  c.Propose(1, {"a"});
  c.Settle();  // commits with 3; 2 gets the announcement, rejects it, and is caught up
  bool rejected = false;
  for (const Message& m : c.sent()) {
    rejected |= m.type == MessageType::kAppendResp && m.from == 2 && m.reject;
  }
  EXPECT_TRUE(rejected);
  EXPECT_EQ(c.node(2).log().last_index(), c.node(1).log().last_index());
  EXPECT_EQ(c.node(2).log().committed(), c.node(1).log().committed());
}

// The empty append a heartbeat answer triggers (the leader's count of the follower is
// behind: answers were lost) asks for an answer: it is not an announcement.
TEST(ReplicationTest, EmptyAppendAfterLostAnswersIsAcknowledged) {
  TestCluster c(3);
  c.Elect(1);
  c.SetDrop([&](const Message& m) { return m.type == MessageType::kAppendResp && m.from == 2; });
  c.Propose(1, {"a"});
  c.Settle();
  c.SetDrop(nullptr);
  ASSERT_LT(c.node(1).progress().at(2).match, c.node(1).log().last_index());
  c.ClearSent();
  c.TickAll(2);
  bool plain_empty = false;
  for (const Message& m : c.sent()) {
    if (m.type == MessageType::kAppend && m.to == 2 && m.entries.empty()) {
      plain_empty |= m.context != kCommitAnnouncement;
    }
  }
  EXPECT_TRUE(plain_empty);
  EXPECT_EQ(c.node(1).progress().at(2).match, c.node(1).log().last_index());
}

TEST(ReplicationTest, InflightBytesBoundTheWindow) {
  TestCluster c(2, [](Config& cfg) {
    cfg.max_inflight_bytes = 250;
    cfg.max_entries_per_message = 1;
  });
  c.Elect(1);
  c.ClearSent();
  std::vector<std::string> big(6, std::string(100, 'b'));
  ASSERT_TRUE(c.node(1).Propose(big).ok());
  c.ProcessReadies();
  EXPECT_EQ(c.Count(MessageType::kAppend, 2), 3u) << "100+100+100 bytes reach the 250 limit";
  c.Settle();
  EXPECT_EQ(c.committed(2).size(), c.committed(1).size());
}

TEST(ReplicationTest, MessagesRespectTheByteLimitButCarryAtLeastOneEntry) {
  TestCluster c(2, [](Config& cfg) { cfg.max_bytes_per_message = 150; });
  c.Elect(1);
  c.ClearSent();
  std::vector<std::string> data = {std::string(100, 'a'), std::string(100, 'b'),
                                   std::string(400, 'c')};
  ASSERT_TRUE(c.node(1).Propose(data).ok());
  c.ProcessReadies();
  size_t appends = 0;
  for (const Message& m : c.sent()) {
    if (m.type != MessageType::kAppend || m.to != 2) continue;
    ++appends;
    EXPECT_EQ(m.entries.size(), 1u);
  }
  EXPECT_EQ(appends, 3u) << "pipelined: three messages without waiting";
  c.Settle();
  EXPECT_EQ(c.committed(2).size(), c.committed(1).size());
}

TEST(ReplicationTest, DeadFollowerDoesNotStallTheOthersAndIsBoundedByItsWindow) {
  TestCluster c(3, [](Config& cfg) { cfg.max_inflight_messages = 8; });
  c.Elect(1);
  c.Isolate(3);
  c.ClearSent();
  for (int i = 0; i < 200; ++i) {
    c.Propose(1, {"v"});
    c.Settle();
    if (i % 20 == 0) c.TickAll();
  }
  EXPECT_EQ(c.node(1).role(), Role::kLeader);
  EXPECT_EQ(c.node(1).log().committed(), c.node(1).log().last_index());
  EXPECT_EQ(c.node(2).log().committed(), c.node(1).log().committed());
  // The dead follower gets one window of appends, then nothing until it answers.
  size_t with_entries = 0;
  for (const Message& m : c.sent()) {
    with_entries += m.type == MessageType::kAppend && m.to == 3 && !m.entries.empty();
  }
  EXPECT_LE(with_entries, 8u);
  EXPECT_LE(c.Count(MessageType::kAppend, 3), 16u);
  EXPECT_GE(c.Count(MessageType::kAppend, 2), 200u);
  // It catches up once back.
  c.Heal();
  c.TickAll(2);
  EXPECT_EQ(c.node(3).log().committed(), c.node(1).log().committed());
}

TEST(ReplicationTest, SlowFollowerWithFullWindowDoesNotDelayCommit) {
  TestCluster c(3, [](Config& cfg) { cfg.max_inflight_messages = 2; });
  c.Elect(1);
  // Follower 3 receives but its answers are lost: its window fills and stays full.
  c.SetDrop([](const Message& m) { return m.from == 3; });
  for (int i = 0; i < 50; ++i) {
    c.Propose(1, {"w"});
    c.Settle();
  }
  EXPECT_EQ(c.node(1).log().committed(), c.node(1).log().last_index());
  EXPECT_TRUE(c.node(1).progress().at(3).IsPaused());
  c.SetDrop(nullptr);
  c.TickAll(3);
  EXPECT_EQ(c.node(3).log().last_index(), c.node(1).log().last_index());
  EXPECT_EQ(c.node(1).progress().at(3).match, c.node(1).log().last_index());
}

// A follower with a long suffix of entries from a deposed leader: the leader finds the
// match point in one rejection per term, not one per entry.
TEST(ReplicationTest, FastBackOffSkipsAWholeConflictingTermPerRoundTrip) {
  auto log = [](uint64_t conflicting_term) {
    std::vector<Entry> es;
    for (uint64_t i = 1; i <= 110; ++i) {
      Entry e;
      e.index = i;
      e.term = i <= 10 ? 1 : conflicting_term;
      e.data = std::string("d").append(std::to_string(i));
      es.push_back(e);
    }
    return es;
  };
  TestCluster c(3);
  c.storage(1).entries = log(3);
  c.storage(1).hs = HardState{3, 0, 10};
  c.storage(2).entries = log(3);
  c.storage(2).hs = HardState{3, 0, 10};
  c.storage(3).entries = log(2);
  c.storage(3).hs = HardState{3, 0, 10};
  for (uint64_t id : {1, 2, 3}) c.Start(id);
  c.Elect(1);
  size_t rejects = 0;
  for (const Message& m : c.sent()) rejects += m.type == MessageType::kAppendResp && m.reject;
  EXPECT_LE(rejects, 2u);
  EXPECT_EQ(c.node(3).log().last_index(), c.node(1).log().last_index());
  EXPECT_EQ(c.node(3).log().Term(50), std::optional<uint64_t>(3));
  EXPECT_EQ(c.node(3).log().committed(), c.node(1).log().last_index());
}

TEST(ReplicationTest, LostAppendsInReplicateAreRecoveredByHeartbeats) {
  TestCluster c(3);
  c.Elect(1);
  c.SetDrop([&](const Message& m) { return m.type == MessageType::kAppend && m.to == 2; });
  for (int i = 0; i < 5; ++i) {
    c.Propose(1, {"z"});
    c.Settle();
  }
  c.SetDrop(nullptr);
  EXPECT_EQ(c.node(1).log().committed(), c.node(1).log().last_index());
  EXPECT_LT(c.node(2).log().last_index(), c.node(1).log().last_index());
  c.TickAll(2);
  EXPECT_EQ(c.node(2).log().last_index(), c.node(1).log().last_index());
  EXPECT_EQ(c.node(2).log().committed(), c.node(1).log().committed());
}

}  // namespace
}  // namespace rusd::raft

namespace rusd::raft {
namespace {

// Raft §5.4.2 / Figure 8: a leader never commits an entry of an earlier term by counting
// replicas, even when a majority holds it; it commits it with the first entry of its own.
TEST(ReplicationTest, OlderTermEntryOnAMajorityCommitsOnlyWithAnEntryOfTheCurrentTerm) {
  testing::TestCluster c(3, [](Config& cfg) { cfg.max_entries_per_message = 1; });
  const Entry e1{1, 1, EntryType::kNormal, "one"};
  const Entry e2{2, 2, EntryType::kNormal, "two"};
  c.storage(1).entries = {e1, e2};
  c.storage(1).hs = HardState{2, 0, 1};
  c.storage(2).entries = {e1};
  c.storage(2).hs = HardState{2, 0, 1};
  c.storage(3).entries = {e1};
  c.storage(3).hs = HardState{2, 0, 1};
  for (uint64_t id : {1, 2, 3}) c.Start(id);
  // The followers' acknowledgements of the new term's entry (index 3) are lost; those of
  // index 2 get through.
  bool drop = true;
  c.SetDrop([&](const Message& m) {
    return drop && m.type == MessageType::kAppendResp && !m.reject && m.index >= 3;
  });
  c.node(1).Campaign();
  c.Settle();
  ASSERT_EQ(c.node(1).role(), Role::kLeader);
  ASSERT_EQ(c.node(1).term(), 3u);
  EXPECT_EQ(c.node(2).log().Term(2), std::optional<uint64_t>(2));
  EXPECT_EQ(c.node(3).log().Term(2), std::optional<uint64_t>(2));
  EXPECT_EQ(c.node(1).progress().at(2).match, 2u);
  EXPECT_EQ(c.node(1).log().committed(), 1u) << "index 2 is on all three but of term 2";
  drop = false;
  c.TickAll();
  EXPECT_EQ(c.node(1).log().committed(), 3u);
  ASSERT_EQ(c.committed(1).size(), 3u);
  EXPECT_EQ(c.committed(1)[1].data, "two");
}

}  // namespace
}  // namespace rusd::raft

namespace rusd::raft {
namespace {

TEST(ReplicationTest, ReportUnreachableSendsAReplicatingFollowerBackToProbing) {
  testing::TestCluster c(3);
  c.Elect(1);
  ASSERT_EQ(c.node(1).progress().at(2).state, ProgressState::kReplicate);
  c.node(1).ReportUnreachable(2);
  EXPECT_EQ(c.node(1).progress().at(2).state, ProgressState::kProbe);
  c.Propose(1, {"a"});
  c.Settle();
  EXPECT_EQ(c.node(1).progress().at(2).state, ProgressState::kReplicate) << "first answer";
  EXPECT_EQ(c.node(2).log().last_index(), c.node(1).log().last_index());
}

}  // namespace
}  // namespace rusd::raft

namespace rusd::raft {
namespace {

TEST(ReplicationTest, MalformedAppendsAndImpossibleAnswersAreIgnored) {
  testing::TestCluster c(3);
  c.Elect(1);
  c.Propose(1, {"a"});
  c.Settle();
  const uint64_t last = c.node(2).log().last_index();
  const uint64_t term = c.node(1).term();
  Message gap;  // entries not following index
  gap.type = MessageType::kAppend;
  gap.from = 1;
  gap.to = 2;
  gap.term = term;
  gap.index = last;
  gap.log_term = term;
  gap.entries = {Entry{last + 2, term, EntryType::kNormal, "x"}};
  c.node(2).Step(gap);
  Message future = gap;  // an entry newer than the message
  future.entries = {Entry{last + 1, term + 5, EntryType::kNormal, "x"}};
  c.node(2).Step(future);
  EXPECT_EQ(c.node(2).log().last_index(), last);
  Message ack;  // acknowledges more than the leader holds
  ack.type = MessageType::kAppendResp;
  ack.from = 2;
  ack.to = 1;
  ack.term = term;
  ack.index = 1000;
  c.node(1).Step(ack);
  EXPECT_EQ(c.node(1).progress().at(2).match, last);
  c.Settle();
  c.Propose(1, {"b"});
  c.Settle();
  EXPECT_EQ(c.node(2).log().last_index(), c.node(1).log().last_index());
}

TEST(RaftConfigTest, ValidateNamesTheProblem) {
  Config ok = testing::MakeConfig(1, {1, 2, 3}, {4});
  EXPECT_TRUE(RaftNode::ValidateConfig(ok).ok());
  Config c = ok;
  c.id = 0;
  EXPECT_EQ(RaftNode::ValidateConfig(c).code(), StatusCode::kInvalidArgument);
  c = ok;
  c.election_tick = 1;
  EXPECT_NE(RaftNode::ValidateConfig(c).message().find("election tick"), std::string::npos);
  c = ok;
  c.learners = {3};
  EXPECT_NE(RaftNode::ValidateConfig(c).message().find("both a voter and a learner"),
            std::string::npos);
  c = ok;
  c.max_inflight_messages = 0;
  EXPECT_FALSE(RaftNode::ValidateConfig(c).ok());
}

}  // namespace
}  // namespace rusd::raft

namespace rusd::raft {
namespace {

TEST(RaftLogTest, FindConflictByTermSkipsEntriesOfLaterTerms) {
  std::vector<Entry> es;
  const uint64_t terms[] = {1, 1, 2, 2, 5, 5, 5};
  for (uint64_t i = 0; i < 7; ++i) es.push_back(Entry{11 + i, terms[i], EntryType::kNormal, ""});
  RaftLog log(10, 1, es);  // entries 11..17
  EXPECT_EQ(log.FindConflictByTerm(17, 5), 17u);
  EXPECT_EQ(log.FindConflictByTerm(17, 4), 14u) << "skips the term-5 run";
  EXPECT_EQ(log.FindConflictByTerm(17, 2), 14u);
  EXPECT_EQ(log.FindConflictByTerm(17, 1), 12u);
  EXPECT_EQ(log.FindConflictByTerm(17, 0), 10u) << "stops at the compaction point";
  EXPECT_EQ(log.FindConflictByTerm(100, 5), 17u) << "clipped to the last index";
}

TEST(RaftLogTest, RestoreReplacesTheLogBySnapshotPoint) {
  RaftLog log(0, 0, {Entry{1, 1, EntryType::kNormal, "a"}, Entry{2, 1, EntryType::kNormal, "b"}});
  log.Restore(50, 3);
  EXPECT_EQ(log.first_index(), 51u);
  EXPECT_EQ(log.last_index(), 50u);
  EXPECT_EQ(log.last_term(), 3u);
  EXPECT_EQ(log.committed(), 50u);
  EXPECT_EQ(log.applied(), 50u);
  EXPECT_EQ(log.stabled(), 50u);
  EXPECT_TRUE(log.Unstable().empty());
  EXPECT_TRUE(log.MatchTerm(50, 3));
  EXPECT_FALSE(log.Term(2).has_value());
}

}  // namespace
}  // namespace rusd::raft
