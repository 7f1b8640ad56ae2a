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
  }
  return "?";
}

RaftNode::RaftNode(const Config& config, RecoveredState recovered)
    : id_(config.id),
      voters_(config.voters),
      election_tick_(std::max(1, config.election_tick)),
      heartbeat_tick_(std::max(1, config.heartbeat_tick)),
      pre_vote_(config.pre_vote),
      check_quorum_(config.check_quorum),
      max_entries_per_message_(std::max<size_t>(1, config.max_entries_per_message)),
      rng_(config.random_seed != 0 ? config.random_seed : config.id),
      log_(recovered.prev_index, recovered.prev_term, std::move(recovered.entries)) {
  assert(id_ != 0);
  if (voters_.empty()) voters_.push_back(id_);
  std::sort(voters_.begin(), voters_.end());
  const HardState& hs = recovered.hard_state;
  term_ = hs.term;
  vote_ = hs.vote;
  log_.CommitTo(std::min(hs.commit, log_.last_index()));
  log_.AppliedTo(std::clamp(config.applied, log_.applied(), log_.committed()));
  prev_hard_state_ = HardState{term_, vote_, log_.committed()};
  BecomeFollower(term_, 0);
  prev_soft_state_ = SoftState{leader_, role_};
}

bool RaftNode::IsVoter(uint64_t id) const {
  return std::binary_search(voters_.begin(), voters_.end(), id);
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
  for (uint64_t v : voters_) progress_[v] = Progress{0, log_.last_index() + 1, false};
  progress_[id_].match = log_.stabled();
  progress_[id_].recent_active = true;
  // §5.4.2 / §8: an entry of the new term lets earlier-term entries commit, and tells
  // ReadIndex when the commit index is known to be current.
  Entry e;
  e.index = log_.last_index() + 1;
  e.term = term_;
  e.type = EntryType::kEmpty;
  log_.AppendLeaderEntry(std::move(e));
  BroadcastAppend();
}

void RaftNode::Campaign() {
  if (role_ == Role::kLeader || !IsVoter(id_)) return;
  StartElection(pre_vote_);
}

void RaftNode::StartElection(bool pre_vote) {
  if (pre_vote) {
    BecomePreCandidate();
  } else {
    BecomeCandidate();
  }
  const uint64_t vote_term = pre_vote ? term_ + 1 : term_;
  Poll(id_, true, pre_vote);
  if (role_ == Role::kLeader || (pre_vote && role_ == Role::kCandidate)) return;
  for (uint64_t v : voters_) {
    if (v == id_) continue;
    Message m;
    m.type = pre_vote ? MessageType::kPreVote : MessageType::kVote;
    m.to = v;
    m.term = vote_term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    Send(std::move(m));
  }
}

int RaftNode::VoteCount(bool granted) const {
  int n = 0;
  for (const auto& [id, g] : votes_) n += (g == granted);
  return n;
}

void RaftNode::Poll(uint64_t from, bool granted, bool pre_vote) {
  votes_.emplace(from, granted);  // only the first answer of each voter counts
  if (static_cast<size_t>(VoteCount(true)) >= Quorum()) {
    if (pre_vote) {
      StartElection(false);
    } else {
      BecomeLeader();
    }
  } else if (static_cast<size_t>(VoteCount(false)) >= Quorum()) {
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
          if (id == id_ || pr.recent_active) ++active;
          if (id != id_) pr.recent_active = false;
        }
        if (active < Quorum()) {
          BecomeFollower(term_, 0);
          return;
        }
      }
    }
    if (heartbeat_elapsed_ >= heartbeat_tick_) {
      heartbeat_elapsed_ = 0;
      BroadcastHeartbeat(0);
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
  const bool local = m.type == MessageType::kPropose || m.type == MessageType::kReadIndex;
  if (!local && m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      // Thesis §4.2.3: while we hear from a live leader, ignore disruptive candidates.
      bool in_lease = check_quorum_ && leader_ != 0 && election_elapsed_ < election_tick_;
      if (in_lease) return;
    }
    if (m.type == MessageType::kPreVote) {
      // Never change term for a pre-vote.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // Granted pre-votes carry the future term; we move there when we win.
    } else if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat) {
      BecomeFollower(m.term, m.from);
    } else {
      BecomeFollower(m.term, 0);
    }
  } else if (!local && m.term < term_) {
    if ((check_quorum_ || pre_vote_) &&
        (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat)) {
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
  Send(std::move(r));
}

void RaftNode::StepLeader(Message& m) {
  switch (m.type) {
    case MessageType::kPropose: {
      std::vector<std::string> data;
      data.reserve(m.entries.size());
      for (Entry& e : m.entries) data.push_back(std::move(e.data));
      AppendEntries(data);
      return;
    }
    case MessageType::kReadIndex:
      LeaderReadIndex(m.context, m.from);
      return;
    case MessageType::kAppendResp: {
      auto it = progress_.find(m.from);
      if (it == progress_.end()) return;
      Progress& pr = it->second;
      pr.recent_active = true;
      if (m.reject) {
        // Back up to the follower's last index (or one before the probe), never below
        // what it is known to match.
        uint64_t next = std::min(m.index, m.reject_hint + 1);
        pr.next = std::max(next, pr.match + 1);
        SendAppend(m.from);
        return;
      }
      if (m.index > pr.match) {
        pr.match = m.index;
        pr.next = std::max(pr.next, m.index + 1);
        if (MaybeCommit()) {
          BroadcastAppend();
          return;
        }
      }
      if (pr.next <= log_.last_index()) SendAppend(m.from);
      return;
    }
    case MessageType::kHeartbeatResp: {
      auto it = progress_.find(m.from);
      if (it == progress_.end()) return;
      it->second.recent_active = true;
      // A lagging follower gets an append; when everything was already sent (maybe lost)
      // it is empty and acts as a probe: the follower rejects it and tells us where its
      // log ends (etcd does the same).
      if (it->second.match < log_.last_index()) SendAppend(m.from);
      if (m.context != 0) {
        for (PendingRead& r : pending_reads_) {
          if (r.request_id == m.context) r.acks[m.from] = true;
        }
        ReleaseReads();
      }
      return;
    }
    default:
      return;
  }
}

void RaftNode::StepFollower(Message& m) {
  switch (m.type) {
    case MessageType::kPropose:
    case MessageType::kReadIndex:
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
    case MessageType::kReadIndexResp:
      read_states_.push_back(ReadState{m.context, m.index});
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

void RaftNode::HandleAppend(Message& m) {
  Message r;
  r.type = MessageType::kAppendResp;
  r.to = m.from;
  if (m.index < log_.committed()) {
    r.index = log_.committed();
    Send(std::move(r));
    return;
  }
  const uint64_t commit = m.commit;
  if (auto last = log_.MaybeAppend(m.index, m.log_term, std::move(m.entries))) {
    log_.CommitTo(std::min(commit, *last));
    r.index = *last;
  } else {
    r.reject = true;
    r.index = m.index;
    r.reject_hint = log_.last_index();
  }
  Send(std::move(r));
}

void RaftNode::HandleHeartbeat(const Message& m) {
  // The leader sends min(our match, its commit), so this never commits past our log.
  log_.CommitTo(std::min(m.commit, log_.last_index()));
  Message r;
  r.type = MessageType::kHeartbeatResp;
  r.to = m.from;
  r.context = m.context;
  Send(std::move(r));
}

Status RaftNode::Propose(std::span<std::string> data) {
  if (role_ == Role::kLeader) {
    AppendEntries(data);
    return Status::Ok();
  }
  if (leader_ == 0) return Status::Unavailable("etcdserver: no leader");
  Message m;
  m.type = MessageType::kPropose;
  m.to = leader_;
  m.entries.resize(data.size());
  for (size_t i = 0; i < data.size(); ++i) m.entries[i].data = std::move(data[i]);
  Send(std::move(m));
  return Status::Ok();
}

Status RaftNode::ReadIndex(uint64_t request_id) {
  if (role_ == Role::kLeader) {
    LeaderReadIndex(request_id, id_);
    return Status::Ok();
  }
  if (leader_ == 0) return Status::Unavailable("etcdserver: no leader");
  Message m;
  m.type = MessageType::kReadIndex;
  m.to = leader_;
  m.context = request_id;
  Send(std::move(m));
  return Status::Ok();
}

void RaftNode::AppendEntries(std::span<std::string> data) {
  for (std::string& d : data) {
    Entry e;
    e.index = log_.last_index() + 1;
    e.term = term_;
    e.type = EntryType::kNormal;
    e.data = std::move(d);
    log_.AppendLeaderEntry(std::move(e));
  }
  BroadcastAppend();
}

bool RaftNode::MaybeCommit() {
  std::vector<uint64_t> matches;
  matches.reserve(voters_.size());
  for (uint64_t v : voters_) {
    auto it = progress_.find(v);
    matches.push_back(it == progress_.end() ? 0 : it->second.match);
  }
  std::sort(matches.begin(), matches.end(), std::greater<>());
  const uint64_t q = matches[Quorum() - 1];
  // §5.4.2: only entries of the current term are committed by counting replicas.
  if (q <= log_.committed() || log_.Term(q) != term_) return false;
  log_.CommitTo(q);
  OnCommitInCurrentTerm();
  return true;
}

void RaftNode::OnCommitInCurrentTerm() {
  if (reads_before_commit_.empty()) return;
  auto waiting = std::move(reads_before_commit_);
  reads_before_commit_.clear();
  for (auto [rid, from] : waiting) LeaderReadIndex(rid, from);
}

void RaftNode::LeaderReadIndex(uint64_t request_id, uint64_t from) {
  if (!CommittedInCurrentTerm()) {
    // Thesis §6.4 step 1: until an entry of this term commits, the leader's commit index
    // may be behind what earlier leaders committed.
    reads_before_commit_.emplace_back(request_id, from);
    return;
  }
  PendingRead r{request_id, log_.committed(), from, {{id_, true}}};
  if (voters_.size() == 1) {
    pending_reads_.push_back(std::move(r));
    ReleaseReads();
    return;
  }
  pending_reads_.push_back(std::move(r));
  BroadcastHeartbeat(request_id);
}

void RaftNode::ReleaseReads() {
  // A quorum acknowledging a later read confirms leadership for every earlier one too.
  size_t release = 0;
  for (size_t i = 0; i < pending_reads_.size(); ++i) {
    size_t acks = 0;
    for (const auto& [id, ok] : pending_reads_[i].acks) acks += ok && IsVoter(id);
    if (acks >= Quorum()) release = i + 1;
  }
  for (size_t i = 0; i < release; ++i) {
    const PendingRead& r = pending_reads_[i];
    if (r.from == id_) {
      read_states_.push_back(ReadState{r.request_id, r.index});
    } else {
      Message m;
      m.type = MessageType::kReadIndexResp;
      m.to = r.from;
      m.index = r.index;
      m.context = r.request_id;
      Send(std::move(m));
    }
  }
  pending_reads_.erase(pending_reads_.begin(), pending_reads_.begin() + release);
}

void RaftNode::SendAppend(uint64_t to) {
  Progress& pr = progress_[to];
  const uint64_t prev = pr.next - 1;
  auto prev_term = log_.Term(prev);
  if (!prev_term) return;  // needs a snapshot (cluster issue)
  Message m;
  m.type = MessageType::kAppend;
  m.to = to;
  m.index = prev;
  m.log_term = *prev_term;
  m.commit = log_.committed();
  auto ents = log_.Slice(pr.next, pr.next + max_entries_per_message_ - 1);
  m.entries.assign(ents.begin(), ents.end());
  if (!ents.empty()) pr.next = ents.back().index + 1;
  Send(std::move(m));
}

void RaftNode::BroadcastAppend() {
  for (uint64_t v : voters_) {
    if (v != id_) SendAppend(v);
  }
}

void RaftNode::BroadcastHeartbeat(uint64_t context) {
  for (uint64_t v : voters_) {
    if (v == id_) continue;
    Message m;
    m.type = MessageType::kHeartbeat;
    m.to = v;
    m.commit = std::min(progress_[v].match, log_.committed());
    m.context = context;
    Send(std::move(m));
  }
}

void RaftNode::Send(Message m) {
  m.from = id_;
  // Forwarded proposals and read requests carry no term (etcd: "local" messages), so they
  // never move anyone's term; answers to votes set their term explicitly.
  if (m.term == 0 && m.type != MessageType::kPropose && m.type != MessageType::kReadIndex) {
    m.term = term_;
  }
  msgs_.push_back(std::move(m));
}

bool RaftNode::HasReady() const {
  return SoftState{leader_, role_} != prev_soft_state_ ||
         HardState{term_, vote_, log_.committed()} != prev_hard_state_ ||
         !log_.Unstable().empty() || !msgs_.empty() || log_.HasNextCommitted() ||
         !read_states_.empty();
}

Ready RaftNode::GetReady() {
  Ready rd;
  SoftState ss{leader_, role_};
  if (ss != prev_soft_state_) rd.soft_state = ss;
  HardState hs{term_, vote_, log_.committed()};
  if (hs != prev_hard_state_) rd.hard_state = hs;
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
  if (!rd.committed_entries.empty()) log_.AppliedTo(rd.committed_entries.back().index);
  if (!rd.entries.empty()) {
    log_.StableTo(rd.entries.back().index, rd.entries.back().term);
    if (role_ == Role::kLeader) {
      Progress& self = progress_[id_];
      self.match = std::max(self.match, log_.stabled());
      if (MaybeCommit()) BroadcastAppend();
    }
  }
}

}  // namespace rusd::raft
