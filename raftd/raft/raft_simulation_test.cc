// Seeded, deterministic simulation of a cluster of RaftNodes (3 or 5 voters plus two
// members-to-be) over a hostile network and unreliable disks:
//  - network: messages dropped, duplicated, delayed and reordered; partitions into two
//    random sides; heals;
//  - disks: a node crashes and restarts from what it persisted; a crash in the middle of
//    a Ready tears the WAL tail (a random prefix of its entries survives, its hard state
//    does not), and a commit-only hard state (written without fsync, as raftd does) is
//    lost;
//  - membership: learners added, promoted, voters and learners removed, leadership
//    transferred; logs compacted and snapshots sent to followers that fall behind them.
// After every step it checks: at most one leader per term; log matching (an (index, term)
// pair names the same entry and the same predecessor term everywhere); leader
// completeness (a new leader holds every entry committed before it); state-machine safety
// (every node applies the same entry at each index, in index order, snapshots included);
// read-index linearizability (an answer is never below an index committed before the read
// was asked). At the end the network heals and the cluster must elect a leader, commit a
// fresh proposal, and every live member must have applied every entry ever committed.
//
// Replay one seed:  RUSD_RAFT_SIM_SEED=1234 build/bin/raftd_test --gtest_filter='RaftSimulation*'
//   (RUSD_RAFT_SIM_TRACE=1 prints every action of that run)
// Full sweep:       RUSD_RAFT_SIM_SEEDS=1-5000 build/bin/raftd_test --gtest_filter='RaftSimulation*'
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "raftd/raft/conf_change.h"
#include "raftd/raft/raft_node.h"

namespace rusd::raft {
namespace {

// One node's disk. `hs` is what an fsync made durable; `unsynced_hs` a commit-only change
// written without one (lost by a crash).
struct Disk {
  HardState hs;
  std::optional<HardState> unsynced_hs;
  SnapshotMeta snap;
  std::vector<Entry> sm_at_snap;  // the state machine's contents at snap.index
  std::vector<Entry> entries;     // entries[i].index == snap.index + 1 + i
};

struct InFlight {
  Message m;
  std::shared_ptr<const std::vector<Entry>> snapshot_data;  // kSnapshot only
};

struct Trace {
  bool on = false;
  std::ostringstream out;
  template <typename... A>
  void operator()(const A&... a) {
    if (!on) return;
    (out << ... << a);
    out << '\n';
  }
};

// How often each action happens (relative weights) and how lossy the network is.
struct Mix {
  int tick, deliver, propose, read, conf, transfer, compact, partition, heal, crash,
      crash_leader;
  int drop_percent;
  int total() const {
    return tick + deliver + propose + read + conf + transfer + compact + partition + heal +
           crash + crash_leader;
  }
};
// Steady: mostly a working cluster with occasional faults. Stormy: leaders crash often,
// partitions come and go, a quarter of the messages are lost.
constexpr Mix kSteady{300, 500, 80, 30, 20, 7, 33, 10, 15, 5, 2, 10};
constexpr Mix kStormy{300, 400, 120, 30, 10, 10, 30, 20, 20, 8, 8, 25};

class Simulation {
 public:
  Simulation(uint64_t seed, int voters, bool trace)
      : rng_(seed), seed_(seed), mix_(seed % 4 < 2 ? kSteady : kStormy) {
    trace_.on = trace;
    for (int i = 1; i <= voters; ++i) bootstrap_.push_back(static_cast<uint64_t>(i));
    ids_ = bootstrap_;
    // Two members-to-be: running, knowing the bootstrap configuration, members of nothing.
    ids_.push_back(static_cast<uint64_t>(voters + 1));
    ids_.push_back(static_cast<uint64_t>(voters + 2));
    for (uint64_t id : ids_) Restart(id);
    if (seed % 3 == 1) slow_ = Pick();
  }

  std::string trace() const { return trace_.out.str(); }

  // Every node's view, for a failure message.
  std::string Describe() const {
    std::ostringstream o;
    for (uint64_t id : ids_) {
      const RaftNode& n = *nodes_.at(id);
      o << "node " << id << ": " << RoleName(n.role()) << " term " << n.term() << " leader "
        << n.leader() << " log (" << n.log().first_index() - 1 << ", " << n.log().last_index()
        << "] commit " << n.log().committed() << " applied " << applied_.at(id).size()
        << " voters";
      for (uint64_t v : n.conf_state().voters) o << ' ' << v;
      o << " learners";
      for (uint64_t v : n.conf_state().learners) o << ' ' << v;
      if (n.lead_transferee()) o << " transferring to " << n.lead_transferee();
      for (const auto& [pid, pr] : n.progress()) {
        o << "\n    " << pid << ": " << ProgressStateName(pr.state) << " match " << pr.match
          << " next " << pr.next << (pr.probe_sent ? " probe-sent" : "") << " inflight "
          << pr.inflights.count() << (pr.recent_active ? " active" : "");
      }
      o << '\n';
    }
    o << "committed up to " << (committed_.empty() ? 0 : committed_.rbegin()->first) << "\n";
    return o.str();
  }
  size_t committed_count() const { return committed_.size(); }
  int snapshots_installed() const { return snapshots_installed_; }
  int conf_changes() const { return conf_changes_applied_; }

  void Run(int steps) {
    for (int step = 0; step < steps && !::testing::Test::HasFailure(); ++step) {
      // Weighted pick of one action; the weights depend on the seed's profile.
      int a = Uniform(mix_.total());
      auto take = [&a](int w) {
        a -= w;
        return a < 0;
      };
      if (take(mix_.tick)) {
        const uint64_t id = Pick();
        trace_("tick ", id);
        nodes_[id]->Tick();
      } else if (take(mix_.deliver)) {
        Deliver(/*lossy=*/true);
      } else if (take(mix_.propose)) {
        Propose();
      } else if (take(mix_.read)) {
        Read();
      } else if (take(mix_.conf)) {
        ChangeConf();
      } else if (take(mix_.transfer)) {
        Transfer();
      } else if (take(mix_.compact)) {
        Compact(Pick());
      } else if (take(mix_.partition)) {
        Partition();
      } else if (take(mix_.heal)) {
        trace_("heal");
        side_.clear();
      } else if (take(mix_.crash)) {
        const uint64_t id = Pick();
        trace_("crash ", id);
        Restart(id);
      } else {
        // Crash whoever leads: the path to Figure 8 of the Raft paper.
        for (uint64_t id : ids_) {
          if (nodes_[id]->role() != Role::kLeader) continue;
          trace_("crash leader ", id);
          Restart(id);
          break;
        }
      }
      ProcessReadies();
      CheckLeaders();
    }
  }

  // Heals everything and runs a perfect network until a leader commits a fresh proposal
  // and every live member has applied everything ever committed.
  bool ConvergesAfterHealing() {
    side_.clear();
    healing_ = true;
    for (int round = 0; round < 3000 && !::testing::Test::HasFailure(); ++round) {
      for (uint64_t id : ids_) nodes_[id]->Tick();
      ProcessReadies();
      while (!network_.empty() && !::testing::Test::HasFailure()) {
        InFlight f = std::move(network_.front());
        network_.erase(network_.begin());
        Step(std::move(f));
        ProcessReadies();
      }
      CheckLeaders();
      for (uint64_t id : ids_) {
        RaftNode& n = *nodes_[id];
        if (n.role() != Role::kLeader || final_index_ != 0) continue;
        std::string data = "final";
        std::span<std::string> one(&data, 1);
        (void)n.Propose(one);
      }
      if (final_index_ == 0) continue;
      // Every member of the leader's configuration has applied up to the final entry.
      // The leader of the highest term: without check-quorum and pre-vote a deposed leader
      // that nobody answers stays one, in its old term, forever (as in etcd).
      RaftNode* leader = nullptr;
      for (uint64_t id : ids_) {
        RaftNode* n = nodes_[id].get();
        if (n->role() == Role::kLeader && (!leader || n->term() > leader->term())) leader = n;
      }
      if (!leader) continue;
      bool all = true;
      for (auto* group : {&leader->conf_state().voters, &leader->conf_state().learners}) {
        for (uint64_t id : *group) all &= applied_[id].size() >= committed_.rbegin()->first;
      }
      if (!all) continue;
      // And a linearizable read is answered (asked again if leadership moved meanwhile).
      if (final_read_answered_) return true;
      if (final_read_ == 0 || round % 20 == 0) {
        final_read_ = ++next_read_;
        uint64_t floor = 0;
        for (uint64_t n : ids_) floor = std::max(floor, nodes_[n]->log().committed());
        read_floor_[final_read_] = floor;
        (void)leader->ReadIndex(final_read_);
      }
    }
    return false;
  }

 private:
  int Uniform(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  uint64_t Pick() { return ids_[static_cast<size_t>(Uniform(static_cast<int>(ids_.size())))]; }

  void Restart(uint64_t id) {
    Disk& d = disks_[id];
    d.unsynced_hs.reset();  // never fsynced: gone
    Config c;
    c.id = id;
    c.voters = bootstrap_;
    c.election_tick = 10;
    c.max_inflight_messages = 1 + static_cast<size_t>(seed_ % 8);
    c.max_entries_per_message = 1 + static_cast<size_t>(seed_ % 5);
    c.max_inflight_bytes = seed_ % 3 == 0 ? 8 : 0;  // 8 bytes: about one entry in flight
    // Some seeds run without pre-vote or without check-quorum (both are options).
    c.pre_vote = seed_ % 5 != 0;
    c.check_quorum = seed_ % 7 != 0;
    // Half the seeds defer commit announcements as raftd does; ProcessReadies flushes them
    // after a random number of rounds (raftd: within commit_announce_delay).
    c.defer_commit_announcements = seed_ % 2 == 0;
    // Distinct per (node, incarnation): two nodes drawing the same election timeouts
    // forever would split every vote (7919 and 104729 are coprime primes).
    c.random_seed = seed_ * 1000003 + id * 7919 + restarts_++ * 104729;
    c.applied = d.snap.index;
    RecoveredState r{d.hs, d.snap.index, d.snap.term, d.entries};
    if (d.snap.index > 0) r.conf_state = d.snap.conf;
    nodes_[id] = std::make_unique<RaftNode>(c, std::move(r));
    applied_[id] = d.sm_at_snap;
  }

  void Partition() {
    side_.clear();
    for (uint64_t id : ids_) side_[id] = Uniform(2);
    trace_("partition");
  }

  bool Connected(uint64_t a, uint64_t b) const {
    if (side_.empty()) return true;
    return side_.at(a) == side_.at(b);
  }

  void Deliver(bool lossy) {
    if (network_.empty()) return;
    const size_t i = static_cast<size_t>(Uniform(static_cast<int>(network_.size())));
    InFlight f = network_[i];  // a random pick: delay and reordering
    const int fate = Uniform(100);
    if (fate >= 5) network_.erase(network_.begin() + static_cast<long>(i));  // else duplicate
    if (lossy && fate >= 100 - mix_.drop_percent) {
      if (f.m.type == MessageType::kSnapshot) nodes_[f.m.from]->ReportSnapshot(f.m.to, false);
      return;  // dropped
    }
    Step(std::move(f));
  }

  void Step(InFlight f) {
    Message& m = f.m;
    if (!Connected(m.from, m.to)) {
      if (m.type == MessageType::kSnapshot) nodes_[m.from]->ReportSnapshot(m.to, false);
      return;
    }
    trace_("deliver ", MessageTypeName(m.type), " ", m.from, "->", m.to, " t", m.term, " i",
           m.index, " lt", m.log_term, " c", m.commit, " n", m.entries.size(),
           m.reject ? " reject" : "");
    if (m.type == MessageType::kSnapshot) {
      incoming_snapshot_[m.to][m.snapshot.index] = f.snapshot_data;
      nodes_[m.from]->ReportSnapshot(m.to, true);
    }
    nodes_[m.to]->Step(std::move(m));
  }

  void Propose() {
    const uint64_t id = Pick();
    std::string data = std::string("p").append(std::to_string(next_proposal_++));
    trace_("propose ", data, " at ", id);
    std::span<std::string> one(&data, 1);
    (void)nodes_[id]->Propose(one);
  }

  void Read() {
    const uint64_t id = Pick();
    const uint64_t rid = ++next_read_;
    // Anything committed anywhere before the read is asked must be visible to it.
    uint64_t floor = 0;
    for (uint64_t n : ids_) floor = std::max(floor, nodes_[n]->log().committed());
    read_floor_[rid] = floor;
    trace_("read ", rid, " at ", id, " floor ", floor);
    (void)nodes_[id]->ReadIndex(rid);
  }

  void ChangeConf() {
    // Decide from some node's view; the leader refuses what does not fit.
    const uint64_t id = Pick();
    const ConfState& conf = nodes_[id]->conf_state();
    ConfChange cc;
    const int kind = Uniform(4);
    const uint64_t target = Pick();
    if (removed_.count(target)) return;  // ids are never reused, as in etcd
    const bool voter = std::binary_search(conf.voters.begin(), conf.voters.end(), target);
    const bool learner = std::binary_search(conf.learners.begin(), conf.learners.end(), target);
    if (kind == 0 && !voter && !learner) {
      cc.type = ConfChangeType::kAddLearnerNode;
    } else if (kind == 1 && learner) {
      cc.type = ConfChangeType::kAddNode;
    } else if (kind == 2 && (learner || (voter && conf.voters.size() > 2))) {
      cc.type = ConfChangeType::kRemoveNode;
    } else {
      return;
    }
    cc.node_id = target;
    trace_("conf change ", static_cast<int>(cc.type), " ", target, " at ", id);
    (void)nodes_[id]->ProposeConfChange(cc);
  }

  void Transfer() {
    const uint64_t id = Pick();
    const uint64_t to = Pick();
    trace_("transfer to ", to, " at ", id);
    (void)nodes_[id]->TransferLeadership(to);
  }

  void Compact(uint64_t id) {
    RaftNode& n = *nodes_[id];
    // Our own state machine's position: the core may be ahead of it (a restored snapshot
    // whose Ready this node has not handled yet).
    const uint64_t applied = std::min<uint64_t>(n.log().applied(), applied_[id].size());
    const uint64_t keep = static_cast<uint64_t>(Uniform(4));
    if (applied <= keep) return;
    n.CompactLog(applied - keep);
    const SnapshotMeta meta = n.snapshot_meta();
    Disk& d = disks_[id];
    // meta.index > applied: the core's snapshot point is a restored snapshot whose Ready
    // is still to come (it persists it), not our compaction.
    if (meta.index <= d.snap.index || meta.index > applied) return;
    trace_("compact ", id, " to ", meta.index);
    ASSERT_GE(applied_[id].size(), meta.index);
    d.entries.erase(d.entries.begin(),
                    d.entries.begin() + static_cast<long>(meta.index - d.snap.index));
    d.snap = meta;
    d.sm_at_snap.assign(applied_[id].begin(), applied_[id].begin() + static_cast<long>(meta.index));
  }

  // The caller's Ready loop, with a disk that may tear.
  void ProcessReadies() {
    for (uint64_t id : ids_) {
      // A slow node (slow disk, busy loop) handles its Readies late: several messages and
      // ticks reach the core between two Readies, unstable entries get replaced.
      if (id == slow_ && !healing_ && Uniform(100) < 70) continue;
      if (nodes_[id]->CommitAnnouncementDeferred() && (healing_ || Uniform(4) == 0)) {
        nodes_[id]->FlushCommitAnnouncements();
      }
      for (int guard = 0; nodes_[id]->HasReady() && !::testing::Test::HasFailure(); ++guard) {
        ASSERT_LT(guard, 10000) << "node " << id << " never runs out of Readies";
        RaftNode& n = *nodes_[id];
        Ready rd = n.GetReady();
        Disk& d = disks_[id];
        if (!healing_ && Uniform(1000) < 3) {
          // Crash while writing this Ready: a prefix of its entries reaches the disk, the
          // hard state record after them does not, no message leaves. Or the write and
          // its fsync completed and the crash came before anything was sent.
          if (!rd.snapshot) {
            const bool all = Uniform(3) == 0;
            const size_t keep =
                all ? rd.entries.size()
                    : static_cast<size_t>(Uniform(static_cast<int>(rd.entries.size()) + 1));
            for (size_t i = 0; i < keep; ++i) PersistEntry(id, d, rd.entries[i]);
            if (all && rd.hard_state) {
              d.hs = *rd.hard_state;
              d.unsynced_hs.reset();
            }
          }
          trace_("torn crash ", id);
          Restart(id);
          break;
        }
        // Persist: snapshot, entries, hard state; then one fsync unless commit-only.
        bool must_sync = !rd.entries.empty() || rd.snapshot.has_value();
        if (rd.snapshot) InstallSnapshot(id, d, *rd.snapshot);
        for (const Entry& e : rd.entries) PersistEntry(id, d, e);
        const HardState last = d.unsynced_hs.value_or(d.hs);
        if (rd.hard_state) {
          must_sync |= rd.hard_state->term != last.term || rd.hard_state->vote != last.vote;
        }
        if (must_sync) {
          d.hs = rd.hard_state.value_or(last);
          d.unsynced_hs.reset();
        } else if (rd.hard_state) {
          d.unsynced_hs = *rd.hard_state;
        }
        for (const Entry& e : rd.committed_entries) Apply(id, e);
        for (const ReadState& rs : rd.read_states) {
          auto it = read_floor_.find(rs.request_id);
          ASSERT_NE(it, read_floor_.end());
          ASSERT_GE(rs.index, it->second)
              << "read " << rs.request_id << " at node " << id << " misses committed entries";
          // Kept: a duplicated request or answer may answer the same read again.
          if (rs.request_id == final_read_) final_read_answered_ = true;
        }
        std::vector<uint64_t> snapshot_failed;
        for (Message& m : rd.messages) {
          InFlight f{std::move(m), nullptr};
          if (f.m.type == MessageType::kSnapshot) {
            if (f.m.snapshot != d.snap) {
              // We compacted further since the core asked: send the newer snapshot, or
              // report failure and let the core ask again.
              ASSERT_GT(d.snap.index, f.m.snapshot.index);
              if (Uniform(2) == 0) {
                snapshot_failed.push_back(f.m.to);
                continue;
              }
              f.m.snapshot = d.snap;
            }
            f.snapshot_data = std::make_shared<const std::vector<Entry>>(d.sm_at_snap);
          }
          if (network_.size() < 5000) network_.push_back(std::move(f));
        }
        if (rd.soft_state && rd.soft_state->role == Role::kLeader) CheckNewLeader(id);
        n.Advance(rd);
        for (uint64_t to : snapshot_failed) n.ReportSnapshot(to, false);
      }
    }
  }

  void PersistEntry(uint64_t id, Disk& d, const Entry& e) {
    // Log matching: an (index, term) pair always names the same entry after the same term.
    const RaftNode& n = *nodes_[id];
    std::optional<uint64_t> prev_term = n.log().Term(e.index - 1);
    auto [it, inserted] = entries_seen_.try_emplace({e.index, e.term}, e, prev_term);
    if (!inserted) {
      ASSERT_EQ(it->second.first.data, e.data) << "log matching at " << e.index << "/" << e.term;
      ASSERT_EQ(it->second.first.type, e.type) << "log matching at " << e.index;
      if (prev_term && it->second.second) {
        ASSERT_EQ(*prev_term, *it->second.second)
            << "log matching: entries before " << e.index << "/" << e.term << " differ";
      }
    }
    ASSERT_GT(e.index, d.snap.index);
    d.entries.resize(std::min<size_t>(d.entries.size(), e.index - d.snap.index - 1));
    ASSERT_EQ(d.entries.size(), e.index - d.snap.index - 1) << "gap in node " << id << "'s WAL";
    d.entries.push_back(e);
  }

  void InstallSnapshot(uint64_t id, Disk& d, const SnapshotMeta& meta) {
    auto data = incoming_snapshot_[id][meta.index];
    ASSERT_TRUE(data) << "node " << id << " restored a snapshot it never received";
    incoming_snapshot_[id].clear();
    ASSERT_EQ(data->size(), meta.index);
    for (const Entry& e : *data) CheckCommitted(id, e);
    d.snap = meta;
    d.sm_at_snap = *data;
    d.entries.clear();
    applied_[id] = *data;
    ++snapshots_installed_;
    trace_("node ", id, " installs snapshot ", meta.index);
  }

  void CheckCommitted(uint64_t id, const Entry& e) {
    auto [it, inserted] = committed_.emplace(e.index, e);
    if (!inserted) {
      ASSERT_EQ(it->second.term, e.term) << "index " << e.index << " node " << id;
      ASSERT_EQ(it->second.data, e.data) << "index " << e.index << " node " << id;
    }
  }

  void Apply(uint64_t id, const Entry& e) {
    std::vector<Entry>& sm = applied_[id];
    ASSERT_EQ(e.index, sm.size() + 1) << "node " << id << " applies out of order";
    CheckCommitted(id, e);
    sm.push_back(e);
    if (e.data == "final") final_index_ = e.index;
    if (e.type == EntryType::kConfChange) {
      Result<ConfChange> cc = DecodeConfChange(e.data);
      ASSERT_TRUE(cc.ok());
      if (cc->type == ConfChangeType::kRemoveNode) removed_.insert(cc->node_id);
      ++conf_changes_applied_;
    }
  }

  void CheckNewLeader(uint64_t id) {
    // Leader completeness: every entry committed so far is in the new leader's log (or
    // inside its snapshot).
    const RaftNode& n = *nodes_[id];
    const uint64_t snap = n.log().first_index() - 1;
    for (auto it = committed_.upper_bound(snap); it != committed_.end(); ++it) {
      ASSERT_EQ(n.log().Term(it->first), std::optional<uint64_t>(it->second.term))
          << "leader " << id << " of term " << n.term() << " lacks committed entry "
          << it->first;
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
  Mix mix_;
  Trace trace_;
  std::vector<uint64_t> bootstrap_;
  std::vector<uint64_t> ids_;
  std::map<uint64_t, std::unique_ptr<RaftNode>> nodes_;
  std::map<uint64_t, Disk> disks_;
  std::map<uint64_t, std::vector<Entry>> applied_;  // each node's state machine
  // Snapshot data received per node, by snapshot index, until a Ready installs one.
  std::map<uint64_t, std::map<uint64_t, std::shared_ptr<const std::vector<Entry>>>>
      incoming_snapshot_;
  std::vector<InFlight> network_;
  std::map<uint64_t, int> side_;  // partition side per node; empty: fully connected
  std::map<uint64_t, uint64_t> leaders_;  // term -> leader
  std::map<uint64_t, Entry> committed_;   // index -> the entry every node must apply there
  std::map<std::pair<uint64_t, uint64_t>, std::pair<Entry, std::optional<uint64_t>>>
      entries_seen_;  // (index, term) -> (entry, term before it)
  std::map<uint64_t, uint64_t> read_floor_;  // read request id -> minimum answer
  std::set<uint64_t> removed_;
  uint64_t next_proposal_ = 0;
  uint64_t next_read_ = 0;
  uint64_t restarts_ = 0;
  uint64_t final_index_ = 0;
  uint64_t final_read_ = 0;
  bool final_read_answered_ = false;
  bool healing_ = false;
  uint64_t slow_ = 0;
  int snapshots_installed_ = 0;
  int conf_changes_applied_ = 0;
};

// Seeds to run: RUSD_RAFT_SIM_SEED=n (one, traced with RUSD_RAFT_SIM_TRACE=1), or
// RUSD_RAFT_SIM_SEEDS=a-b; default the CI slice.
std::pair<uint64_t, uint64_t> SeedRange(bool* single) {
  *single = false;
  if (const char* one = std::getenv("RUSD_RAFT_SIM_SEED")) {
    *single = true;
    const uint64_t s = std::strtoull(one, nullptr, 10);
    return {s, s};
  }
  if (const char* range = std::getenv("RUSD_RAFT_SIM_SEEDS")) {
    std::string r(range);
    const size_t dash = r.find('-');
    if (dash != std::string::npos) {
      return {std::strtoull(r.substr(0, dash).c_str(), nullptr, 10),
              std::strtoull(r.substr(dash + 1).c_str(), nullptr, 10)};
    }
  }
  return {1, 5000};
}

TEST(RaftSimulationTest, SafetyAndLivenessUnderFaultsMembershipChangesAndSnapshots) {
  bool single = false;
  const auto [first, last] = SeedRange(&single);
  const bool trace = single && std::getenv("RUSD_RAFT_SIM_TRACE") != nullptr;
  size_t total_committed = 0;
  int snapshots = 0;
  int conf_changes = 0;
  for (uint64_t seed = first; seed <= last; ++seed) {
    const std::string replay = "seed " + std::to_string(seed) +
                               " (replay: RUSD_RAFT_SIM_SEED=" + std::to_string(seed) +
                               " RUSD_RAFT_SIM_TRACE=1 raftd_test"
                               " --gtest_filter='RaftSimulation*')";
    SCOPED_TRACE(replay);
    Simulation sim(seed, seed % 2 == 0 ? 3 : 5, trace);
    sim.Run(3000);
    if (!HasFailure()) {
      EXPECT_TRUE(sim.ConvergesAfterHealing()) << "no progress after healing:\n"
                                               << sim.Describe();
    }
    if (trace) std::fputs(sim.trace().c_str(), stdout);
    if (HasFailure()) return;
    total_committed += sim.committed_count();
    snapshots += sim.snapshots_installed();
    conf_changes += sim.conf_changes();
  }
  std::printf("simulation: seeds %lu-%lu, %zu committed entries checked, %d snapshots "
              "installed, %d configuration changes applied\n",
              static_cast<unsigned long>(first), static_cast<unsigned long>(last),
              total_committed, snapshots, conf_changes);
  if (!single) {
    EXPECT_GT(total_committed, (last - first + 1) * 5) << "the runs must commit to check anything";
    EXPECT_GT(snapshots, 0);
    EXPECT_GT(conf_changes, 0);
  }
}

}  // namespace
}  // namespace rusd::raft
