// RaftNode: log replication with per-follower flow control (progress.h), and commit by
// counting replicas of current-term entries.
#include <algorithm>

#include "raftd/raft/raft_node.h"

namespace rusd::raft {

Progress& RaftNode::AddProgress(uint64_t id, bool learner) {
  auto [it, inserted] = progress_.try_emplace(
      id, log_.last_index() + 1, max_inflight_messages_, max_inflight_bytes_);
  it->second.is_learner = learner;
  if (inserted) {
    // A member just added counts as active for one election timeout (etcd): otherwise a
    // leader could lose check-quorum before it ever heard from the newcomer.
    it->second.recent_active = true;
  }
  return it->second;
}

bool RaftNode::MaybeSendAppend(uint64_t to, bool send_if_empty, bool announcement) {
  if (to == id_) return false;
  auto it = progress_.find(to);
  if (it == progress_.end()) return false;
  Progress& pr = it->second;
  if (pr.IsPaused()) return false;
  if (pr.next > log_.last_index() + 1) pr.next = log_.last_index() + 1;
  const uint64_t prev = pr.next - 1;
  const std::optional<uint64_t> prev_term = log_.Term(prev);
  if (!prev_term) {
    SendSnapshot(to, pr);
    return false;
  }
  auto avail = log_.Slice(pr.next, pr.next + max_entries_per_message_ - 1);
  // At least one entry per message, then as many as fit in max_bytes_per_message_.
  size_t n = 0;
  uint64_t bytes = 0;
  for (; n < avail.size(); ++n) {
    const uint64_t sz = avail[n].data.size();
    if (n > 0 && max_bytes_per_message_ != 0 && bytes + sz > max_bytes_per_message_) break;
    bytes += sz;
  }
  if (n == 0 && !send_if_empty) return false;
  Message m;
  m.type = MessageType::kAppend;
  m.to = to;
  m.index = prev;
  m.log_term = *prev_term;
  m.commit = log_.committed();
  m.entries.assign(avail.begin(), avail.begin() + static_cast<long>(n));
  // Only in kReplicate: a probe's answer is what moves a follower out of probing, and
  // the heartbeat path's empty appends (lost answers, see HandleHeartbeatResp) must be
  // answered.
  if (announcement && n == 0 && pr.state == ProgressState::kReplicate) {
    m.context = kCommitAnnouncement;
  }
  pr.SentAppend(n > 0, n > 0 ? avail[n - 1].index : prev, bytes);
  Send(std::move(m));
  return true;
}

void RaftNode::SendAppendsWhileOpen(uint64_t to) {
  // Pipelining: in kReplicate each call advances `next`; stops when the window is full,
  // nothing is left, or the follower is probing or receiving a snapshot.
  while (MaybeSendAppend(to, false)) {
  }
}

void RaftNode::BroadcastAppend() {
  for (auto& [id, pr] : progress_) {
    if (id == id_) continue;
    // The first message goes even when empty: it carries the new commit index.
    if (MaybeSendAppend(id, true)) SendAppendsWhileOpen(id);
  }
}

void RaftNode::BroadcastCommit() {
  for (const auto& [id, pr] : progress_) {
    if (id != id_) SendAppendsWhileOpen(id);
  }
  commit_owed_ = true;
}

void RaftNode::AnnounceCommit(bool flush) {
  if (!commit_owed_) return;
  commit_owed_ = false;
  if (role_ != Role::kLeader) return;
  // Under load the commit index advances several times per turn (each acknowledgement,
  // our own fsync) while appends with new entries are queued anyway: an empty append per
  // advance and per follower doubled the messages each follower handles and acknowledges.
  // Rewriting the commit of queued appends is safe only for appends of this term: within
  // its term a leader's log only grows, so their entries are a prefix of our log and the
  // follower commits min(commit, last entry of the append), all of it committed here.
  const uint64_t commit = log_.committed();
  for (auto& [id, pr] : progress_) {
    if (id == id_) continue;
    bool queued = false;
    for (Message& m : msgs_) {
      if (m.to == id && m.type == MessageType::kAppend && m.term == term_) {
        m.commit = std::max(m.commit, commit);
        queued = true;
      }
    }
    if (queued) {
      pr.commit_sent = std::max(pr.commit_sent, commit);
      continue;
    }
    if (pr.commit_sent >= commit) continue;  // announced already (an earlier flush)
    if (!flush && defer_commit_announcements_ && pr.state == ProgressState::kReplicate) {
      commit_owed_ = true;  // the next append carries it, or the caller's flush
      continue;
    }
    if (MaybeSendAppend(id, true, /*announcement=*/true)) {
      pr.commit_sent = std::max(pr.commit_sent, commit);
    }
  }
}

void RaftNode::BroadcastHeartbeat(uint64_t context) {
  for (const auto& [id, pr] : progress_) {
    if (id == id_) continue;
    Message m;
    m.type = MessageType::kHeartbeat;
    m.to = id;
    // Never beyond what the follower is known to hold: it must not commit entries it
    // has from another leader.
    m.commit = std::min(pr.match, log_.committed());
    m.context = context;
    Send(std::move(m));
  }
}

namespace {

// A peer's append must describe a consecutive run of entries after (index, log_term), of
// non-decreasing terms no newer than the message; anything else would corrupt the log.
bool WellFormedAppend(const Message& m) {
  uint64_t term = m.log_term;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const Entry& e = m.entries[i];
    if (e.index != m.index + 1 + i || e.term < term || e.term > m.term) return false;
    term = e.term;
  }
  return true;
}

}  // namespace

void RaftNode::HandleAppend(Message& m) {
  if (!WellFormedAppend(m)) return;  // dropped like a lost message; the leader retries
  Message r;
  r.type = MessageType::kAppendResp;
  r.to = m.from;
  if (m.index < log_.committed()) {
    r.index = log_.committed();
    Send(std::move(r));
    return;
  }
  const uint64_t commit = m.commit;
  const bool announcement = m.context == kCommitAnnouncement && m.entries.empty();
  if (auto last = log_.MaybeAppend(m.index, m.log_term, std::move(m.entries))) {
    log_.CommitTo(std::min(commit, *last));
    // The leader knows we hold up to m.index from the acknowledgements of the appends
    // that carried those entries (lost ones: its heartbeats ask again, answered).
    if (announcement) return;
    r.index = *last;
  } else {
    // Fast back-off: point the leader at the last entry that may match, skipping every
    // entry of ours whose term is above the leader's term at m.index (they cannot match).
    const uint64_t hint =
        log_.FindConflictByTerm(std::min(m.index, log_.last_index()), m.log_term);
    r.reject = true;
    r.index = m.index;
    r.reject_hint = hint;
    r.log_term = log_.Term(hint).value_or(0);
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

void RaftNode::HandleAppendResp(const Message& m) {
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return;
  Progress& pr = it->second;
  // An answer beyond anything we hold cannot come from a correct follower of ours.
  if (m.index > log_.last_index()) return;
  pr.recent_active = true;
  if (m.reject) {
    uint64_t hint = m.reject_hint;
    // The follower has term m.log_term at the hint: entries of ours with a larger term
    // there cannot match either, skip them too.
    if (m.log_term > 0) hint = log_.FindConflictByTerm(m.reject_hint, m.log_term);
    if (pr.MaybeDecrTo(m.index, hint)) {
      if (pr.state == ProgressState::kReplicate) pr.BecomeProbe();
      MaybeSendAppend(m.from, true);
    }
    return;
  }
  const bool was_paused = pr.IsPaused();
  const bool updated = pr.MaybeUpdate(m.index);
  if (pr.state == ProgressState::kProbe && m.index >= pr.match) {
    // The follower's log matches ours up to m.index == match: stream from there.
    pr.BecomeReplicate();
  } else if (pr.state == ProgressState::kSnapshot && pr.match >= pr.pending_snapshot) {
    pr.BecomeProbe();
    pr.BecomeReplicate();
  } else if (pr.state == ProgressState::kReplicate) {
    pr.inflights.FreeLE(m.index);
  }
  if (updated && MaybeCommit()) {
    BroadcastCommit();
  } else if (was_paused) {
    MaybeSendAppend(m.from, false);
  }
  SendAppendsWhileOpen(m.from);
  if (m.from == lead_transferee_ && pr.match == log_.last_index()) SendTimeoutNow(m.from);
}

void RaftNode::HandleHeartbeatResp(const Message& m) {
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return;
  Progress& pr = it->second;
  pr.recent_active = true;
  pr.probe_sent = false;
  // A full window with a live follower means answers were lost: let one more go.
  if (pr.state == ProgressState::kReplicate && pr.inflights.Full()) pr.inflights.FreeFirstOne();
  // A lagging follower gets an append; when everything was already sent (maybe lost) it
  // is empty and acts as a probe: the follower rejects it and says where its log ends.
  if (pr.match < log_.last_index()) MaybeSendAppend(m.from, true);
  // The transferee is up to date but still a follower: kTimeoutNow was lost, again.
  if (m.from == lead_transferee_ && pr.match == log_.last_index()) SendTimeoutNow(m.from);
  if (m.context != 0) {
    pr.read_acked = std::max(pr.read_acked, m.context);
    ReleaseReads();
  }
}

bool RaftNode::MaybeCommit() {
  if (conf_.voters.empty()) return false;
  std::vector<uint64_t> matches;
  matches.reserve(conf_.voters.size());
  for (uint64_t v : conf_.voters) {
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

void RaftNode::ReportUnreachable(uint64_t to) {
  if (role_ != Role::kLeader) return;
  auto it = progress_.find(to);
  if (it == progress_.end()) return;
  if (it->second.state == ProgressState::kReplicate) it->second.BecomeProbe();
}

}  // namespace rusd::raft
