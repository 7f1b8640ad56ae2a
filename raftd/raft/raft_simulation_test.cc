// Seeded, deterministic simulation of a cluster of RaftNodes over a hostile network:
// messages are dropped, duplicated and reordered, nodes crash and restart from what they
// persisted, partitions come and go. Checks Raft's safety properties after every step:
// at most one leader per term, and every node applies the same entry at each index.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <cstdio>
#include <random>

#include "raftd/raft/raft_node.h"

namespace rusd::raft {
namespace {

struct Storage {
  HardState hs;
  std::vector<Entry> entries;
};

class Simulation {
 public:
  Simulation(uint64_t seed, int nodes) : rng_(seed), seed_(seed) {
    for (int i = 1; i <= nodes; ++i) ids_.push_back(static_cast<uint64_t>(i));
    for (uint64_t id : ids_) Restart(id);
  }

  void Run(int steps) {
    for (int step = 0; step < steps && !::testing::Test::HasFailure(); ++step) {
      const int action = Uniform(100);
      if (action < 30) {
        nodes_[Pick()]->Tick();
      } else if (action < 85) {
        Deliver();
      } else if (action < 95) {
        Propose();
      } else if (action < 97) {
        Partition();
      } else if (action < 98) {
        Restart(Pick());
      } else {
        partitioned_ = 0;
      }
      ProcessReadies();
      CheckLeaders();
    }
  }

  // Heals everything and runs the cluster until some leader commits a fresh proposal.
  bool CommitsAfterHealing() {
    partitioned_ = 0;
    for (int round = 0; round < 2000; ++round) {
      for (uint64_t id : ids_) nodes_[id]->Tick();
      ProcessReadies();
      while (!network_.empty()) {
        Message m = std::move(network_.front());
        network_.erase(network_.begin());
        Step(std::move(m));
        ProcessReadies();
      }
      CheckLeaders();
      for (uint64_t id : ids_) {
        if (nodes_[id]->role() != Role::kLeader) continue;
        const std::string marker = "final";
        std::string data = marker;
        std::span<std::string> one(&data, 1);
        if (!proposed_final_ && nodes_[id]->Propose(one).ok()) proposed_final_ = true;
      }
      for (const auto& [index, e] : committed_) {
        if (e.data == "final") return true;
      }
    }
    return false;
  }

  size_t committed_count() const { return committed_.size(); }

 private:
  int Uniform(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  uint64_t Pick() { return ids_[static_cast<size_t>(Uniform(static_cast<int>(ids_.size())))]; }

  void Restart(uint64_t id) {
    Config c;
    c.id = id;
    c.voters = ids_;
    c.election_tick = 10;
    c.random_seed = seed_ * 31 + id + restarts_++;
    const Storage& s = storage_[id];
    nodes_[id] = std::make_unique<RaftNode>(c, RecoveredState{s.hs, 0, 0, s.entries});
    applied_[id] = 0;
  }

  void Partition() {
    partitioned_ = Pick();  // one node cut off from the others
  }

  bool Connected(uint64_t a, uint64_t b) const {
    return partitioned_ == 0 || (a != partitioned_ && b != partitioned_);
  }

  void Deliver() {
    if (network_.empty()) return;
    const size_t i = static_cast<size_t>(Uniform(static_cast<int>(network_.size())));
    Message m = network_[i];
    const int fate = Uniform(100);
    if (fate >= 5) network_.erase(network_.begin() + static_cast<long>(i));  // else duplicate
    if (fate >= 90) return;  // dropped
    Step(std::move(m));
  }

  void Step(Message m) {
    if (!Connected(m.from, m.to)) return;
    nodes_[m.to]->Step(std::move(m));
  }

  void Propose() {
    const uint64_t id = Pick();
    std::string data("p");
    data += std::to_string(next_proposal_++);
    std::span<std::string> one(&data, 1);
    (void)nodes_[id]->Propose(one);
  }

  void ProcessReadies() {
    for (uint64_t id : ids_) {
      RaftNode& n = *nodes_[id];
      while (n.HasReady()) {
        Ready rd = n.GetReady();
        Storage& s = storage_[id];
        if (rd.hard_state) s.hs = *rd.hard_state;
        for (const Entry& e : rd.entries) {
          s.entries.resize(e.index - 1);
          s.entries.push_back(e);
        }
        for (const Entry& e : rd.committed_entries) {
          ASSERT_EQ(e.index, applied_[id] + 1) << "node " << id << " applies out of order";
          applied_[id] = e.index;
          auto [it, inserted] = committed_.emplace(e.index, e);
          if (!inserted) {
            ASSERT_EQ(it->second.term, e.term) << "index " << e.index << " node " << id;
            ASSERT_EQ(it->second.data, e.data) << "index " << e.index << " node " << id;
          }
        }
        for (Message& m : rd.messages) {
          if (network_.size() < 10000) network_.push_back(std::move(m));
        }
        n.Advance(rd);
      }
    }
  }

  void CheckLeaders() {
    for (uint64_t id : ids_) {
      const RaftNode& n = *nodes_[id];
      if (n.role() != Role::kLeader) continue;
      auto [it, inserted] = leaders_.emplace(n.term(), id);
      ASSERT_EQ(it->second, id) << "two leaders in term " << n.term();
    }
  }

  std::mt19937_64 rng_;
  uint64_t seed_;
  std::vector<uint64_t> ids_;
  std::map<uint64_t, std::unique_ptr<RaftNode>> nodes_;
  std::map<uint64_t, Storage> storage_;
  std::map<uint64_t, uint64_t> applied_;
  std::vector<Message> network_;
  std::map<uint64_t, uint64_t> leaders_;  // term -> leader
  std::map<uint64_t, Entry> committed_;   // index -> the entry every node must apply there
  uint64_t partitioned_ = 0;
  uint64_t next_proposal_ = 0;
  uint64_t restarts_ = 0;
  bool proposed_final_ = false;
};

TEST(RaftSimulationTest, SafetyHoldsUnderLossReorderDuplicationCrashesAndPartitions) {
  size_t total_committed = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Simulation sim(seed, seed % 2 == 0 ? 3 : 5);
    sim.Run(3000);
    if (HasFailure()) return;
    ASSERT_TRUE(sim.CommitsAfterHealing()) << "no progress after healing";
    if (HasFailure()) return;
    total_committed += sim.committed_count();
  }
  std::printf("simulation: %zu committed entries checked over 300 seeds\n", total_committed);
  EXPECT_GT(total_committed, 300u * 5) << "the runs must commit entries to check anything";
}

}  // namespace
}  // namespace rusd::raft
