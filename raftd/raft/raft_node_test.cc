#include "raftd/raft/raft_node.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <memory>

namespace rusd::raft {
namespace {

// Stands in for the WAL: what a node persisted from its Ready batches.
struct FakeStorage {
  HardState hs;
  std::vector<Entry> entries;  // index 1..n

  void Persist(const Ready& rd) {
    if (rd.hard_state) hs = *rd.hard_state;
    for (const Entry& e : rd.entries) {
      entries.resize(e.index - 1);  // overwrite semantics, as the WAL replays them
      entries.push_back(e);
    }
  }
  RecoveredState Recover() const { return RecoveredState{hs, 0, 0, entries}; }
};

Config SingleVoter(uint64_t id = 1) {
  Config c;
  c.id = id;
  c.voters = {id};
  return c;
}

std::vector<std::string> Data(std::initializer_list<const char*> items) {
  std::vector<std::string> v;
  for (const char* s : items) v.emplace_back(s);
  return v;
}

// Runs Ready/Advance until quiet, persisting everything; returns committed entries seen.
std::vector<Entry> Drain(RaftNode& n, FakeStorage& s, std::vector<ReadState>* reads = nullptr) {
  std::vector<Entry> committed;
  while (n.HasReady()) {
    Ready rd = n.GetReady();
    s.Persist(rd);
    committed.insert(committed.end(), rd.committed_entries.begin(), rd.committed_entries.end());
    if (reads) reads->insert(reads->end(), rd.read_states.begin(), rd.read_states.end());
    n.Advance(rd);
  }
  return committed;
}

TEST(RaftNodeTest, SingleVoterElectsItselfOnFirstCampaignAndAppendsEmptyEntry) {
  RaftNode n(SingleVoter(), {});
  EXPECT_EQ(n.role(), Role::kFollower);
  n.Campaign();
  EXPECT_EQ(n.role(), Role::kLeader);
  EXPECT_EQ(n.term(), 1u);
  EXPECT_EQ(n.leader(), 1u);
  ASSERT_TRUE(n.HasReady());
  Ready rd = n.GetReady();
  ASSERT_TRUE(rd.soft_state.has_value());
  EXPECT_EQ(rd.soft_state->role, Role::kLeader);
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->term, 1u);
  EXPECT_EQ(rd.hard_state->vote, 1u);
  EXPECT_EQ(rd.hard_state->commit, 0u);
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0].index, 1u);
  EXPECT_EQ(rd.entries[0].term, 1u);
  EXPECT_EQ(rd.entries[0].type, EntryType::kEmpty);
  EXPECT_TRUE(rd.committed_entries.empty()) << "nothing commits before it is persisted";
  EXPECT_TRUE(rd.messages.empty());
}

TEST(RaftNodeTest, SingleVoterCampaignsByItselfAfterElectionTimeout) {
  Config c = SingleVoter();
  c.election_tick = 5;
  RaftNode n(c, {});
  for (int i = 0; i < 4; ++i) n.Tick();
  EXPECT_EQ(n.role(), Role::kFollower) << "randomized timeout is at least election_tick";
  for (int i = 0; i < 6; ++i) n.Tick();
  EXPECT_EQ(n.role(), Role::kLeader);
}

TEST(RaftNodeTest, CommitsOnlyAfterEntriesArePersisted) {
  RaftNode n(SingleVoter(), {});
  FakeStorage s;
  n.Campaign();
  Drain(n, s);
  EXPECT_EQ(n.log().committed(), 1u);

  auto data = Data({"a", "b", "c"});
  ASSERT_TRUE(n.Propose(data).ok());
  Ready rd = n.GetReady();
  ASSERT_EQ(rd.entries.size(), 3u);
  EXPECT_EQ(rd.entries[0].index, 2u);
  EXPECT_EQ(rd.entries[2].data, "c");
  EXPECT_TRUE(rd.committed_entries.empty());
  EXPECT_EQ(n.log().committed(), 1u) << "not committed before Advance";
  s.Persist(rd);
  n.Advance(rd);
  EXPECT_EQ(n.log().committed(), 4u);
  rd = n.GetReady();
  EXPECT_TRUE(rd.entries.empty());
  ASSERT_EQ(rd.committed_entries.size(), 3u);
  EXPECT_EQ(rd.committed_entries[0].data, "a");
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit, 4u);
  n.Advance(rd);
  EXPECT_FALSE(n.HasReady());
}

TEST(RaftNodeTest, ProposeWithoutLeaderIsUnavailable) {
  RaftNode n(SingleVoter(), {});
  auto data = Data({"x"});
  Status st = n.Propose(data);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_EQ(st.message(), "etcdserver: no leader");
  EXPECT_EQ(n.ReadIndex(5).code(), StatusCode::kUnavailable);
}

TEST(RaftNodeTest, ReadIndexWaitsForAnEntryOfTheCurrentTerm) {
  RaftNode n(SingleVoter(), {});
  FakeStorage s;
  n.Campaign();
  ASSERT_TRUE(n.ReadIndex(42).ok());
  Ready rd = n.GetReady();
  EXPECT_TRUE(rd.read_states.empty()) << "the empty entry of the term is not committed yet";
  s.Persist(rd);
  n.Advance(rd);
  rd = n.GetReady();
  ASSERT_EQ(rd.read_states.size(), 1u);
  EXPECT_EQ(rd.read_states[0].request_id, 42u);
  EXPECT_EQ(rd.read_states[0].index, 1u);
  n.Advance(rd);

  auto data = Data({"a", "b"});
  ASSERT_TRUE(n.Propose(data).ok());
  std::vector<ReadState> reads;
  Drain(n, s, &reads);
  ASSERT_TRUE(n.ReadIndex(43).ok());
  Drain(n, s, &reads);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].request_id, 43u);
  EXPECT_EQ(reads[0].index, 3u);
}

TEST(RaftNodeTest, TermGrowsAcrossRestartsAndLogSurvives) {
  FakeStorage s;
  {
    RaftNode n(SingleVoter(), {});
    n.Campaign();
    auto data = Data({"a", "b"});
    Drain(n, s);
    ASSERT_TRUE(n.Propose(data).ok());
    Drain(n, s);
    EXPECT_EQ(s.hs.term, 1u);
    EXPECT_EQ(s.hs.commit, 3u);
  }
  for (uint64_t expected_term = 2; expected_term <= 4; ++expected_term) {
    RaftNode n(SingleVoter(), s.Recover());
    EXPECT_EQ(n.term(), expected_term - 1);
    EXPECT_EQ(n.log().committed(), s.hs.commit);
    n.Campaign();
    EXPECT_EQ(n.role(), Role::kLeader);
    EXPECT_EQ(n.term(), expected_term);
    Drain(n, s);
    EXPECT_EQ(s.hs.term, expected_term);
    EXPECT_EQ(s.entries.back().type, EntryType::kEmpty);
    EXPECT_EQ(s.entries.back().term, expected_term);
  }
  EXPECT_EQ(s.entries.size(), 3u + 3u);
  EXPECT_EQ(s.entries[1].data, "a");
}

TEST(RaftNodeTest, RestartDeliversCommittedEntriesAfterAppliedFromHardStateAndLog) {
  FakeStorage s;
  {
    RaftNode n(SingleVoter(), {});
    n.Campaign();
    Drain(n, s);
    auto data = Data({"a", "b", "c"});
    ASSERT_TRUE(n.Propose(data).ok());
    Drain(n, s);
  }
  Config c = SingleVoter();
  c.applied = 2;
  RaftNode n(c, s.Recover());
  Ready rd = n.GetReady();
  EXPECT_FALSE(rd.hard_state.has_value()) << "nothing changed since the restart";
  EXPECT_TRUE(rd.entries.empty()) << "recovered entries are already stable";
  ASSERT_EQ(rd.committed_entries.size(), 2u);
  EXPECT_EQ(rd.committed_entries[0].index, 3u);
  EXPECT_EQ(rd.committed_entries[1].data, "c");
  n.Advance(rd);
}

TEST(RaftNodeTest, CompactLogDropsOnlyAppliedEntries) {
  RaftNode n(SingleVoter(), {});
  FakeStorage s;
  n.Campaign();
  Drain(n, s);
  auto data = Data({"a", "b", "c"});
  ASSERT_TRUE(n.Propose(data).ok());
  Drain(n, s);
  n.CompactLog(3);
  EXPECT_EQ(n.log().first_index(), 4u);
  EXPECT_EQ(n.log().At(4).data, "c");
  EXPECT_EQ(n.log().Term(3), std::optional<uint64_t>(1));
  auto more = Data({"d"});
  ASSERT_TRUE(n.Propose(more).ok());
  n.CompactLog(10);  // clipped to applied
  EXPECT_EQ(n.log().first_index(), 5u);
  auto committed = Drain(n, s);
  ASSERT_EQ(committed.size(), 1u);
  EXPECT_EQ(committed[0].data, "d");
}

// A deterministic in-memory network of nodes, for the multi-voter paths the cluster issue
// will use.
class Cluster {
 public:
  explicit Cluster(int n) {
    std::vector<uint64_t> ids;
    for (int i = 1; i <= n; ++i) ids.push_back(static_cast<uint64_t>(i));
    for (uint64_t id : ids) {
      Config c;
      c.id = id;
      c.voters = ids;
      storage_[id];
      nodes_[id] = std::make_unique<RaftNode>(c, RecoveredState{});
    }
  }
  RaftNode& node(uint64_t id) { return *nodes_.at(id); }
  void Isolate(uint64_t id) { down_.insert({id, true}); }
  void Heal() { down_.clear(); }
  std::vector<Entry>& committed(uint64_t id) { return committed_[id]; }
  std::vector<ReadState>& reads(uint64_t id) { return reads_[id]; }

  // Processes every node's Ready and delivers messages until nothing moves.
  void Settle() {
    for (int round = 0; round < 1000; ++round) {
      bool moved = false;
      for (auto& [id, n] : nodes_) {
        while (n->HasReady()) {
          moved = true;
          Ready rd = n->GetReady();
          storage_[id].Persist(rd);
          committed_[id].insert(committed_[id].end(), rd.committed_entries.begin(),
                                rd.committed_entries.end());
          reads_[id].insert(reads_[id].end(), rd.read_states.begin(), rd.read_states.end());
          for (Message& m : rd.messages) inflight_.push_back(std::move(m));
          n->Advance(rd);
        }
      }
      while (!inflight_.empty()) {
        moved = true;
        Message m = std::move(inflight_.front());
        inflight_.pop_front();
        if (down_.count(m.from) || down_.count(m.to)) continue;
        nodes_.at(m.to)->Step(std::move(m));
      }
      if (!moved) return;
    }
    FAIL() << "cluster did not settle";
  }

 private:
  std::map<uint64_t, std::unique_ptr<RaftNode>> nodes_;
  std::map<uint64_t, FakeStorage> storage_;
  std::map<uint64_t, std::vector<Entry>> committed_;
  std::map<uint64_t, std::vector<ReadState>> reads_;
  std::map<uint64_t, bool> down_;
  std::deque<Message> inflight_;
};

TEST(RaftClusterTest, ThreeVotersElectReplicateCommitAndServeReadIndex) {
  Cluster c(3);
  c.node(1).Campaign();
  c.Settle();
  ASSERT_EQ(c.node(1).role(), Role::kLeader);
  EXPECT_EQ(c.node(2).leader(), 1u);
  EXPECT_EQ(c.node(3).leader(), 1u);
  auto data = Data({"x", "y"});
  ASSERT_TRUE(c.node(1).Propose(data).ok());
  c.Settle();
  for (uint64_t id : {1u, 2u, 3u}) {
    ASSERT_EQ(c.committed(id).size(), 3u) << "member " << id;
    EXPECT_EQ(c.committed(id)[2].data, "y");
  }
  // A follower forwards proposals and read requests to the leader.
  auto more = Data({"z"});
  ASSERT_TRUE(c.node(3).Propose(more).ok());
  ASSERT_TRUE(c.node(3).ReadIndex(99).ok());
  c.Settle();
  EXPECT_EQ(c.committed(2).back().data, "z");
  ASSERT_EQ(c.reads(3).size(), 1u);
  EXPECT_EQ(c.reads(3)[0].request_id, 99u);
  EXPECT_GE(c.reads(3)[0].index, 3u);
}

TEST(RaftClusterTest, NewLeaderAfterIsolationKeepsCommittedEntries) {
  Cluster c(3);
  c.node(1).Campaign();
  c.Settle();
  auto data = Data({"a"});
  ASSERT_TRUE(c.node(1).Propose(data).ok());
  c.Settle();
  c.Isolate(1);
  // Followers ignore candidates while their leader's lease lasts: let it expire.
  uint64_t leader = 0;
  for (int i = 0; i < 50 && leader == 0; ++i) {
    c.node(2).Tick();
    c.node(3).Tick();
    c.Settle();
    for (uint64_t id : {2u, 3u}) {
      if (c.node(id).role() == Role::kLeader) leader = id;
    }
  }
  ASSERT_NE(leader, 0u);
  const uint64_t other = leader == 2 ? 3 : 2;
  EXPECT_GT(c.node(leader).term(), 1u);
  auto more = Data({"b"});
  ASSERT_TRUE(c.node(leader).Propose(more).ok());
  c.Settle();
  ASSERT_GE(c.committed(other).size(), 4u);
  EXPECT_EQ(c.committed(other)[1].data, "a");
  EXPECT_EQ(c.committed(other).back().data, "b");
  // The old leader rejoins, learns the new term and catches up.
  c.Heal();
  c.node(leader).Tick();
  c.Settle();
  EXPECT_EQ(c.node(1).role(), Role::kFollower);
  EXPECT_EQ(c.node(1).leader(), leader);
  EXPECT_EQ(c.committed(1).back().data, "b");
}

TEST(RaftClusterTest, PreVoteOfAnIsolatedNodeDoesNotRaiseTerms) {
  Cluster c(3);
  c.node(1).Campaign();
  c.Settle();
  c.Isolate(3);
  for (int i = 0; i < 5; ++i) {
    c.node(3).Campaign();
    c.Settle();
  }
  EXPECT_EQ(c.node(3).term(), 1u) << "pre-vote never moves the term without a quorum";
  c.Heal();
  c.node(3).Campaign();  // the others hear from a live leader: the pre-vote fails
  c.Settle();
  EXPECT_EQ(c.node(1).role(), Role::kLeader);
  EXPECT_EQ(c.node(1).term(), 1u);
}

}  // namespace
}  // namespace rusd::raft
