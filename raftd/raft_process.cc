#include "raftd/raft_process.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>

#include "ipc/request_trailer.h"
#include "raftd/entry_batch_encoder.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"

namespace rusd::raftd {
namespace {

using Clock = std::chrono::steady_clock;
using ipc::MessageType;

constexpr int kCodeInternal = 13;
constexpr int kCodeUnavailable = 14;
constexpr char kLeaderChanged[] = "etcdserver: leader changed";
constexpr char kRequestTimedOut[] = "etcdserver: request timed out";
constexpr char kServerStopped[] = "etcdserver: server stopped";
// What etcd 3.4 answers for a proposal that waited for a leader until its request timeout:
// raft's Propose returns the context's error, which reaches the client unmapped (gRPC
// code Unknown), not ErrTimeout.
constexpr char kProposeContextExpired[] = "context deadline exceeded";
// The largest entry data a kCommittedEntries frame can carry: the ring refuses a message
// over kMaxMessageBytes (1 GiB), and a frame of one entry adds under 64 bytes to its data
// (EncodedEntrySize: field tags, the index, term and type varints, two length varints).
// The frontend refuses requests over --max-request-bytes first (1.5 MiB by default), so
// this only matters when that flag is set near 1 GiB.
constexpr size_t kMaxEntryDataBytes = ipc::RingWriter::kMaxMessageBytes - 64;
constexpr char kRequestTooLarge[] = "etcdserver: request is too large";
// While deliveries or replies wait for ring space, look again this soon.
constexpr std::chrono::milliseconds kBacklogPoll{1};

raft::Config CoreConfig(const RaftProcessOptions& o) {
  raft::Config c;
  c.id = o.member_id;
  for (const ClusterMember& m : o.members) c.voters.push_back(m.id);
  if (c.voters.empty()) c.voters = {o.member_id};
  c.election_tick = std::max(1, o.election_ticks);
  c.heartbeat_tick = 1;
  c.defer_commit_announcements = o.commit_announce_delay.count() > 0;
  return c;
}

raft::Config WithApplied(raft::Config c, const raft::RecoveredState& r) {
  // Everything committed before a restart counts as handed out: stored tells us where it
  // really is with kResumeFrom, and delivery follows its cursor, not the core's.
  c.applied = r.hard_state.commit;
  return c;
}

}  // namespace

RaftProcess::RaftProcess(ipc::Segment& segment, wal::WalWriter& wal,
                         raft::RecoveredState recovered, const RaftProcessOptions& options)
    : segment_(segment),
      wal_(wal),
      options_(options),
      node_(WithApplied(CoreConfig(options), recovered), std::move(recovered)),
      proposals_(segment, ipc::RingId::kProposals),
      control_(segment, ipc::RingId::kStoreControl),
      replies_(segment, ipc::RingId::kRaftReplies, options.epoch),
      committed_(segment, ipc::RingId::kCommitted, options.epoch),
      pending_reads_(ReadIndexWaiters::Options{options.read_retry_interval,
                                               options.read_timeout}),
      awaiting_leader_(LeaderWaitQueue::Options{options.max_leader_wait_bytes}),
      // etcd: 2 heartbeat intervals; rusd's leader heartbeats every tick.
      heartbeat_delays_(2 * options.tick_interval) {
  persisted_ = raft::HardState{node_.term(), node_.vote(), node_.log().committed()};
  // Sized for the whole window at once: growing it rehashes every id remembered so far
  // (at 64 Ki ids, a pause of milliseconds in the middle of a turn).
  seen_ids_.reserve(options_.dedup_window + 1);
  if (!options_.snapshot_members.empty()) {
    internal::MemberListFile members;
    if (members.ParseFromString(options_.snapshot_members)) {
      point_members_ = std::move(members);
    } else {
      spdlog::warn("the member list stored with the snapshot point is unparsable");
    }
  }
  RecoverPendingInstall();
  frontend_epoch_ =
      segment.component(ipc::Component::kFrontend).epoch.load(std::memory_order_acquire);
}

RaftProcess::~RaftProcess() = default;

Status RaftProcess::Run(const std::function<bool()>& should_stop) {
  spdlog::info("raft: member {:016x} starts at term {}, log ({}, {}], commit {}",
               options_.member_id, node_.term(), node_.log().first_index() - 1,
               node_.log().last_index(), node_.log().committed());
  // A single voter need not wait an election timeout: nobody else can be leader. (The
  // configuration, not the bootstrap list: a node started alone may have grown since.)
  const raft::ConfState& conf = node_.conf_state();
  const bool sole_voter = conf.voters.size() == 1 && conf.voters[0] == options_.member_id;
  if (sole_voter) node_.Campaign();
  QueueMemberList();  // for a frontend that started first; a later one triggers a resend
  RUSD_RETURN_IF_ERROR(HandleReadies());

  // etcd's "fast-forward election ticks": with peers, once one of them is reachable (or an
  // election timeout passed), advance the clock to 2 ticks before the election timeout,
  // so a fresh cluster elects in ~0.2-1.2 s instead of 1-2 s. Pre-vote and the peers'
  // leader lease keep a member that restarts into a live cluster from disrupting it.
  bool fast_forwarded = sole_voter || options_.transport == nullptr;
  const Clock::time_point started = Clock::now();
  Clock::time_point next_tick = Clock::now() + options_.tick_interval;
  ipc::RingReader* readers[] = {&proposals_, &control_};
  while (!should_stop()) {
    const uint64_t frontend_epoch =
        segment_.component(ipc::Component::kFrontend).epoch.load(std::memory_order_acquire);
    if (frontend_epoch != frontend_epoch_) {
      // A new frontend knows nothing yet: tell it who leads (it answers /health from this).
      frontend_epoch_ = frontend_epoch;
      QueueLeaderInfo();
      QueueMemberList();
    } else if (options_.transport != nullptr &&
               options_.transport->peers_version() != peers_version_) {
      QueueMemberList();
    }
    bool worked = TakeControl();
    RUSD_RETURN_IF_ERROR(fatal_);
    CheckRemoved();
    if (removed_) break;
    worked |= TakePeerMessages();
    worked |= TakeSnapshotEvents();
    worked |= TakeProposals();
    const Clock::time_point now = Clock::now();
    if (!fast_forwarded) {
      bool connected = now - started >= options_.tick_interval * options_.election_ticks;
      for (const transport::PeerState& p : options_.transport->Peers()) connected |= p.connected;
      if (connected) {
        for (int i = 0; i + 2 < options_.election_ticks; ++i) node_.Tick();
        fast_forwarded = true;
      }
    }
    if (now >= next_tick) {
      PollPendingReads(now);
      ExpireAwaitingLeader(now);
      node_.Tick();
      next_tick += options_.tick_interval;
      // After a long stall (a slow disk) do not replay the missed ticks in a burst.
      if (next_tick < now) next_tick = now + options_.tick_interval;
    }
    RUSD_RETURN_IF_ERROR(HandleReadies());
    if (node_.CommitAnnouncementDeferred()) {
      if (!announce_due_) {
        announce_due_ = now + options_.commit_announce_delay;
      } else if (Clock::now() >= *announce_due_) {
        node_.FlushCommitAnnouncements();
        RUSD_RETURN_IF_ERROR(HandleReadies());
        announce_due_.reset();
      }
    } else {
      announce_due_.reset();
    }
    SendCommitted();
    FlushReplies();
    if (!worked) {
      // Entries below the log start wait for stored's snapshot install, not ring space.
      const bool backlog = !reply_queue_.empty() ||
                           (next_to_send_ && *next_to_send_ <= node_.log().applied() &&
                            *next_to_send_ >= node_.log().first_index());
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_tick - Clock::now());
      wait = std::clamp(wait, std::chrono::milliseconds(0), options_.tick_interval);
      if (backlog) wait = std::min(wait, kBacklogPoll);
      if (announce_due_) {
        wait = std::min(wait, std::max(std::chrono::milliseconds(0),
                                       std::chrono::ceil<std::chrono::milliseconds>(
                                           *announce_due_ - Clock::now())));
      }
      ipc::WaitForMessages(segment_, readers, wait, options_.idle_yield_window);
    }
  }
  FailAwaitingLeaderOnStop();
  // Clean exit: whatever was written without a sync (hard state commits) becomes durable.
  wal_.AddHardState(raft::HardState{node_.term(), node_.vote(), node_.log().committed()});
  Status st = wal_.Flush(/*sync=*/true);
  FlushReplies();
  spdlog::info("raft: stopping at term {}, commit {}, last index {}", node_.term(),
               node_.log().committed(), node_.log().last_index());
  return st;
}

bool RaftProcess::TakeControl() {
  bool worked = false;
  while (std::optional<ipc::Message> m = control_.TryRead()) {
    worked = true;
    switch (m->type) {
      case MessageType::kResumeFrom: {
        internal::ResumeFrom resume;
        if (!resume.ParseFromString(m->payload)) {
          spdlog::error("store-control: unparsable ResumeFrom");
          break;
        }
        const uint64_t current = segment_.component(ipc::Component::kStored).epoch.load(
            std::memory_order_acquire);
        if (m->sender_epoch < current) {
          spdlog::info("store-control: ignoring ResumeFrom{{{}}} of old stored epoch {}",
                       resume.applied_index(), m->sender_epoch);
          break;
        }
        if (resume.applied_index() > node_.log().last_index()) {
          // stored has applied entries this WAL does not hold (the WAL was lost or
          // replaced): new entries would reuse indexes stored already applied.
          // Serving on would commit writes stored silently drops as already applied.
          fatal_ = Status::DataLoss(
              "stored has applied index " + std::to_string(resume.applied_index()) +
              " but the WAL ends at index " + std::to_string(node_.log().last_index()) +
              ": the WAL was lost or replaced; refusing to serve");
          return worked;
        }
        if (pending_install_ && resume.applied_index() >= pending_install_->index) {
          spdlog::info("stored confirms the snapshot install at index {}",
                       pending_install_->index);
          pending_install_.reset();
        }
        PruneReceivedSnapshots(resume.applied_index());
        AbandonChunkedFrame();  // delivery starts over from stored's cursor
        next_to_send_ = resume.applied_index() + 1;
        resume_epoch_ = m->sender_epoch;
        leader_state_owed_ = true;  // a new stored knows nothing of our leadership
        spdlog::info("stored (epoch {}) resumes after index {}; last committed {}",
                     m->sender_epoch, resume.applied_index(), node_.log().applied());
        break;
      }
      case MessageType::kDurableApplied: {
        internal::DurableApplied durable;
        if (!durable.ParseFromString(m->payload)) {
          spdlog::error("store-control: unparsable DurableApplied");
          break;
        }
        if (durable.index() <= durable_applied_) break;
        durable_applied_ = durable.index();
        PruneReceivedSnapshots(durable_applied_);
        // With peers the log is compacted at stored's snapshots only (kSnapshotReady).
        if (options_.compact_on_snapshot) break;
        // Entries up to here are durable in RocksDB: this node no longer needs them, but a
        // lagging peer may (the leader sends them from its log), so keep a window.
        const uint64_t retain = options_.log_retention_entries;
        if (durable_applied_ <= retain) break;
        const uint64_t compact_to = durable_applied_ - retain;
        node_.CompactLog(compact_to);
        Status st = wal_.Trim(compact_to + 1);
        if (!st.ok()) spdlog::warn("wal trim below {}: {}", compact_to + 1, st.ToString());
        break;
      }
      case MessageType::kLeaseProposals:
        ProposeForStored(m->payload);
        break;
      case MessageType::kSnapshotReady:
        OnSnapshotReady(m->payload);
        break;
      default:
        spdlog::warn("store-control: ignoring frame type {}", static_cast<int>(m->type));
    }
  }
  return worked;
}

bool RaftProcess::TakePeerMessages() {
  if (options_.transport == nullptr || !options_.transport->HasReceived()) return false;
  inbox_.clear();
  options_.transport->TakeReceived(&inbox_);
  for (raft::Message& m : inbox_) node_.Step(std::move(m));
  inbox_.clear();
  return true;
}

void RaftProcess::QueueMemberList() {
  const etcdserverpb::MemberListResponse list = BuildMemberList();
  // etcd_server_is_learner follows this member's entry in the list it publishes.
  bool learner = false;
  for (const auto& m : list.members()) learner |= m.id() == options_.member_id && m.islearner();
  segment_.metrics().Set(ipc::Metric::kIsLearner, learner ? 1 : 0);
  QueueReply(MessageType::kMemberList, 0, list.SerializeAsString());
}

etcdserverpb::MemberListResponse RaftProcess::BuildMemberList() {
  etcdserverpb::MemberListResponse list;
  std::vector<transport::PeerState> peers;
  if (options_.transport != nullptr) {
    peers_version_ = options_.transport->peers_version();
    peers = options_.transport->Peers();
  }
  std::vector<ClusterMember> members = options_.members;
  if (members.empty()) members.push_back(ClusterMember{options_.member_id, "", {}});
  if (options_.membership != nullptr) {
    members.clear();
    for (const auto& r : options_.membership->members()) {
      members.push_back(ClusterMember{r.id(), r.name(), {r.peer_urls().begin(), r.peer_urls().end()}});
    }
  }
  // etcd lists members by id (RaftCluster.Members sorts them): `etcdctl member list` and
  // the member lists of MemberAdd/Remove/Update/Promote come out in that order.
  std::sort(members.begin(), members.end(),
            [](const ClusterMember& a, const ClusterMember& b) { return a.id < b.id; });
  for (const ClusterMember& m : members) {
    etcdserverpb::Member* out = list.add_members();
    out->set_id(m.id);
    out->set_name(m.name);
    if (options_.membership != nullptr) {
      const auto* r = options_.membership->Find(m.id);
      if (r != nullptr && r->is_learner()) out->set_islearner(true);
    }
    for (const auto& u : m.peer_urls) out->add_peerurls(u);
    if (m.id == options_.member_id) {
      if (out->name().empty()) out->set_name(options_.name);
      for (const auto& u : options_.client_urls) out->add_clienturls(u);
      continue;
    }
    for (const transport::PeerState& p : peers) {
      if (p.id != m.id) continue;
      if (!p.name.empty()) out->set_name(p.name);
      for (const auto& u : p.client_urls) out->add_clienturls(u);
    }
  }
  return list;
}

bool RaftProcess::RememberProposal(uint64_t request_id) {
  if (request_id == 0) return true;  // nobody waits for it; nothing to deduplicate by
  if (!seen_ids_.insert(request_id).second) return false;
  seen_order_.push_back(request_id);
  if (seen_order_.size() > options_.dedup_window) {
    seen_ids_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  return true;
}

bool RaftProcess::TakeProposals() {
  ReleaseAwaitingLeader();  // before this turn's proposals: arrival order is kept
  batch_data_.clear();
  batch_ids_.clear();
  batch_epochs_.clear();
  batch_deadlines_.clear();
  read_ids_.clear();
  // Read now, not at the top of the turn: a frontend reaped since then is already dead.
  const uint64_t live_frontend =
      segment_.component(ipc::Component::kFrontend).epoch.load(std::memory_order_acquire);
  const Clock::time_point now = Clock::now();
  bool worked = false;
  size_t frames = 0;
  size_t bytes = 0;
  size_t expired = 0;
  size_t orphaned = 0;
  size_t untrailed = 0;  // frames without a deadline trailer (logged once per turn)
  uint64_t first_untrailed_id = 0;
  int first_untrailed_type = 0;
  while (frames < options_.max_proposals_per_turn &&
         bytes < options_.max_proposal_bytes_per_turn) {
    std::optional<ipc::Message> m = proposals_.TryRead();
    if (!m) break;
    worked = true;
    ++frames;
    if (m->type == MessageType::kReadIndex) {
      read_ids_.push_back(m->id);
      continue;
    }
    if (m->type != MessageType::kPropose && m->type != MessageType::kMemberChange &&
        m->type != MessageType::kMoveLeader) {
      spdlog::warn("proposals: ignoring frame type {} id {}", static_cast<int>(m->type), m->id);
      continue;
    }
    if (m->type == MessageType::kPropose) {
      segment_.counter(ipc::Counter::kProposalsReceived).fetch_add(1, std::memory_order_relaxed);
    }
    const std::optional<Clock::time_point> deadline = ipc::StripRequestTrailer(&m->payload);
    if (!deadline) {
      if (untrailed++ == 0) {
        first_untrailed_id = m->id;
        first_untrailed_type = static_cast<int>(m->type);
      }
      if (m->id != 0) {
        QueueError(m->id, static_cast<int>(StatusCode::kInvalidArgument),
                   "rusd: malformed request frame (no deadline)");
      }
      continue;
    }
    if (m->sender_epoch < live_frontend) {
      // Its frontend died (the supervisor bumped the epoch when it reaped it): the client saw
      // its connection break, an ambiguous outcome, and nobody waits for the answer. etcd
      // loses a request its process dies with before proposing it; so does rusd.
      ++orphaned;
      continue;
    }
    if (*deadline <= now) {
      // The frontend has answered (or is answering) "request timed out"; proposing it now
      // would apply it behind the back of a client that may have moved on.
      ++expired;
      continue;
    }
    if (m->type != MessageType::kPropose) {
      SubmitProposalBatch();  // the proposals read before it go first
      TakeMemberRequest(*m, *deadline);
      continue;
    }
    if (!RememberProposal(m->id)) {
      spdlog::debug("dropping duplicate proposal {:x}", m->id);
      continue;
    }
    if (m->payload.size() > kMaxEntryDataBytes) {
      // Committed, it could never be delivered to stored (see kMaxEntryDataBytes).
      spdlog::warn("refusing a proposal of {} bytes: over the {}-byte entry limit",
                   m->payload.size(), kMaxEntryDataBytes);
      if (m->id != 0) QueueError(m->id, static_cast<int>(StatusCode::kInvalidArgument),
                                 kRequestTooLarge);
      continue;
    }
    bytes += m->payload.size();
    batch_ids_.push_back(m->id);
    batch_epochs_.push_back(m->sender_epoch);
    batch_deadlines_.push_back(*deadline);
    batch_data_.push_back(std::move(m->payload));  // the entry data: the Command, unchanged
  }
  SubmitProposalBatch();
  if (untrailed != 0) {
    // Once per turn: a frontend of another build sends nothing else, as fast as it can.
    spdlog::error("proposals: refused {} frames without a deadline trailer (the first: type {} "
                  "id {:x}); is the frontend of another build? (ipc/request_trailer.h)",
                  untrailed, first_untrailed_type, first_untrailed_id);
  }
  if (expired != 0) {
    spdlog::warn("dropped {} requests read after their deadline (never proposed; the frontend "
                 "answers them \"request timed out\")",
                 expired);
  }
  if (orphaned != 0) {
    spdlog::info("dropped {} requests of a frontend that is gone (epoch below {}; never "
                 "proposed)",
                 orphaned, live_frontend);
  }
  const Clock::time_point read_now = read_ids_.empty() ? Clock::time_point{} : Clock::now();
  for (uint64_t id : read_ids_) {
    Status st = node_.ReadIndex(id);
    // Without a leader etcd 3.4 lets a linearizable read wait for one until its request
    // timeout ("request timed out" then); PollPendingReads asks again meanwhile.
    if (st.ok() || node_.leader() == 0) {
      pending_reads_.Add(id, read_now);
    } else {
      segment_.metrics().Add(ipc::Metric::kReadIndexesFailed);
      QueueError(id, static_cast<int>(st.code()), st.message());
    }
  }
  return worked;
}

void RaftProcess::SubmitProposalBatch() {
  if (batch_data_.empty()) return;
  if (node_.leader() == 0) {
    // etcd 3.4 lets a proposal wait for a leader until its request timeout.
    for (size_t i = 0; i < batch_data_.size(); ++i) {
      AwaitLeader(MessageType::kPropose, batch_ids_[i], batch_data_[i], batch_epochs_[i],
                  batch_deadlines_[i]);
    }
  } else {
    Status st = node_.Propose(batch_data_);
    if (!st.ok()) {
      // Answered here, counted as failed by the frontend when the answer reaches it.
      for (uint64_t id : batch_ids_) {
        if (id != 0) QueueError(id, static_cast<int>(st.code()), st.message());
      }
    }
  }
  batch_data_.clear();
  batch_ids_.clear();
  batch_epochs_.clear();
  batch_deadlines_.clear();
}

Status RaftProcess::HandleReadies() {
  while (node_.HasReady()) {
    raft::Ready rd = node_.GetReady();
    if (rd.soft_state) {
      spdlog::info("raft: {} at term {}, leader {:016x}", raft::RoleName(rd.soft_state->role),
                   node_.term(), rd.soft_state->leader);
      QueueLeaderInfo();
      // etcd's has_leader / is_leader / leader_changes_seen_total (etcdserver/raft.go).
      ipc::MetricsArea& metrics = segment_.metrics();
      metrics.Set(ipc::Metric::kHasLeader, rd.soft_state->leader != 0 ? 1 : 0);
      metrics.Set(ipc::Metric::kIsLeader, rd.soft_state->role == raft::Role::kLeader ? 1 : 0);
      metrics.Set(ipc::Metric::kRaftTerm, node_.term());
      if (rd.soft_state->leader != 0 && rd.soft_state->leader != last_leader_) {
        metrics.Add(ipc::Metric::kLeaderChanges);
      }
      leader_state_owed_ = true;
      // The core forgets read requests when leadership moves: when a leader is elected,
      // the reads waiting fail with "leader changed" (clients retry), as etcd's do; while
      // there is none they keep waiting (asked again, failed at the request timeout).
      if (rd.soft_state->leader != 0 && rd.soft_state->leader != last_leader_) {
        FailPendingReads(kCodeUnavailable, kLeaderChanged);
      }
      last_leader_ = rd.soft_state->leader;
      heartbeat_delays_.Reset();  // as etcd: a new role or leader starts the clocks afresh
      OnLeaderChangedForMoves();
    }
    // Thesis §10.2.1: a leader may send its appends while it writes the same entries to
    // its own disk; it counts itself toward commit only once they are durable (the core
    // does that in Advance). Only when term and vote are already durable (they were made
    // so at candidacy): a leader must never speak for a term its disk does not hold.
    if (options_.transport != nullptr && !rd.messages.empty() &&
        node_.role() == raft::Role::kLeader &&
        (!rd.hard_state ||
         (rd.hard_state->term == persisted_.term && rd.hard_state->vote == persisted_.vote))) {
      early_.clear();
      auto later = std::stable_partition(
          rd.messages.begin(), rd.messages.end(), [](const raft::Message& m) {
            return m.type == raft::MessageType::kAppend || m.type == raft::MessageType::kHeartbeat;
          });
      std::move(rd.messages.begin(), later, std::back_inserter(early_));
      rd.messages.erase(rd.messages.begin(), later);
      ObserveHeartbeats(early_);
      options_.transport->Send(early_);
    }
    Status st = rd.snapshot ? PersistRestoredSnapshot(*rd.snapshot) : Status::Ok();
    if (st.ok()) st = Persist(rd);
    if (!st.ok()) {
      // The WAL is in an unknown state. Proposals of this batch may or may not be on disk:
      // their clients time out (outcome unknown, as in etcd); reads fail now.
      FailPendingReads(kCodeInternal, "etcdserver: " + st.message());
      FlushReplies();
      return st;
    }
    // After the WAL sync above: Raft requires persisting before answering (votes,
    // append acknowledgements; all messages of a follower or candidate). The transport never blocks; it drops when a peer lags.
    if (!rd.messages.empty() && options_.transport != nullptr) SendMessages(rd.messages);
    for (const raft::ReadState& rs : rd.read_states) {
      if (!pending_reads_.Answer(rs.request_id)) continue;  // a repeat answer
      internal::ReadIndexReply reply;
      reply.set_read_index(rs.index);
      reply.set_term(node_.term());
      QueueReply(MessageType::kReadIndexReply, rs.request_id, reply.SerializeAsString());
    }
    for (const raft::Entry& e : rd.committed_entries) {
      if (e.type == raft::EntryType::kConfChange) OnConfChangeCommitted(e);
    }
    if (!rd.committed_entries.empty()) {
      segment_.counter(ipc::Counter::kEntriesCommitted)
          .fetch_add(rd.committed_entries.size(), std::memory_order_relaxed);
    }
    node_.Advance(rd);
  }
  segment_.counter(ipc::Counter::kRaftCommittedIndex)
      .store(node_.log().committed(), std::memory_order_relaxed);
  return Status::Ok();
}

Status RaftProcess::Persist(const raft::Ready& rd) {
  // Raft needs term, vote and entries durable before anything depends on them; a commit
  // index alone may lag (a restart re-learns it by committing an entry of the new term),
  // so it rides along with the next sync (etcd's MustSync rule).
  bool must_sync = !rd.entries.empty();
  if (rd.hard_state) {
    must_sync |= rd.hard_state->term != persisted_.term || rd.hard_state->vote != persisted_.vote;
    persisted_ = *rd.hard_state;
  }
  if (!rd.entries.empty()) wal_.AddEntries(rd.entries);
  if (rd.hard_state) wal_.AddHardState(*rd.hard_state);
  // A commit-index-only change stays staged: it reaches the disk with the next group's
  // single write, so a batch costs one pwrite + one fdatasync, not two writes.
  if (!must_sync) return Status::Ok();
  const uint64_t before = wal_.fsyncs();
  // etcd_disk_wal_fsync_duration_seconds: here the group's pwrite + fdatasync.
  const auto sync_start = std::chrono::steady_clock::now();
  RUSD_RETURN_IF_ERROR(wal_.Flush(/*sync=*/true));
  segment_.metrics().histogram(ipc::Histogram::kWalFsync).Observe(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                           sync_start)
          .count()));
  segment_.counter(ipc::Counter::kWalFsyncs)
      .fetch_add(wal_.fsyncs() - before, std::memory_order_relaxed);
  return Status::Ok();
}

void RaftProcess::SendCommitted() {
  if (!next_to_send_) return;
  const uint64_t stored_epoch =
      segment_.component(ipc::Component::kStored).epoch.load(std::memory_order_acquire);
  if (stored_epoch != resume_epoch_) {
    // stored restarted (or was reaped) since it told us where to resume: wait for the new
    // incarnation's kResumeFrom instead of pushing entries into the void.
    spdlog::info("stored epoch {} -> {}: holding entries until it asks to resume",
                 resume_epoch_, stored_epoch);
    next_to_send_.reset();
    AbandonChunkedFrame();
    return;
  }
  const raft::RaftLog& log = node_.log();
  if (chunked_) {
    // Finish the frame under way first: stored must get entries in order.
    Result<bool> done = committed_.TryWriteChunks(MessageType::kCommittedEntries,
                                                  chunked_->first, chunked_->frame,
                                                  &chunked_->offset);
    if (!done.ok()) {
      // Only a frame over the ring's message limit fails (proposals over it are refused,
      // kMaxEntryDataBytes, so this entry came from a member without that check). Retrying
      // would stall delivery for good without a word: stop, loudly, and let the supervisor
      // restart (the entry stays committed; the operator must intervene).
      spdlog::critical("cannot deliver committed entry {} to stored: {}", chunked_->first,
                       done.status().ToString());
      fatal_ = Status::Internal("committed entry " + std::to_string(chunked_->first) +
                                " cannot be delivered to stored: " + done.status().message());
      return;
    }
    if (!*done) return;  // the ring is full: more next turn
    *next_to_send_ = chunked_->next;
    chunked_.reset();
  }
  if (leader_state_owed_ && !SendLeaderState()) return;  // ring full: entries wait behind it
  const uint64_t limit = log.applied();  // committed and durable in our WAL
  uint64_t next = *next_to_send_;
  if (next > limit) return;
  if (next < log.first_index()) {
    if (SendInstallOrder(next)) return;
    if (gap_logged_at_ != next) {
      spdlog::error("stored asks for entry {} but the log starts at {} (snapshot needed)",
                    next, log.first_index());
      gap_logged_at_ = next;
    }
    return;
  }
  // A frame TryWrite takes whole must stay well below the ring (all or nothing: one above
  // about half of it may never fit).
  const size_t frame_limit =
      std::min<size_t>(options_.max_frame_bytes, committed_.capacity() / 4);
  while (next <= limit) {
    frame_.clear();
    const uint64_t first = next;
    while (next <= limit) {
      const raft::Entry& e = log.At(next);
      if (!frame_.empty() && frame_.size() + EncodedEntrySize(e) > frame_limit) break;
      AppendEntryToBatch(e, &frame_);
      ++next;
    }
    if (frame_.size() > frame_limit) {
      // One entry bigger than a frame (up to --max-request-bytes, maybe more than the
      // ring): it goes out in chunks as stored drains, a part per turn, never waiting here
      // (this thread ticks Raft: a wait would stall heartbeats and cause elections).
      chunked_ = ChunkedFrame{first, next, std::move(frame_), 0};
      *next_to_send_ = first;
      SendCommitted();
      return;
    }
    if (!committed_.TryWrite(MessageType::kCommittedEntries, first, frame_).ok()) {
      next = first;  // ring full: stored drains it, we come back next turn
      break;
    }
  }
  *next_to_send_ = next;
}

void RaftProcess::AbandonChunkedFrame() {
  if (!chunked_) return;
  // The stored it was for restarted (it resumes from its own applied index): cancel the
  // chunks out so far, so no reader ever holds the partial message.
  if (chunked_->offset > 0) committed_.AbortChunks(chunked_->first);
  chunked_.reset();
}

bool RaftProcess::SendLeaderState() {
  internal::LeaderState state;
  state.set_term(node_.term());
  state.set_is_leader(node_.role() == raft::Role::kLeader);
  if (!committed_.TryWrite(MessageType::kLeaderState, node_.term(), state.SerializeAsString())
           .ok()) {
    return false;
  }
  leader_state_owed_ = false;
  return true;
}

// Commands stored originated (lease expiries) become proposals only while this node still
// leads in the term stored saw: a revocation decided by a deposed leader's clock is dropped.
void RaftProcess::ProposeForStored(const std::string& payload) {
  internal::LeaseProposals proposals;
  if (!proposals.ParseFromString(payload)) {
    spdlog::error("store-control: unparsable LeaseProposals");
    return;
  }
  if (node_.role() != raft::Role::kLeader || proposals.term() != node_.term()) {
    spdlog::info("store-control: dropping {} lease proposals of term {} (term {}, {})",
                 proposals.commands_size(), proposals.term(), node_.term(),
                 raft::RoleName(node_.role()));
    return;
  }
  std::vector<std::string> data(proposals.commands().begin(), proposals.commands().end());
  Status st = node_.Propose(data);
  if (!st.ok()) spdlog::warn("lease proposals not accepted: {}", st.ToString());
}

void RaftProcess::QueueReply(MessageType type, uint64_t id, std::string payload) {
  if (reply_queue_.empty() && replies_.TryWrite(type, id, payload).ok()) return;
  if (reply_queue_.size() >= options_.max_queued_replies) {
    // The frontend is not draining its ring (down or stuck): its requests time out anyway.
    spdlog::warn("raft-replies: overflow queue full, dropping reply {} for {:x}",
                 static_cast<int>(reply_queue_.front().type), reply_queue_.front().id);
    reply_queue_.pop_front();
  }
  reply_queue_.push_back(Reply{type, id, std::move(payload)});
}

void RaftProcess::QueueLeaderInfo() {
  internal::LeaderInfo info;
  info.set_leader_id(node_.leader());
  info.set_term(node_.term());
  QueueReply(MessageType::kLeaderInfo, 0, info.SerializeAsString());
}

void RaftProcess::QueueError(uint64_t id, int code, const std::string& message) {
  internal::ErrorReply err;
  err.set_code(code);
  err.set_message(message);
  QueueReply(MessageType::kError, id, err.SerializeAsString());
}

void RaftProcess::FlushReplies() {
  while (!reply_queue_.empty()) {
    const Reply& r = reply_queue_.front();
    if (!replies_.TryWrite(r.type, r.id, r.payload).ok()) return;
    reply_queue_.pop_front();
  }
}

bool RaftProcess::AwaitLeader(MessageType type, uint64_t id, std::string& payload,
                              uint64_t frontend_epoch, Clock::time_point deadline) {
  // The wait ends early enough that raftd's answer, etcd's, reaches the client before the
  // frontend's own timeout; a frame without a deadline waits leader_wait from now.
  const Clock::time_point give_up_at = deadline == ipc::kNoDeadline
                                           ? Clock::now() + options_.leader_wait
                                           : deadline - options_.leader_wait_margin;
  if (awaiting_leader_.Add(type, id, payload, frontend_epoch, give_up_at, deadline)) return true;
  spdlog::warn("no leader: {} bytes of requests already wait for one; refusing request {:x}",
               awaiting_leader_.bytes(), id);
  if (id != 0) QueueError(id, kCodeUnavailable, "etcdserver: no leader");
  return false;
}

void RaftProcess::ReleaseAwaitingLeader() {
  if (awaiting_leader_.empty() || node_.leader() == 0) return;
  // A turn may come long after the last tick (a slow fsync): what is already past its wait
  // fails unproposed rather than being proposed after its client gave up.
  ExpireAwaitingLeader(Clock::now());
  if (awaiting_leader_.empty()) return;
  std::vector<LeaderWaitQueue::Request> waiting = awaiting_leader_.TakeAll();
  spdlog::info("leader {:016x} known: proposing {} requests that waited for one",
               node_.leader(), waiting.size());
  std::vector<std::string> data;
  std::vector<uint64_t> ids;
  size_t bytes = 0;
  auto propose = [&] {
    bytes = 0;
    if (data.empty()) return;
    Status st = node_.Propose(data);
    if (!st.ok()) {
      for (uint64_t id : ids) {
        if (id != 0) QueueError(id, static_cast<int>(st.code()), st.message());
      }
    }
    data.clear();
    ids.clear();
  };
  for (LeaderWaitQueue::Request& r : waiting) {
    if (r.type == MessageType::kPropose) {
      bytes += r.payload.size();
      ids.push_back(r.id);
      data.push_back(std::move(r.payload));
      // The queue may hold far more than a turn's proposals: in pieces no larger than a
      // turn's, so that a follower's forwarded proposal stays within a transport frame.
      if (data.size() >= options_.max_proposals_per_turn ||
          bytes >= options_.max_proposal_bytes_per_turn) {
        propose();
      }
      continue;
    }
    propose();  // the proposals before it go first
    ipc::Message m;
    m.type = r.type;
    m.id = r.id;
    m.sender_epoch = r.frontend_epoch;
    m.payload = std::move(r.payload);
    // Its own deadline: should it have to wait again, it still gives up before its client.
    TakeMemberRequest(m, r.deadline);
  }
  propose();
}

void RaftProcess::ExpireAwaitingLeader(Clock::time_point now) {
  if (awaiting_leader_.empty()) return;
  const uint64_t live_frontend =
      segment_.component(ipc::Component::kFrontend).epoch.load(std::memory_order_acquire);
  const size_t orphaned = awaiting_leader_.TakeOrphaned(live_frontend).size();
  if (orphaned != 0) {
    spdlog::info("{} requests waiting for a leader belong to a frontend that is gone: dropped "
                 "(never proposed)",
                 orphaned);
  }
  std::vector<LeaderWaitQueue::Request> expired = awaiting_leader_.TakeExpired(now);
  if (expired.empty()) return;
  spdlog::warn("{} requests waited for a leader until their deadline: context deadline "
               "exceeded (never proposed)",
               expired.size());
  // The frontend counts the failed proposals among them when the answers reach it.
  for (const LeaderWaitQueue::Request& r : expired) {
    if (r.id != 0) {
      QueueError(r.id, static_cast<int>(StatusCode::kUnknown), kProposeContextExpired);
    }
  }
}

void RaftProcess::FailAwaitingLeaderOnStop() {
  if (awaiting_leader_.empty()) return;
  std::vector<LeaderWaitQueue::Request> waiting = awaiting_leader_.TakeAll();
  spdlog::info("stopping: {} requests that waited for a leader fail with \"{}\" (never "
               "proposed)",
               waiting.size(), kServerStopped);
  for (const LeaderWaitQueue::Request& r : waiting) {
    if (r.id != 0) QueueError(r.id, kCodeUnavailable, kServerStopped);
  }
}

void RaftProcess::FailPendingReads(int code, const std::string& message) {
  segment_.metrics().Add(ipc::Metric::kReadIndexesFailed, pending_reads_.size());
  for (uint64_t id : pending_reads_.TakeAll()) QueueError(id, code, message);
}

void RaftProcess::PollPendingReads(Clock::time_point now) {
  if (pending_reads_.empty()) return;
  ReadIndexWaiters::Due due = pending_reads_.Poll(now);
  if (!due.expired.empty()) {
    spdlog::warn("{} read-index requests unanswered for {} ms: timed out (leader {:016x})",
                 due.expired.size(), options_.read_timeout.count(), node_.leader());
    segment_.metrics().Add(ipc::Metric::kReadIndexesFailed, due.expired.size());
    for (uint64_t id : due.expired) QueueError(id, kCodeUnavailable, kRequestTimedOut);
  }
  // etcd 3.5 counts a slow read index each time its retry timer fires (the answer did not
  // come within readIndexRetryTime) and when it gives up; rusd asks per request, so it
  // counts per request.
  segment_.metrics().Add(ipc::Metric::kSlowReadIndexes, due.retry.size() + due.expired.size());
  // A leader's own reads wait for its confirmation rounds, which nothing loses; a
  // follower's went over the network to the leader and may have been dropped: ask again.
  if (due.retry.empty() || node_.role() == raft::Role::kLeader) return;
  spdlog::debug("asking the leader again for {} unanswered read indexes", due.retry.size());
  for (uint64_t id : due.retry) {
    Status st = node_.ReadIndex(id);
    if (st.ok() || node_.leader() == 0) continue;  // no leader: wait on (see TakeProposals)
    pending_reads_.Answer(id);
    segment_.metrics().Add(ipc::Metric::kReadIndexesFailed);
    QueueError(id, static_cast<int>(st.code()), st.message());
  }
}

void RaftProcess::ObserveHeartbeats(const std::vector<raft::Message>& msgs) {
  Clock::time_point now{};
  for (const raft::Message& m : msgs) {
    if (m.type != raft::MessageType::kHeartbeat) continue;
    if (now == Clock::time_point{}) now = Clock::now();
    const Clock::duration late = heartbeat_delays_.Observe(m.to, now);
    if (late == Clock::duration::zero()) continue;
    spdlog::warn("heartbeat to {:x} sent {} ms later than 2 heartbeat intervals (slow disk or "
                 "overloaded machine?)",
                 m.to, std::chrono::duration_cast<std::chrono::milliseconds>(late).count());
    segment_.metrics().Add(ipc::Metric::kHeartbeatSendFailures);
  }
}

}  // namespace rusd::raftd
