// RaftNode: the consensus core of raftd, a deterministic state machine in the style of
// etcd's raft package. It never touches a socket, a file or a clock: the caller feeds it
// inputs and carries out the Ready batches it produces.
//
// Inputs:   Tick() (one logical clock tick), Step(peer message), Propose(data batch),
//           ReadIndex(request id), Campaign().
// Output:   GetReady() → Ready{hard state and entries to persist, messages to send,
//           committed entries to apply, read states, soft state}; then Advance(ready).
//
// The caller's loop (raftd/raft_process.cc is the real one):
//   while (node.HasReady()) {
//     Ready rd = node.GetReady();
//     persist rd.entries and rd.hard_state (one WAL fsync);   // before sending messages
//     send rd.messages; apply rd.committed_entries; answer rd.read_states;
//     node.Advance(rd);
//   }
// Spans in a Ready point into the node's log: they stay valid until the next call that
// mutates the node (Advance, Tick, Step, Propose, ReadIndex, Campaign, CompactLog).
//
// Algorithm notes (section numbers of the Raft paper / Ongaro's thesis):
// - Elections §5.2 with pre-vote (thesis §9.6) and check-quorum (thesis §6.2) options.
// - A leader counts its own entry as matched only once it is persisted (Advance), so a
//   single voter commits an entry exactly when its WAL holds it.
// - Commit only by counting replicas of entries of the current term (§5.4.2); a new leader
//   appends an empty entry of its term to commit earlier ones.
// - ReadIndex (thesis §6.4): answered with the commit index once the leader has committed
//   an entry of its term; with other voters, after a heartbeat round confirms leadership.
//
// Thread safety: none. One thread owns a RaftNode.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "raftd/raft/messages.h"
#include "raftd/raft/raft_log.h"

namespace rusd::raft {

struct Config {
  uint64_t id = 0;                  // this member's id, non-zero
  std::vector<uint64_t> voters;     // all voting members, including `id`
  int election_tick = 10;           // ticks without a leader before campaigning
  int heartbeat_tick = 1;           // leader heartbeat period in ticks
  bool pre_vote = true;
  bool check_quorum = true;
  uint64_t applied = 0;             // entries up to here were applied before a restart
  size_t max_entries_per_message = 1024;
  uint64_t random_seed = 0;         // election timeout jitter; 0: derived from id
};

// The state the caller recovered from its WAL.
struct RecoveredState {
  HardState hard_state;
  uint64_t prev_index = 0;  // index/term of the entry before entries[0] (compaction point)
  uint64_t prev_term = 0;
  std::vector<Entry> entries;
};

struct Ready {
  std::optional<SoftState> soft_state;  // set when leader or role changed
  std::optional<HardState> hard_state;  // set when it must be persisted
  std::span<const Entry> entries;            // to append to the WAL (may overwrite a suffix)
  std::span<const Entry> committed_entries;  // durable and committed; apply in order
  std::vector<Message> messages;             // send after persisting
  std::vector<ReadState> read_states;
  bool empty() const {
    return !soft_state && !hard_state && entries.empty() && committed_entries.empty() &&
           messages.empty() && read_states.empty();
  }
};

class RaftNode {
 public:
  RaftNode(const Config& config, RecoveredState recovered);

  // Advances the logical clock: followers campaign after a randomized election timeout,
  // leaders heartbeat and (check-quorum) step down without a quorum of recent contacts.
  void Tick();
  // Starts an election now (etcd's MsgHup). A single voter becomes leader at once.
  void Campaign();
  // Handles a message from a peer.
  void Step(Message m);
  // Appends one entry per element of `data` (moved from) as a leader; a follower that
  // knows its leader forwards them. Unavailable("etcdserver: no leader") when there is no
  // leader to take them.
  Status Propose(std::span<std::string> data);
  // Asks for a read index for `request_id`; the answer comes as a ReadState in a later
  // Ready. Unavailable when there is no leader.
  Status ReadIndex(uint64_t request_id);

  bool HasReady() const;
  Ready GetReady();
  void Advance(const Ready& ready);

  // Drops in-memory entries up to `index` (clipped to applied): the caller keeps them
  // elsewhere (the state machine has them durably).
  void CompactLog(uint64_t index) { log_.CompactTo(index); }

  uint64_t id() const { return id_; }
  uint64_t term() const { return term_; }
  uint64_t vote() const { return vote_; }
  uint64_t leader() const { return leader_; }
  Role role() const { return role_; }
  const RaftLog& log() const { return log_; }
  // True once the leader has committed an entry of its own term (reads may be served).
  bool CommittedInCurrentTerm() const;

 private:
  struct Progress {
    uint64_t match = 0;
    uint64_t next = 1;
    bool recent_active = false;
  };
  struct PendingRead {
    uint64_t request_id;
    uint64_t index;
    uint64_t from;  // the member that asked (id_ for a local request)
    std::map<uint64_t, bool> acks;
  };

  void BecomeFollower(uint64_t term, uint64_t leader);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Reset(uint64_t term);
  void StartElection(bool pre_vote);
  void Poll(uint64_t from, bool granted, bool pre_vote);
  int VoteCount(bool granted) const;
  size_t Quorum() const { return voters_.size() / 2 + 1; }
  bool IsVoter(uint64_t id) const;

  void StepLeader(Message& m);
  void StepFollower(Message& m);
  void StepCandidate(Message& m);
  void HandleAppend(Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleVoteRequest(const Message& m);

  void AppendEntries(std::span<std::string> data);
  bool MaybeCommit();
  void OnCommitInCurrentTerm();
  void SendAppend(uint64_t to);
  void BroadcastAppend();
  void BroadcastHeartbeat(uint64_t context);
  void LeaderReadIndex(uint64_t request_id, uint64_t from);
  void ReleaseReads();
  void Send(Message m);
  void ResetRandomizedTimeout();

  const uint64_t id_;
  std::vector<uint64_t> voters_;
  const int election_tick_;
  const int heartbeat_tick_;
  const bool pre_vote_;
  const bool check_quorum_;
  const size_t max_entries_per_message_;
  std::mt19937_64 rng_;

  RaftLog log_;
  uint64_t term_ = 0;
  uint64_t vote_ = 0;
  uint64_t leader_ = 0;
  Role role_ = Role::kFollower;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;

  std::map<uint64_t, bool> votes_;            // candidate: who answered, and how
  std::map<uint64_t, Progress> progress_;     // leader: per voter, including self
  std::vector<PendingRead> pending_reads_;    // leader: awaiting a heartbeat quorum
  std::vector<std::pair<uint64_t, uint64_t>> reads_before_commit_;  // (request id, from)

  std::vector<Message> msgs_;
  std::vector<ReadState> read_states_;
  HardState prev_hard_state_;
  SoftState prev_soft_state_;
};

}  // namespace rusd::raft
