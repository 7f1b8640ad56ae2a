// RaftProcess: the main loop of rusd-raftd. One thread owns everything here: the Raft core,
// the WAL writer and the ring ends of raftd. It never blocks on a ring (a full ring leaves
// work for the next turn) and it sleeps only in WaitForMessages, bounded by the next tick.
//
// Rings (docs/architecture.md):
//   reads   proposals      kPropose (id = request id, payload = rusd.internal.Command +
//                          the frontend's deadline, ipc/request_trailer.h), kReadIndex
//                          (id = request id), kMemberChange, kMoveLeader (+ deadline)
//           store-control  kResumeFrom{applied}, kDurableApplied{index}
//   writes  raft-replies   kReadIndexReply, kError, kLeaderInfo (on every leader or term
//                          change, and again whenever the frontend's epoch changes),
//                          kMemberList (members with the client URLs peers announced in
//                          their handshakes; on changes and for every new frontend)
//   peers   transport      messages received are stepped into the core each turn; a
//                          Ready's messages are sent after its entries are fsynced
//           committed      kCommittedEntries (id = first index, EntryBatch)
//
// One turn of the loop: take every available control message and proposal (bounded), feed
// them to the core, tick if due, then for each Ready: append entries + hard state to the WAL
// with ONE fdatasync, answer read states, advance; then send committed entries from
// `next_to_send` as far as the committed ring takes them.
//
// Delivery to stored: entries are sent only after stored told this raftd where to resume
// (kResumeFrom) and only while stored's epoch is the one that sent it; after stored
// restarts nothing is pushed until its new kResumeFrom arrives. Entries stay in memory
// until stored reports them durable (kDurableApplied); then the WAL segments below are
// deleted too.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/component_flags.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "common/status.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "raftd/heartbeat_delay_detector.h"
#include "raftd/membership_registry.h"
#include "raftd/leader_wait_queue.h"
#include "raftd/read_index_waiters.h"
#include "rusd/membership.pb.h"
#include "raftd/raft/raft_node.h"
#include "raftd/snapshot/snapshot_transfer.h"
#include "raftd/transport/peer_transport.h"
#include "raftd/wal/wal_writer.h"

namespace rusd::raftd {

struct RaftProcessOptions {
  uint64_t member_id = 1;
  // Every voter, this member included; empty or just this member: a single-node cluster
  // (campaigns at once, needs no transport).
  std::vector<ClusterMember> members;
  std::vector<std::string> client_urls;  // this member's advertised client URLs (MemberList)
  // Carries peer messages when there are other members (owned by main(); may be null).
  transport::PeerTransport* transport = nullptr;
  uint64_t epoch = 0;  // this raftd's epoch, stamped on every frame
  std::chrono::milliseconds tick_interval{100};
  int election_ticks = 10;
  // Bounds of one turn, so a flood of proposals cannot starve ticks and deliveries.
  size_t max_proposals_per_turn = 8192;
  size_t max_proposal_bytes_per_turn = 16u << 20;
  // Target size of one kCommittedEntries frame (a single larger entry travels alone, in
  // ring chunks written over as many turns as the ring needs: the loop never waits). The
  // effective limit is min(max_frame_bytes, committed ring capacity / 4): a frame TryWrite
  // takes whole must stay well below the ring.
  size_t max_frame_bytes = 1u << 20;
  // A leader's new commit index waits this long for an append to a follower to carry it
  // before it goes in an empty append of its own (raft::Config::defer_commit_announcements;
  // 0: sent at once). Under load the next group's appends carry it: one message and one
  // follower wake-up per group fewer. Only followers' applies wait (their stored answers
  // no client write); a follower's linearizable read may wait up to this much longer.
  std::chrono::milliseconds commit_announce_delay{2};
  // The yield phase of the loop's idle wait (ipc::WaitForMessages; other consumers yield
  // for 30 µs). raftd's wake-ups mostly come from the peer transport's thread (which rings
  // the doorbell) and from proposal rings written in bursts: A/B at 64/8 puts, 6 pairs,
  // 5 µs instead of 30 took raftd's system calls per put from ~0.95 to ~0.70 (leader) and
  // ~0.63 to ~0.50 (follower), raftd CPU per put lower in 5 of 6 pairs.
  std::chrono::microseconds idle_yield_window{5};
  // Without compact_on_snapshot: entries kept below stored's durable index when compacting
  // at it (main() leaves 0: one member needs none; with peers compaction follows stored's
  // snapshots instead, see below).
  uint64_t log_retention_entries = 0;
  // Snapshots (with peers): <data-dir>/member/snap, where the snapshot point is persisted
  // and received snapshots land; `snapshots` streams them (owned by main(); may be null).
  // With compact_on_snapshot the log is compacted only at stored's snapshots
  // (kSnapshotReady), so a follower behind the log start gets the snapshot there; without
  // it (one member) the log is compacted at every durable index, as no one needs it.
  std::string snap_dir;
  // The member list stored with the snapshot point at startup (a serialized
  // internal::MemberListFile as of the point; empty: none, e.g. a version 1 point file).
  std::string snapshot_members;
  SnapshotTransfer* snapshots = nullptr;
  bool compact_on_snapshot = false;
  // Read-index requests unanswered this long are asked again (a forwarded request or its
  // answer may be lost), and failed with "etcdserver: request timed out" after the
  // request timeout (read_index_waiters.h; main() sets etcd's 5 s + 2 election timeouts).
  std::chrono::milliseconds read_retry_interval{500};
  std::chrono::milliseconds read_timeout{7000};
  // Proposals and member changes that arrive while no leader is known wait for one
  // (leader_wait_queue.h) until leader_wait_margin before the deadline their frame carries
  // (ipc/request_trailer.h), then fail as etcd 3.4's do (Unknown "context deadline
  // exceeded"): raftd answers before the frontend's own "request timed out". The margin
  // (main() sets 2 ticks + 250 ms) covers the ticks on which expiry runs and the reply's
  // trip on a loaded machine. A frame without a deadline (tests, tools) waits leader_wait
  // from when raftd read it.
  std::chrono::milliseconds leader_wait{7000};
  std::chrono::milliseconds leader_wait_margin{250};
  size_t max_leader_wait_bytes = 256u << 20;  // beyond: refused with "etcdserver: no leader"
  size_t dedup_window = 1u << 17;     // request ids remembered for duplicate proposals
  size_t max_queued_replies = 1u << 16;
  // The member list and its change rules (owned by main(); may be null: fixed members).
  MembershipRegistry* membership = nullptr;
  std::string name;  // this member's --name (MemberList, for a member added at run time)
  // etcd's --strict-reconfig-check: refuse member changes that could lose quorum
  // (CheckReconfigHealth). Off: every change the member list allows is proposed.
  bool strict_reconfig_check = true;
};

class RaftProcess {
 public:
  // `segment`, `wal` and the recovered state belong to the caller's main(); the process
  // uses the WAL from its own thread only.
  RaftProcess(ipc::Segment& segment, wal::WalWriter& wal, raft::RecoveredState recovered,
              const RaftProcessOptions& options);
  ~RaftProcess();

  // Runs until `should_stop` returns true (checked every turn, at least once per tick) or
  // an unrecoverable WAL error (returned). On a clean stop everything written is synced.
  Status Run(const std::function<bool()>& should_stop);
  // Run returned because this member was removed from the cluster (exit, do not restart).
  bool removed() const { return removed_; }

 private:
  struct Reply {
    ipc::MessageType type;
    uint64_t id;
    std::string payload;
  };

  bool TakeControl();  // sets fatal_ when stored is ahead of this WAL
  // Reads the proposals ring. A kPropose, kMemberChange or kMoveLeader is dropped unanswered
  // (never proposed) when it was read at or after its deadline (the frontend answers it
  // "request timed out") or was written by a frontend epoch older than the live one (that
  // frontend is dead: its client saw the connection break, nobody waits for the answer).
  // Requests are handed to the core, or to the leader wait, in ring order.
  bool TakeProposals();
  // Hands this turn's proposals read so far to the core, or to the leader wait without a
  // leader (before a member request read after them: ring order is kept).
  void SubmitProposalBatch();
  bool TakePeerMessages();
  void QueueMemberList();
  etcdserverpb::MemberListResponse BuildMemberList();
  Status HandleReadies();
  Status Persist(const raft::Ready& rd);
  void SendCommitted();
  void QueueReply(ipc::MessageType type, uint64_t id, std::string payload);
  void QueueLeaderInfo();
  void QueueError(uint64_t id, int code, const std::string& message);
  void FlushReplies();
  bool RememberProposal(uint64_t request_id);
  void FailPendingReads(int code, const std::string& message);
  // Keeps a request that needs a leader while none is known (false: the queue is full and
  // the request was refused with "no leader"). `deadline`: the frame's (or kNoDeadline).
  bool AwaitLeader(ipc::MessageType type, uint64_t id, std::string& payload,
                   uint64_t frontend_epoch, std::chrono::steady_clock::time_point deadline);
  // A leader is known: hands the waiting requests to the core, in arrival order.
  void ReleaseAwaitingLeader();
  // Fails the requests whose leader wait is over; drops, unanswered, those of a dead
  // frontend epoch.
  void ExpireAwaitingLeader(std::chrono::steady_clock::time_point now);
  // A clean stop: the requests still waiting for a leader (never proposed) get etcd's
  // answer on shutdown, Unavailable "etcdserver: server stopped".
  void FailAwaitingLeaderOnStop();
  // Asks the core again for reads left unanswered, fails those past the request timeout.
  void PollPendingReads(std::chrono::steady_clock::time_point now);
  // Leases: kLeaderState to stored (ahead of entries), stored's kLeaseProposals in.
  bool SendLeaderState();
  void ProposeForStored(const std::string& payload);
  // Snapshots (raft_process_snapshot.cc).
  void OnSnapshotReady(const std::string& payload);
  Status PersistRestoredSnapshot(const raft::SnapshotMeta& meta);
  // The member list as of `index` (at or after the snapshot point, still in the log).
  std::optional<internal::MemberListFile> MembersAt(uint64_t index) const;
  void SendMessages(std::vector<raft::Message>& msgs);
  // Counts the heartbeats among `msgs` (about to go to the transport) that leave late.
  void ObserveHeartbeats(const std::vector<raft::Message>& msgs);
  bool TakeSnapshotEvents();
  // stored is below the log start: order the install of the received snapshot. Returns
  // false when there is none to install.
  bool SendInstallOrder(uint64_t next);
  // Removes received snapshots at or below `stored_index` (stored holds that state), except
  // the pending install's.
  void PruneReceivedSnapshots(uint64_t stored_index);
  void RecoverPendingInstall();
  // Membership (raft_process_membership.cc): kMemberChange / kMoveLeader requests, the
  // committed conf-change entries, leader transfers waiting for their outcome.
  // `deadline`: the frame's (ipc/request_trailer.h), for the leader wait.
  void TakeMemberRequest(ipc::Message& m, std::chrono::steady_clock::time_point deadline);
  void OnConfChangeCommitted(const raft::Entry& e);
  void OnLeaderChangedForMoves();
  void CheckRemoved();
  void UpdateTransportPeers();
  // etcd's --strict-reconfig-check (mayAddMember / mayRemoveMember): ErrUnhealthy unless
  // the peers that matter have been connected for HealthInterval (5 s).
  Status CheckReconfigHealth(const internal::MemberChangeRequest& req) const;
  void PollPeers(std::chrono::steady_clock::time_point now);

  ipc::Segment& segment_;
  wal::WalWriter& wal_;
  const RaftProcessOptions options_;
  raft::RaftNode node_;

  ipc::RingReader proposals_;
  ipc::RingReader control_;
  ipc::RingWriter replies_;
  ipc::RingWriter committed_;
  std::map<uint64_t, uint64_t> pending_moves_;  // request id -> transferee
  bool removed_ = false;
  std::map<uint64_t, std::chrono::steady_clock::time_point> connected_since_;  // by peer
  std::optional<std::chrono::steady_clock::time_point> removed_applied_at_;  // our own removal was applied
  std::chrono::steady_clock::time_point next_removed_check_{};
  // An unrecoverable inconsistency found while serving (stored ahead of the WAL, a committed
  // entry the ring cannot carry); ends Run().
  Status fatal_;

  // Delivery cursor to stored; unset until a kResumeFrom of the current stored epoch.
  std::optional<uint64_t> next_to_send_;
  // When the deferred commit announcement is due (commit_announce_delay after deferral).
  std::optional<std::chrono::steady_clock::time_point> announce_due_;
  uint64_t resume_epoch_ = 0;
  uint64_t durable_applied_ = 0;
  uint64_t last_leader_ = 0;
  uint64_t frontend_epoch_ = 0;  // a change means a new frontend: re-send kLeaderInfo
  uint64_t gap_logged_at_ = 0;
  // stored must hear "leader or not, term T" again: after its kResumeFrom and whenever the
  // role or term changed. Sent on the committed ring before further entries.
  bool leader_state_owed_ = true;

  raft::HardState persisted_;  // last hard state handed to the WAL
  std::deque<Reply> reply_queue_;
  std::unordered_set<uint64_t> seen_ids_;
  std::deque<uint64_t> seen_order_;
  ReadIndexWaiters pending_reads_;  // given to the core, not yet answered
  LeaderWaitQueue awaiting_leader_;  // proposals and member changes waiting for a leader
  HeartbeatDelayDetector heartbeat_delays_;  // etcd_server_heartbeat_send_failures_total

  // Reused buffers: one turn's proposals and the frame being built.
  std::vector<std::string> batch_data_;
  std::vector<uint64_t> batch_ids_;
  std::vector<uint64_t> batch_epochs_;  // the frontend epoch of each frame
  std::vector<std::chrono::steady_clock::time_point> batch_deadlines_;
  std::vector<uint64_t> read_ids_;
  std::vector<raft::Message> inbox_;
  std::vector<raft::Message> early_;  // a leader's appends, sent before its own fsync
  // A kCommittedEntries frame too big to write at once, going out in ring chunks over
  // several turns (RingWriter::TryWriteChunks); nothing else goes on the committed ring
  // until it is out (stored must see entries in order). Its entries are [first, next).
  struct ChunkedFrame {
    uint64_t first = 0;
    uint64_t next = 0;
    std::string frame;
    uint64_t offset = 0;  // bytes of `frame` in the ring
  };
  std::optional<ChunkedFrame> chunked_;
  void AbandonChunkedFrame();
  uint64_t peers_version_ = 0;  // transport's peers_version when kMemberList was last sent
  // stored's checkpoints (index -> directory) at or above the log's snapshot point: the
  // one at the point is streamed to followers that need a snapshot.
  std::map<uint64_t, std::string> snapshot_dirs_;
  // Follower side: a received snapshot restored in the core and not yet confirmed by
  // stored (kResumeFrom at or above its index); the order is re-sent until then.
  struct PendingInstall {
    uint64_t index = 0;
    uint64_t term = 0;
    std::string dir;
  };
  std::optional<PendingInstall> pending_install_;
  std::chrono::steady_clock::time_point install_sent_at_{};
  std::vector<std::pair<uint64_t, bool>> snapshot_reports_;
  std::vector<SnapshotTransfer::Received> snapshot_inbox_;
  // The member list as of the snapshot point (sent with the snapshot, and the base the
  // next compaction's list is built from); nullopt if unknown (an old point file).
  std::optional<internal::MemberListFile> point_members_;
  // Member lists that came with received snapshots, by index, until the core restores one.
  std::map<uint64_t, std::string> received_members_;
  std::string frame_;
};

}  // namespace rusd::raftd
