// RaftNode: the consensus core of raftd, a deterministic state machine in the style of
// etcd's raft package. It never touches a socket, a file or a clock: the caller feeds it
// inputs and carries out the Ready batches it produces.
//
// Inputs:   Tick() (one logical clock tick), Step(peer message), Propose(data batch),
//           ProposeConfChange, ReadIndex(request id), Campaign(), TransferLeadership,
//           ReportSnapshot, CompactLog.
// Output:   GetReady() → Ready{hard state, entries and an installed snapshot to persist,
//           messages to send, committed entries to apply, read states, soft state}; then
//           Advance(ready).
//
// The caller's loop (raftd/raft_process.cc is the real one):
//   while (node.HasReady()) {
//     Ready rd = node.GetReady();
//     persist rd.snapshot, rd.entries and rd.hard_state (one WAL fsync; a commit-only
//       hard state may wait for the next one);                 // before sending messages
//     send rd.messages; apply rd.committed_entries; answer rd.read_states;
//     node.Advance(rd);   // configuration changes among the committed entries take effect
//   }
// Spans in a Ready point into the node's log: they stay valid until the next call that
// mutates the node (Advance, Tick, Step, Propose, ReadIndex, Campaign, CompactLog, ...).
//
// Snapshots: the core only orchestrates. CompactLog(i) declares that the caller holds a
// snapshot of its state machine at i (the core records index, term and configuration
// there). A follower whose next entry is compacted away gets a kSnapshot message in
// Ready.messages: the caller sends its snapshot data for `m.snapshot.index` with it (if it
// has compacted further since, it sends its newer one and sets m.snapshot to
// snapshot_meta(), or reports failure) and
// must report the outcome with ReportSnapshot(to, ok) (until then nothing else is sent to
// that follower). On the receiving side the caller
// stores the data and steps the message; when the core accepts it, Ready.snapshot says
// "persist this snapshot point and install the data before applying later entries".
//
// Algorithm notes (section numbers of the Raft paper / Ongaro's thesis):
// - Elections §5.2 with pre-vote (thesis §9.6) and check-quorum (thesis §6.2) options.
// - A leader counts its own entry as matched only once it is persisted (Advance), so a
//   single voter commits an entry exactly when its WAL holds it.
// - Commit only by counting replicas of entries of the current term (§5.4.2); a new leader
//   appends an empty entry of its term to commit earlier ones.
// - Flow control per follower (progress.h): probe / pipelined replicate / snapshot, an
//   inflight window by messages and bytes, fast back-off by term on rejection.
// - ReadIndex (thesis §6.4): answered with the commit index once the leader has committed
//   an entry of its term; with other voters, after a heartbeat round confirms leadership.
//   Reads arriving between two Readys share one round (read_index.cc).
// - Membership (membership.cc): learners, single-member changes (kConfChange entries,
//   conf_change.h) applied when committed, one pending at a time and only after the
//   leader committed an entry of its term; leader transfer with kTimeoutNow.
//
// Thread safety: none. One thread owns a RaftNode.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "raftd/raft/conf_change.h"
#include "raftd/raft/messages.h"
#include "raftd/raft/progress.h"
#include "raftd/raft/raft_log.h"

namespace rusd::raft {

struct Config {
  uint64_t id = 0;                  // this member's id, non-zero
  // The configuration at the start of the log (index 0): the bootstrap members. Empty
  // voters and learners: this node alone. A node joining an existing cluster passes the
  // bootstrap configuration (it replays the changes since from the log) or nothing and
  // receives a snapshot; a node not among the voters never campaigns.
  std::vector<uint64_t> voters;
  std::vector<uint64_t> learners;
  int election_tick = 10;           // ticks without a leader before campaigning
  int heartbeat_tick = 1;           // leader heartbeat period in ticks
  bool pre_vote = true;
  bool check_quorum = true;
  uint64_t applied = 0;             // entries up to here were applied before a restart
  size_t max_entries_per_message = 1024;
  uint64_t max_bytes_per_message = 1 << 20;  // entry data per append (at least one entry)
  size_t max_inflight_messages = 256;        // per follower, pipelined appends
  uint64_t max_inflight_bytes = 0;           // per follower; 0: no byte limit
  uint64_t random_seed = 0;         // election timeout jitter; 0: derived from id
  // Leader: a new commit index for a follower in pipelined replication with no append
  // queued is not sent in an empty append at once; it rides on the next append, or goes
  // out when the caller calls FlushCommitAnnouncements (see there). Only followers' own
  // state machines wait for it: nothing the leader acknowledges depends on it.
  bool defer_commit_announcements = false;
};

// The state the caller recovered from its WAL.
struct RecoveredState {
  HardState hard_state;
  uint64_t prev_index = 0;  // index/term of the entry before entries[0] (compaction point)
  uint64_t prev_term = 0;
  std::vector<Entry> entries;
  // The configuration at prev_index (from the snapshot); nullopt: Config's voters and
  // learners (only right for prev_index 0 or a cluster that never changed membership).
  std::optional<ConfState> conf_state = std::nullopt;
};

struct Ready {
  std::optional<SoftState> soft_state;  // set when leader or role changed
  std::optional<HardState> hard_state;  // set when it must be persisted
  // A snapshot the node restored (from a kSnapshot message): persist it as the new start
  // of the log and install its data before the committed entries below.
  std::optional<SnapshotMeta> snapshot;
  std::span<const Entry> entries;            // to append to the WAL (may overwrite a suffix)
  std::span<const Entry> committed_entries;  // durable and committed; apply in order
  std::vector<Message> messages;             // send after persisting
  std::vector<ReadState> read_states;
  bool empty() const {
    return !soft_state && !hard_state && !snapshot && entries.empty() &&
           committed_entries.empty() && messages.empty() && read_states.empty();
  }
};

class RaftNode {
 public:
  // InvalidArgument naming the problem: id 0, a heartbeat not shorter than the election
  // timeout, a member both voter and learner, zero-sized windows.
  static Status ValidateConfig(const Config& config);
  // `config` must pass ValidateConfig.
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
  // leader to take them; Unavailable(kProposalDropped) while leadership is being
  // transferred.
  Status Propose(std::span<std::string> data);
  // Proposes a configuration change (forwarded like Propose on a follower). The leader
  // refuses with FailedPrecondition while another change is not yet applied, or before it
  // has applied an entry of its own term (the one-change-at-a-time pitfalls).
  Status ProposeConfChange(const ConfChange& cc);
  // Asks for a read index for `request_id`; the answer comes as a ReadState in a later
  // Ready. Unavailable when there is no leader.
  Status ReadIndex(uint64_t request_id);
  // Moves leadership to voter `to` (etcd's MsgTransferLeader; forwarded by a follower).
  // The leader stops taking proposals until `to` wins or an election timeout passes.
  Status TransferLeadership(uint64_t to);
  // The caller's transfer of the snapshot to `to` finished (ok) or failed.
  void ReportSnapshot(uint64_t to, bool ok);
  // The caller could not reach `to` (etcd's ReportUnreachable): probe it again.
  void ReportUnreachable(uint64_t to);

  bool HasReady() const;
  // With Config::defer_commit_announcements: a commit index some follower has not been
  // sent yet. FlushCommitAnnouncements queues it (an empty kCommitAnnouncement append to
  // each such follower; the next Ready carries them). The caller flushes within a bounded
  // delay; under load the next proposal's appends usually carry the index first.
  bool CommitAnnouncementDeferred() const { return role_ == Role::kLeader && commit_owed_; }
  void FlushCommitAnnouncements() { AnnounceCommit(/*flush=*/true); }
  Ready GetReady();
  void Advance(const Ready& ready);

  // The caller holds a snapshot of its state machine at `index` (clipped to applied):
  // entries up to there are dropped and `index` becomes the snapshot point sent to
  // followers that need it.
  void CompactLog(uint64_t index);

  uint64_t id() const { return id_; }
  uint64_t term() const { return term_; }
  uint64_t vote() const { return vote_; }
  uint64_t leader() const { return leader_; }
  Role role() const { return role_; }
  const RaftLog& log() const { return log_; }
  // True once the leader has committed an entry of its own term (reads may be served).
  bool CommittedInCurrentTerm() const;
  // The configuration in force (as of the last applied configuration change).
  const ConfState& conf_state() const { return conf_; }
  bool IsVoter(uint64_t id) const;
  bool IsLearner(uint64_t id) const;
  // The snapshot point: index, term and configuration at first_index() - 1.
  SnapshotMeta snapshot_meta() const;
  // Leader only: what it knows of each member (voters and learners, itself included).
  const std::map<uint64_t, Progress>& progress() const { return progress_; }
  // Leader only: the member leadership is being transferred to, 0 if none.
  uint64_t lead_transferee() const { return lead_transferee_; }
  // Index of the last configuration change appended by this leader (or its last index
  // when it was elected); a new change waits until applied reaches it.
  uint64_t pending_conf_index() const { return pending_conf_index_; }

  static constexpr char kProposalDropped[] = "raft proposal dropped";

 private:
  struct PendingRead {
    uint64_t request_id;
    uint64_t index;
    uint64_t from;   // the member that asked (id_ for a local request)
    uint64_t round;  // the confirmation round that must complete first
  };

  // Elections (raft_node.cc).
  void BecomeFollower(uint64_t term, uint64_t leader);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Reset(uint64_t term);
  void StartElection(bool pre_vote, bool transfer);
  void Poll(uint64_t from, bool granted, bool pre_vote);
  size_t Quorum() const { return conf_.voters.size() / 2 + 1; }
  void StepLeader(Message& m);
  void StepFollower(Message& m);
  void StepCandidate(Message& m);
  void HandleVoteRequest(const Message& m);
  void ResetRandomizedTimeout();
  void Send(Message m);
  bool AppendProposals(std::vector<Entry>&& entries);

  // Replication and flow control (replication.cc).
  void HandleAppend(Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleAppendResp(const Message& m);
  void HandleHeartbeatResp(const Message& m);
  bool MaybeCommit();
  void OnCommitInCurrentTerm();
  // Sends `to` what it lacks, if its flow control allows: returns whether a message went.
  // `announcement`: an empty append to a follower in pipelined replication goes as a
  // kCommitAnnouncement (not acknowledged).
  bool MaybeSendAppend(uint64_t to, bool send_if_empty, bool announcement = false);
  void SendAppendsWhileOpen(uint64_t to);
  void BroadcastAppend();
  // A new commit index: followers with room get their new entries now; the index itself
  // is announced once per Ready by AnnounceCommit (below), not by a message per advance.
  void BroadcastCommit();
  // At GetReady: every append of this term still queued carries the latest commit index;
  // a follower with none queued gets one empty append carrying it (a kCommitAnnouncement
  // when the follower is in pipelined replication); with defer_commit_announcements and
  // !flush, a follower in pipelined replication waits (commit_owed_ stays set).
  void AnnounceCommit(bool flush = false);
  void BroadcastHeartbeat(uint64_t context);
  Progress& AddProgress(uint64_t id, bool learner);

  // ReadIndex (read_index.cc).
  void LeaderReadIndex(uint64_t request_id, uint64_t from);
  void AnswerRead(uint64_t request_id, uint64_t index, uint64_t from);
  void StartReadRound();
  void ReleaseReads();
  void FlushReads();  // at GetReady: forwarded reads and answers to other members

  // Membership and leader transfer (membership.cc).
  void ApplyConfChangeEntry(const Entry& e);
  void SwitchConf(ConfState next, uint64_t index);
  ConfState ConfAt(uint64_t index) const;
  void HandleTransferLeader(uint64_t transferee);
  void HandOverLeadership();  // a leader that is no longer a voter
  void SendTimeoutNow(uint64_t to);
  void AbortLeaderTransfer() { lead_transferee_ = 0; }

  // Snapshots (snapshot.cc).
  void HandleSnapshot(const Message& m);
  void SendSnapshot(uint64_t to, Progress& pr);

  const uint64_t id_;
  const int election_tick_;
  const int heartbeat_tick_;
  const bool pre_vote_;
  const bool check_quorum_;
  const bool defer_commit_announcements_;
  const size_t max_entries_per_message_;
  const uint64_t max_bytes_per_message_;
  const size_t max_inflight_messages_;
  const uint64_t max_inflight_bytes_;
  std::mt19937_64 rng_;

  RaftLog log_;
  uint64_t term_ = 0;
  uint64_t vote_ = 0;
  uint64_t leader_ = 0;
  Role role_ = Role::kFollower;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;

  ConfState conf_;                                   // in force now
  ConfState snapshot_conf_;                          // at the snapshot point
  std::vector<std::pair<uint64_t, ConfState>> conf_history_;  // applied changes after it
  uint64_t pending_conf_index_ = 0;                  // leader
  uint64_t lead_transferee_ = 0;                     // leader

  std::map<uint64_t, bool> votes_;            // candidate: who answered, and how
  std::map<uint64_t, Progress> progress_;     // leader: per member, including self
  std::deque<PendingRead> pending_reads_;     // leader: awaiting a confirmation round
  std::vector<std::pair<uint64_t, uint64_t>> reads_before_commit_;  // (request id, from)
  uint64_t read_round_ = 0;        // last confirmation round sent (monotonic)
  bool read_round_wanted_ = false;  // reads wait for a round not yet sent
  struct ReadAnswers {
    uint64_t index = 0;
    std::vector<uint64_t> request_ids;
  };
  std::map<uint64_t, ReadAnswers> read_answers_;  // leader: per asking member
  std::vector<uint64_t> reads_to_forward_;        // follower: request ids for the leader

  std::vector<Message> msgs_;
  bool commit_owed_ = false;  // leader: the commit index advanced since AnnounceCommit
  std::vector<ReadState> read_states_;
  std::optional<SnapshotMeta> restored_snapshot_;  // follower: for the next Ready
  HardState prev_hard_state_;
  SoftState prev_soft_state_;
};

}  // namespace rusd::raft
