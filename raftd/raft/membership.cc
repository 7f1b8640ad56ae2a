// RaftNode: membership (learners, single-member configuration changes applied when
// committed, as etcd 3.4 does) and leader transfer.
//
// The one-change-at-a-time pitfalls and how they are handled:
// - Overlapping changes: a leader accepts a change only once every earlier change it
//   knows of is applied (pending_conf_index_), so any two consecutive configurations
//   differ by one member and their majorities intersect.
// - A new leader and a change of the previous term (Ongaro's 2015 bug): pending_conf_index_
//   starts at the new leader's own first entry, so it commits an entry of its term before
//   proposing a change.
// - A smaller quorum commits more: after a removal the leader recounts and broadcasts.
// - A leader removing itself keeps leading without counting itself, refusing proposals,
//   and hands over (kTimeoutNow, retried) to the most up-to-date voter; the others learn
//   the commit of the removal from it. Once deposed it never campaigns (not a voter).
//   Should it crash first, its vote answers still carry its commit index (raft_node.cc),
//   so a remaining voter holding the removal learns it is committed and goes on alone.
// - A change that would leave no voter is refused, also when it arrives forwarded.
#include <algorithm>

#include "raftd/raft/raft_node.h"

namespace rusd::raft {

void RaftNode::ApplyConfChangeEntry(const Entry& e) {
  Result<ConfChange> cc = DecodeConfChange(e.data);
  if (!cc.ok()) return;  // not ours to judge: the state machine sees the same entry
  SwitchConf(ApplyToConfState(conf_, *cc), e.index);
}

ConfState RaftNode::ConfAt(uint64_t index) const {
  const ConfState* conf = &snapshot_conf_;
  for (const auto& [at, c] : conf_history_) {
    if (at > index) break;
    conf = &c;
  }
  return *conf;
}

void RaftNode::SwitchConf(ConfState next, uint64_t index) {
  conf_ = std::move(next);
  conf_history_.emplace_back(index, conf_);
  if (role_ != Role::kLeader) {
    // A candidate whose own vote no longer counts, or counts less, simply times out.
    return;
  }
  std::vector<uint64_t> added;
  for (uint64_t v : conf_.voters) {
    if (!progress_.count(v)) added.push_back(v);
    AddProgress(v, false);
  }
  for (uint64_t l : conf_.learners) {
    if (!progress_.count(l)) added.push_back(l);
    AddProgress(l, true);
  }
  std::erase_if(progress_, [&](const auto& kv) {
    return !IsVoter(kv.first) && !IsLearner(kv.first);
  });
  if (lead_transferee_ != 0 && !IsVoter(lead_transferee_)) AbortLeaderTransfer();
  if (!IsVoter(id_)) {
    // Removed: keep leading (without counting ourselves) until a remaining voter takes
    // over, so the others surely learn that the removal is committed. Stepping down at
    // once could leave them waiting for our vote under the old configuration while our
    // log, longer than theirs, makes us refuse it.
    if (MaybeCommit()) BroadcastAppend();
    HandOverLeadership();
    return;
  }
  if (MaybeCommit()) {
    BroadcastAppend();
  } else {
    for (auto& [id, pr] : progress_) MaybeSendAppend(id, false);
  }
  // A newcomer is probed at once rather than at the next heartbeat.
  for (uint64_t id : added) MaybeSendAppend(id, true);
  ReleaseReads();  // the quorum may have shrunk
}

void RaftNode::HandOverLeadership() {
  uint64_t best = 0;
  uint64_t best_match = 0;
  for (const auto& [id, pr] : progress_) {
    if (IsVoter(id) && id != id_ && (best == 0 || pr.match > best_match)) {
      best = id;
      best_match = pr.match;
    }
  }
  if (best == 0) return;
  lead_transferee_ = 0;
  HandleTransferLeader(best);
}

void RaftNode::HandleTransferLeader(uint64_t transferee) {
  if (!IsVoter(transferee)) return;  // learners and strangers cannot lead
  if (lead_transferee_ != 0) {
    if (lead_transferee_ == transferee) return;  // already under way
    AbortLeaderTransfer();
  }
  if (transferee == id_) return;  // already leader
  auto it = progress_.find(transferee);
  if (it == progress_.end()) return;
  // The transfer must finish within an election timeout (Tick aborts it).
  election_elapsed_ = 0;
  lead_transferee_ = transferee;
  if (it->second.match == log_.last_index()) {
    SendTimeoutNow(transferee);
  } else {
    MaybeSendAppend(transferee, true);
  }
}

void RaftNode::SendTimeoutNow(uint64_t to) {
  Message m;
  m.type = MessageType::kTimeoutNow;
  m.to = to;
  Send(std::move(m));
}

}  // namespace rusd::raft
