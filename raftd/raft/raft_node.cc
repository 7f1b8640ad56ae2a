// RaftNode: construction, elections, the message dispatch and the Ready cycle. The other
// concepts live beside it: replication.cc (appends, flow control, commit), read_index.cc,
// membership.cc (configuration changes, leader transfer), snapshot.cc.
#include "raftd/raft/raft_node.h"

#include <algorithm>
#include <cassert>

namespace rusd::raft {

const char* RoleName(Role r) {
  switch (r) {
    case Role::kFollower: return "follower";
    case Role::kPreCandidate: return "pre-candidate";
    case Role::kCandidate: return "candidate";
    case Role::kLeader: return "leader";
  }
  return "?";
}

const char* MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kPreVote: return "PreVote";
    case MessageType::kPreVoteResp: return "PreVoteResp";
    case MessageType::kVote: return "Vote";
    case MessageType::kVoteResp: return "VoteResp";
    case MessageType::kAppend: return "Append";
    case MessageType::kAppendResp: return "AppendResp";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kHeartbeatResp: return "HeartbeatResp";
    case MessageType::kPropose: return "Propose";
    case MessageType::kReadIndex: return "ReadIndex";
    case MessageType::kReadIndexResp: return "ReadIndexResp";
    case MessageType::kSnapshot: return "Snapshot";
    case MessageType::kTimeoutNow: return "TimeoutNow";
    case MessageType::kTransferLeader: return "TransferLeader";
  }
  return "?";
}

namespace {

// Messages a node sends to its own leader on behalf of a local caller: they carry no term
// (etcd's "local" messages) and never move anyone's term.
bool IsLocal(MessageType t) {
  return t == MessageType::kPropose || t == MessageType::kReadIndex ||
         t == MessageType::kTransferLeader;
}

ConfState InitialConf(const Config& config, const RecoveredState& recovered) {
  ConfState conf;
  if (recovered.conf_state) {
    conf = *recovered.conf_state;
  } else {
    conf.voters = config.voters;
    conf.learners = config.learners;
    if (conf.voters.empty() && conf.learners.empty()) conf.voters.push_back(config.id);
  }
  for (auto* v : {&conf.voters, &conf.learners}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  // A member listed as both is a voter (a learner can only be promoted).
  std::erase_if(conf.learners, [&](uint64_t id) {
    return std::binary_search(conf.voters.begin(), conf.voters.end(), id);
  });
  return conf;
}

}  // namespace

Status RaftNode::ValidateConfig(const Config& c) {
  if (c.id == 0) return Status::InvalidArgument("raft: member id 0 is reserved for \"none\"");
  if (c.heartbeat_tick <= 0) return Status::InvalidArgument("raft: heartbeat tick must be > 0");
  if (c.election_tick <= c.heartbeat_tick) {
    return Status::InvalidArgument("raft: election tick (" + std::to_string(c.election_tick) +
                                   ") must be greater than heartbeat tick (" +
                                   std::to_string(c.heartbeat_tick) + ")");
  }
  for (uint64_t l : c.learners) {
    if (std::find(c.voters.begin(), c.voters.end(), l) != c.voters.end()) {
      return Status::InvalidArgument("raft: member " + std::to_string(l) +
                                     " is both a voter and a learner");
    }
    if (l == 0) return Status::InvalidArgument("raft: learner id 0");
  }
  if (std::find(c.voters.begin(), c.voters.end(), 0) != c.voters.end()) {
    return Status::InvalidArgument("raft: voter id 0");
  }
  if (c.max_inflight_messages == 0 || c.max_entries_per_message == 0) {
    return Status::InvalidArgument("raft: inflight window and entries per message must be > 0");
  }
  return Status::Ok();
}

RaftNode::RaftNode(const Config& config, RecoveredState recovered)
    : id_(config.id),
      election_tick_(std::max(1, config.election_tick)),
      heartbeat_tick_(std::max(1, config.heartbeat_tick)),
      pre_vote_(config.pre_vote),
      check_quorum_(config.check_quorum),
      defer_commit_announcements_(config.defer_commit_announcements),
      max_entries_per_message_(std::max<size_t>(1, config.max_entries_per_message)),
      max_bytes_per_message_(config.max_bytes_per_message),
      max_inflight_messages_(std::max<size_t>(1, config.max_inflight_messages)),
      max_inflight_bytes_(config.max_inflight_bytes),
      rng_(config.random_seed != 0 ? config.random_seed : config.id),
      log_(recovered.prev_index, recovered.prev_term, std::move(recovered.entries)) {
  assert(id_ != 0);
  conf_ = InitialConf(config, recovered);
  snapshot_conf_ = conf_;
  const HardState& hs = recovered.hard_state;
  term_ = hs.term;
  vote_ = hs.vote;
  log_.CommitTo(std::min(hs.commit, log_.last_index()));
  log_.AppliedTo(std::clamp(config.applied, log_.applied(), log_.committed()));
  // Configuration changes the caller applied before the restart are in force again.
  for (const Entry& e : log_.Slice(log_.first_index(), log_.applied())) {
    if (e.type == EntryType::kConfChange) ApplyConfChangeEntry(e);
  }
  prev_hard_state_ = HardState{term_, vote_, log_.committed()};
  BecomeFollower(term_, 0);
  prev_soft_state_ = SoftState{leader_, role_};
}

bool RaftNode::IsVoter(uint64_t id) const {
  return std::binary_search(conf_.voters.begin(), conf_.voters.end(), id);
}

bool RaftNode::IsLearner(uint64_t id) const {
  return std::binary_search(conf_.learners.begin(), conf_.learners.end(), id);
}

bool RaftNode::CommittedInCurrentTerm() const {
  return log_.Term(log_.committed()) == term_;
}

void RaftNode::ResetRandomizedTimeout() {
  randomized_election_timeout_ =
      election_tick_ + static_cast<int>(rng_() % static_cast<uint64_t>(election_tick_));
}

void RaftNode::Reset(uint64_t term) {
  if (term != term_) {
    term_ = term;
    vote_ = 0;
  }
  leader_ = 0;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedTimeout();
  votes_.clear();
  progress_.clear();
  pending_reads_.clear();
  reads_before_commit_.clear();
  read_round_wanted_ = false;
  reads_to_forward_.clear();  // the caller fails them when it sees the leader change
  read_answers_.clear();
  lead_transferee_ = 0;
  pending_conf_index_ = 0;
}

void RaftNode::BecomeFollower(uint64_t term, uint64_t leader) {
  Reset(term);
  role_ = Role::kFollower;
  leader_ = leader;
}

void RaftNode::BecomePreCandidate() {
  // A pre-candidate changes neither its term nor its vote: a partitioned node that keeps
  // failing pre-votes cannot disrupt the cluster with ever higher terms (thesis §9.6).
  votes_.clear();
  leader_ = 0;
  role_ = Role::kPreCandidate;
}

void RaftNode::BecomeCandidate() {
  Reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void RaftNode::BecomeLeader() {
  Reset(term_);
  role_ = Role::kLeader;
  leader_ = id_;
  for (uint64_t v : conf_.voters) AddProgress(v, false);
  for (uint64_t l : conf_.learners) AddProgress(l, true);
  if (auto self = progress_.find(id_); self != progress_.end()) {
    self->second.match = log_.stabled();
    self->second.BecomeReplicate();
    self->second.recent_active = true;
  }
  // §5.4.2 / §8: an entry of the new term lets earlier-term entries commit, and tells
  // ReadIndex when the commit index is known to be current.
  Entry e;
  e.index = log_.last_index() + 1;
  e.term = term_;
  e.type = EntryType::kEmpty;
  log_.AppendLeaderEntry(std::move(e));
  // No configuration change until everything up to our own first entry is applied: a
  // change may be pending from the previous leader, and a new leader must commit an
  // entry of its term first (the single-server change bug, Ongaro 2015).
  pending_conf_index_ = log_.last_index();
  BroadcastAppend();
}

void RaftNode::Campaign() {
  if (role_ == Role::kLeader || !IsVoter(id_)) return;
  StartElection(pre_vote_, false);
}

void RaftNode::StartElection(bool pre_vote, bool transfer) {
  if (pre_vote) {
    BecomePreCandidate();
  } else {
    BecomeCandidate();
  }
  const uint64_t vote_term = pre_vote ? term_ + 1 : term_;
  Poll(id_, true, pre_vote);
  if (role_ == Role::kLeader || (pre_vote && role_ == Role::kCandidate)) return;
  for (uint64_t v : conf_.voters) {
    if (v == id_) continue;
    Message m;
    m.type = pre_vote ? MessageType::kPreVote : MessageType::kVote;
    m.to = v;
    m.term = vote_term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    if (transfer) m.context = kCampaignTransfer;
    Send(std::move(m));
  }
}

void RaftNode::Poll(uint64_t from, bool granted, bool pre_vote) {
  if (!IsVoter(from)) return;
  votes_.emplace(from, granted);  // only the first answer of each voter counts
  size_t yes = 0;
  size_t no = 0;
  for (const auto& [id, g] : votes_) (g ? yes : no) += 1;
  if (yes >= Quorum()) {
    if (pre_vote) {
      StartElection(false, false);
    } else {
      BecomeLeader();
    }
  } else if (no >= Quorum()) {
    BecomeFollower(term_, 0);
  }
}

void RaftNode::Tick() {
  if (role_ == Role::kLeader) {
    ++heartbeat_elapsed_;
    ++election_elapsed_;
    if (election_elapsed_ >= election_tick_) {
      election_elapsed_ = 0;
      if (check_quorum_) {
        // Thesis §6.2: a leader that has not heard from a quorum for an election timeout
        // steps down, so clients stop reading stale data from it.
        size_t active = 0;
        for (auto& [id, pr] : progress_) {
          if (IsVoter(id) && (id == id_ || pr.recent_active)) ++active;
          if (id != id_) pr.recent_active = false;
        }
        if (active < Quorum()) {
          BecomeFollower(term_, 0);
          return;
        }
      }
      // A transfer that did not finish within an election timeout is abandoned: the
      // leader takes proposals again (etcd does the same). A removed leader tries anew.
      AbortLeaderTransfer();
      if (!IsVoter(id_)) HandOverLeadership();
    }
    if (heartbeat_elapsed_ >= heartbeat_tick_) {
      heartbeat_elapsed_ = 0;
      BroadcastHeartbeat(pending_reads_.empty() ? 0 : read_round_);
    }
    return;
  }
  ++election_elapsed_;
  if (IsVoter(id_) && election_elapsed_ >= randomized_election_timeout_) {
    election_elapsed_ = 0;
    Campaign();
  }
}

void RaftNode::Step(Message m) {
  const bool local = IsLocal(m.type);
  if (!local && m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      // Thesis §4.2.3: while we hear from a live leader, ignore disruptive candidates
      // (unless the leader itself asked for the election: a leader transfer).
      const bool forced = m.type == MessageType::kVote && m.context == kCampaignTransfer;
      bool in_lease = check_quorum_ && leader_ != 0 && election_elapsed_ < election_tick_;
      if (in_lease && !forced) return;
    }
    if (m.type == MessageType::kPreVote) {
      // Never change term for a pre-vote.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // Granted pre-votes carry the future term; we move there when we win.
    } else if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnapshot) {
      BecomeFollower(m.term, m.from);
    } else {
      BecomeFollower(m.term, 0);
    }
  } else if (!local && m.term < term_) {
    if ((check_quorum_ || pre_vote_) &&
        (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
         m.type == MessageType::kSnapshot)) {
      // A stale leader learns our term and steps down; without this a node partitioned
      // with higher term could never rejoin under check-quorum (etcd does the same).
      Message r;
      r.type = MessageType::kAppendResp;
      r.to = m.from;
      Send(std::move(r));
    } else if (m.type == MessageType::kPreVote) {
      Message r;
      r.type = MessageType::kPreVoteResp;
      r.to = m.from;
      r.reject = true;
      Send(std::move(r));
    }
    return;
  }

  if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
    HandleVoteRequest(m);
    return;
  }
  if ((m.type == MessageType::kVoteResp || m.type == MessageType::kPreVoteResp) &&
      m.commit > log_.committed() && m.commit <= log_.last_index() &&
      log_.MatchTerm(m.commit, m.log_term)) {
    log_.CommitTo(m.commit);
  }
  switch (role_) {
    case Role::kLeader: StepLeader(m); break;
    case Role::kFollower: StepFollower(m); break;
    case Role::kPreCandidate:
    case Role::kCandidate: StepCandidate(m); break;
  }
}

void RaftNode::HandleVoteRequest(const Message& m) {
  const bool pre = m.type == MessageType::kPreVote;
  const bool can_vote = vote_ == m.from || (vote_ == 0 && leader_ == 0) || (pre && m.term > term_);
  Message r;
  r.type = pre ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  r.to = m.from;
  if (can_vote && log_.IsUpToDate(m.index, m.log_term)) {
    r.term = m.term;  // a pre-vote answer carries the term asked about
    if (!pre) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    r.term = term_;
    r.reject = true;
  }
  // Our commit index and its term: a candidate holding that entry learns it is committed
  // (log matching). Without this a voter could wait forever for the vote of a removed
  // leader whose longer log makes it refuse, not knowing the removal is committed.
  r.commit = log_.committed();
  r.log_term = log_.Term(log_.committed()).value_or(0);
  Send(std::move(r));
}

void RaftNode::StepLeader(Message& m) {
  switch (m.type) {
    case MessageType::kPropose:
      AppendProposals(std::move(m.entries));
      return;
    case MessageType::kReadIndex:
      if (m.entries.empty()) {
        LeaderReadIndex(m.context, m.from);
      } else {
        for (const Entry& e : m.entries) LeaderReadIndex(e.index, m.from);
      }
      return;
    case MessageType::kAppendResp:
      HandleAppendResp(m);
      return;
    case MessageType::kHeartbeatResp:
      HandleHeartbeatResp(m);
      return;
    case MessageType::kTransferLeader:
      HandleTransferLeader(m.context);
      return;
    default:
      return;
  }
}

void RaftNode::StepFollower(Message& m) {
  switch (m.type) {
    case MessageType::kPropose:
    case MessageType::kReadIndex:
    case MessageType::kTransferLeader:
      if (leader_ == 0) return;  // dropped; the proposer times out, as in etcd
      m.to = leader_;
      Send(std::move(m));
      return;
    case MessageType::kAppend:
      election_elapsed_ = 0;
      leader_ = m.from;
      HandleAppend(m);
      return;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      leader_ = m.from;
      HandleHeartbeat(m);
      return;
    case MessageType::kSnapshot:
      election_elapsed_ = 0;
      leader_ = m.from;
      HandleSnapshot(m);
      return;
    case MessageType::kReadIndexResp:
      if (m.entries.empty()) {
        read_states_.push_back(ReadState{m.context, m.index});
      } else {
        for (const Entry& e : m.entries) read_states_.push_back(ReadState{e.index, m.index});
      }
      return;
    case MessageType::kTimeoutNow:
      // Our leader hands over: campaign at once, skipping pre-vote (we are known up to
      // date) and telling voters to answer even within their leader lease.
      if (IsVoter(id_)) StartElection(false, true);
      return;
    default:
      return;
  }
}

void RaftNode::StepCandidate(Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      BecomeFollower(m.term, m.from);
      HandleAppend(m);
      return;
    case MessageType::kHeartbeat:
      BecomeFollower(m.term, m.from);
      HandleHeartbeat(m);
      return;
    case MessageType::kSnapshot:
      BecomeFollower(m.term, m.from);
      HandleSnapshot(m);
      return;
    case MessageType::kPreVoteResp:
      if (role_ == Role::kPreCandidate) Poll(m.from, !m.reject, true);
      return;
    case MessageType::kVoteResp:
      if (role_ == Role::kCandidate) Poll(m.from, !m.reject, false);
      return;
    default:
      return;  // proposals without a leader are dropped
  }
}

bool RaftNode::AppendProposals(std::vector<Entry>&& entries) {
  // While leadership moves, new entries would only delay the transferee's catch-up.
  if (lead_transferee_ != 0) return false;
  for (Entry& e : entries) {
    if (e.type == EntryType::kConfChange) {
      // One change at a time, and only once this leader's first entry is applied; a
      // refused change (forwarded by a follower) becomes a no-op, as in etcd.
      // A change that would leave no voter is refused the same way (the proposer may
      // have judged it on a stale configuration).
      Result<ConfChange> cc = DecodeConfChange(e.data);
      if (pending_conf_index_ > log_.applied() || !cc.ok() ||
          ApplyToConfState(conf_, *cc).voters.empty()) {
        e.type = EntryType::kEmpty;
        e.data.clear();
      } else {
        pending_conf_index_ = log_.last_index() + 1;
      }
    }
    e.index = log_.last_index() + 1;
    e.term = term_;
    log_.AppendLeaderEntry(std::move(e));
  }
  BroadcastAppend();
  return true;
}

Status RaftNode::Propose(std::span<std::string> data) {
  std::vector<Entry> entries(data.size());
  for (size_t i = 0; i < data.size(); ++i) entries[i].data = std::move(data[i]);
  if (role_ == Role::kLeader) {
    if (!AppendProposals(std::move(entries))) return Status::Unavailable(kProposalDropped);
    return Status::Ok();
  }
  if (leader_ == 0) return Status::Unavailable("etcdserver: no leader");
  Message m;
  m.type = MessageType::kPropose;
  m.to = leader_;
  m.entries = std::move(entries);
  Send(std::move(m));
  return Status::Ok();
}

Status RaftNode::ProposeConfChange(const ConfChange& cc) {
  if (cc.node_id == 0) return Status::InvalidArgument("raft: conf change for node id 0");
  if (ApplyToConfState(conf_, cc).voters.empty()) {
    return Status::FailedPrecondition("raft: cannot remove the only voter");
  }
  std::vector<Entry> entries(1);
  entries[0].type = EntryType::kConfChange;
  entries[0].data = EncodeConfChange(cc);
  if (role_ == Role::kLeader) {
    if (lead_transferee_ != 0) return Status::Unavailable(kProposalDropped);
    if (pending_conf_index_ > log_.applied()) {
      return Status::FailedPrecondition(
          "raft: a configuration change is pending (wait until index " +
          std::to_string(pending_conf_index_) + " is applied)");
    }
    AppendProposals(std::move(entries));
    return Status::Ok();
  }
  if (leader_ == 0) return Status::Unavailable("etcdserver: no leader");
  Message m;
  m.type = MessageType::kPropose;
  m.to = leader_;
  m.entries = std::move(entries);
  Send(std::move(m));
  return Status::Ok();
}

Status RaftNode::ReadIndex(uint64_t request_id) {
  if (role_ == Role::kLeader) {
    LeaderReadIndex(request_id, id_);
    return Status::Ok();
  }
  if (leader_ == 0) return Status::Unavailable("etcdserver: no leader");
  // Forwarded with the next Ready, together with every other read asked before it.
  reads_to_forward_.push_back(request_id);
  return Status::Ok();
}

Status RaftNode::TransferLeadership(uint64_t to) {
  if (!IsVoter(to)) {
    return Status::FailedPrecondition("raft: leader transfer to " + std::to_string(to) +
                                      ", which is not a voter");
  }
  if (role_ == Role::kLeader) {
    HandleTransferLeader(to);
    return Status::Ok();
  }
  if (leader_ == 0) return Status::Unavailable("etcdserver: no leader");
  Message m;
  m.type = MessageType::kTransferLeader;
  m.to = leader_;
  m.context = to;
  Send(std::move(m));
  return Status::Ok();
}

void RaftNode::Send(Message m) {
  m.from = id_;
  // Local messages carry no term; answers to votes set their term explicitly.
  if (m.term == 0 && !IsLocal(m.type)) m.term = term_;
  msgs_.push_back(std::move(m));
}

bool RaftNode::HasReady() const {
  return SoftState{leader_, role_} != prev_soft_state_ ||
         HardState{term_, vote_, log_.committed()} != prev_hard_state_ ||
         restored_snapshot_ || !log_.Unstable().empty() || !msgs_.empty() ||
         log_.HasNextCommitted() || !read_states_.empty() ||
         (role_ == Role::kLeader && read_round_wanted_) || !reads_to_forward_.empty() ||
         !read_answers_.empty() ||
         (role_ == Role::kLeader && commit_owed_ && !defer_commit_announcements_);
}

Ready RaftNode::GetReady() {
  // Every read that arrived since the last Ready shares this one confirmation round.
  if (role_ == Role::kLeader && read_round_wanted_) StartReadRound();
  FlushReads();
  AnnounceCommit();
  Ready rd;
  SoftState ss{leader_, role_};
  if (ss != prev_soft_state_) rd.soft_state = ss;
  HardState hs{term_, vote_, log_.committed()};
  if (hs != prev_hard_state_) rd.hard_state = hs;
  rd.snapshot = restored_snapshot_;
  rd.entries = log_.Unstable();
  rd.committed_entries = log_.NextCommitted();
  rd.messages = std::move(msgs_);
  msgs_.clear();
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  return rd;
}

void RaftNode::Advance(const Ready& rd) {
  if (rd.soft_state) prev_soft_state_ = *rd.soft_state;
  if (rd.hard_state) prev_hard_state_ = *rd.hard_state;
  if (rd.snapshot && restored_snapshot_ == rd.snapshot) restored_snapshot_.reset();
  if (!rd.entries.empty()) {
    log_.StableTo(rd.entries.back().index, rd.entries.back().term);
    if (role_ == Role::kLeader) {
      if (auto self = progress_.find(id_); self != progress_.end()) {
        self->second.MaybeUpdate(log_.stabled());
      }
    }
  }
  if (!rd.committed_entries.empty()) {
    // Copy what is needed first: applying a change may make this node step down, and
    // nothing below may touch the log entries the spans point to.
    const uint64_t last = rd.committed_entries.back().index;
    log_.AppliedTo(last);
    for (const Entry& e : rd.committed_entries) {
      if (e.type == EntryType::kConfChange) ApplyConfChangeEntry(e);
    }
  }
  if (role_ == Role::kLeader && !rd.entries.empty() && MaybeCommit()) BroadcastCommit();
}

}  // namespace rusd::raft
