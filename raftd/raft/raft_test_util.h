// Test helpers for the Raft core: an in-memory "disk" per node and a deterministic network
// whose every message can be inspected, held, dropped or delivered by the test.
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "raftd/raft/raft_node.h"

namespace rusd::raft::testing {

inline std::vector<std::string> Data(std::initializer_list<const char*> items) {
  std::vector<std::string> out;
  for (const char* s : items) out.emplace_back(s);
  return out;
}

// What a node persisted: hard state, snapshot point, and the log after it.
struct MemStorage {
  HardState hs;
  SnapshotMeta snap;
  std::vector<Entry> entries;  // entries[i].index == snap.index + 1 + i

  void Persist(const Ready& rd) {
    if (rd.snapshot) {
      snap = *rd.snapshot;
      entries.clear();
    }
    for (const Entry& e : rd.entries) {
      entries.resize(e.index - snap.index - 1);  // overwrite semantics, as the WAL replays
      entries.push_back(e);
    }
    if (rd.hard_state) hs = *rd.hard_state;
  }
  void Compact(const SnapshotMeta& meta) {
    if (meta.index <= snap.index) return;
    entries.erase(entries.begin(), entries.begin() + static_cast<long>(meta.index - snap.index));
    snap = meta;
  }
  RecoveredState Recover() const {
    RecoveredState r{hs, snap.index, snap.term, entries};
    if (snap.index > 0) r.conf_state = snap.conf;
    return r;
  }
};

inline Config MakeConfig(uint64_t id, std::vector<uint64_t> voters,
                         std::vector<uint64_t> learners = {}) {
  Config c;
  c.id = id;
  c.voters = std::move(voters);
  c.learners = std::move(learners);
  return c;
}

class TestCluster {
 public:
  // Voters 1..n.
  explicit TestCluster(int n, std::function<void(Config&)> tune = nullptr) : tune_(tune) {
    for (int i = 1; i <= n; ++i) bootstrap_.push_back(static_cast<uint64_t>(i));
    for (uint64_t id : bootstrap_) Start(id);
  }

  // Starts (or restarts from its storage) node `id` with the bootstrap configuration.
  void Start(uint64_t id) {
    Config c = MakeConfig(id, bootstrap_);
    if (tune_) tune_(c);
    nodes_[id] = std::make_unique<RaftNode>(c, storage_[id].Recover());
  }

  // Starts node `id` with an explicit configuration (e.g. a joiner that knows nobody).
  void StartWith(const Config& c) {
    nodes_[c.id] = std::make_unique<RaftNode>(c, storage_[c.id].Recover());
  }

  RaftNode& node(uint64_t id) { return *nodes_.at(id); }
  MemStorage& storage(uint64_t id) { return storage_[id]; }
  std::vector<Entry>& committed(uint64_t id) { return committed_[id]; }
  std::vector<ReadState>& reads(uint64_t id) { return reads_[id]; }
  std::deque<Message>& network() { return network_; }
  void Isolate(uint64_t id) { isolated_.insert(id); }
  void Heal() { isolated_.clear(); }
  // Messages for which `drop` says true are lost.
  void SetDrop(std::function<bool(const Message&)> drop) { drop_ = std::move(drop); }
  // Every message ever sent (after persisting), for counting.
  const std::vector<Message>& sent() const { return sent_; }
  void ClearSent() { sent_.clear(); }

  // Runs every node's Ready cycle once (messages go to the network, not delivered).
  void ProcessReadies() {
    for (auto& [id, n] : nodes_) {
      while (n->HasReady()) {
        Ready rd = n->GetReady();
        storage_[id].Persist(rd);
        if (rd.snapshot) installed_[id].push_back(*rd.snapshot);
        committed_[id].insert(committed_[id].end(), rd.committed_entries.begin(),
                              rd.committed_entries.end());
        reads_[id].insert(reads_[id].end(), rd.read_states.begin(), rd.read_states.end());
        for (Message& m : rd.messages) {
          sent_.push_back(m);
          network_.push_back(std::move(m));
        }
        n->Advance(rd);
      }
    }
  }

  // Delivers (or drops) one message; false if the network is empty.
  bool DeliverOne() {
    if (network_.empty()) return false;
    Message m = std::move(network_.front());
    network_.pop_front();
    if (isolated_.count(m.from) || isolated_.count(m.to) || !nodes_.count(m.to)) return true;
    if (drop_ && drop_(m)) return true;
    if (m.type == MessageType::kSnapshot) ++snapshots_delivered_;
    nodes_.at(m.to)->Step(std::move(m));
    return true;
  }

  // Processes readies and delivers messages until nothing moves.
  void Settle() {
    for (int round = 0; round < 100000; ++round) {
      ProcessReadies();
      if (network_.empty()) return;
      while (DeliverOne()) {
      }
    }
    FAIL() << "cluster did not settle";
  }

  void TickAll(int times = 1) {
    for (int i = 0; i < times; ++i) {
      for (auto& [id, n] : nodes_) n->Tick();
      Settle();
    }
  }

  // Elects `id` and settles.
  void Elect(uint64_t id) {
    node(id).Campaign();
    Settle();
    ASSERT_EQ(node(id).role(), Role::kLeader);
  }

  void Propose(uint64_t id, std::initializer_list<const char*> items) {
    auto d = Data(items);
    ASSERT_TRUE(node(id).Propose(d).ok());
  }

  size_t Count(MessageType t, uint64_t to = 0) const {
    size_t n = 0;
    for (const Message& m : sent_) n += m.type == t && (to == 0 || m.to == to);
    return n;
  }
  const std::vector<SnapshotMeta>& installed(uint64_t id) { return installed_[id]; }
  int snapshots_delivered() const { return snapshots_delivered_; }

 private:
  std::function<void(Config&)> tune_;
  std::vector<uint64_t> bootstrap_;
  std::map<uint64_t, std::unique_ptr<RaftNode>> nodes_;
  std::map<uint64_t, MemStorage> storage_;
  std::map<uint64_t, std::vector<Entry>> committed_;
  std::map<uint64_t, std::vector<ReadState>> reads_;
  std::map<uint64_t, std::vector<SnapshotMeta>> installed_;
  std::deque<Message> network_;
  std::vector<Message> sent_;
  std::set<uint64_t> isolated_;
  std::function<bool(const Message&)> drop_;
  int snapshots_delivered_ = 0;
};

}  // namespace rusd::raft::testing
