// RaftNode: linearizable reads (thesis §6.4), batched. A read waits until the leader has
// committed an entry of its term, records the commit index, and is answered once a quorum
// of voters acknowledged a heartbeat round sent after it arrived. All reads that arrive
// between two Readys join the same round, so a burst of reads costs one round trip; the
// rounds are numbered and an acknowledgement of round r confirms every round <= r.
#include <algorithm>

#include "raftd/raft/raft_node.h"

namespace rusd::raft {

void RaftNode::LeaderReadIndex(uint64_t request_id, uint64_t from) {
  if (!CommittedInCurrentTerm()) {
    // Until an entry of this term commits, the leader's commit index may be behind what
    // earlier leaders committed.
    reads_before_commit_.emplace_back(request_id, from);
    return;
  }
  if (conf_.voters.size() == 1 && IsVoter(id_)) {
    AnswerRead(request_id, log_.committed(), from);
    return;
  }
  pending_reads_.push_back(PendingRead{request_id, log_.committed(), from, read_round_ + 1});
  read_round_wanted_ = true;
}

void RaftNode::StartReadRound() {
  read_round_wanted_ = false;
  ++read_round_;
  if (auto self = progress_.find(id_); self != progress_.end()) {
    self->second.read_acked = read_round_;
  }
  BroadcastHeartbeat(read_round_);
}

void RaftNode::ReleaseReads() {
  if (pending_reads_.empty()) return;
  // The highest round a quorum of voters has acknowledged.
  std::vector<uint64_t> acked;
  acked.reserve(conf_.voters.size());
  for (uint64_t v : conf_.voters) {
    auto it = progress_.find(v);
    acked.push_back(v == id_ ? read_round_ : it == progress_.end() ? 0 : it->second.read_acked);
  }
  if (acked.empty()) return;
  std::sort(acked.begin(), acked.end(), std::greater<>());
  const uint64_t confirmed = acked[Quorum() - 1];
  while (!pending_reads_.empty() && pending_reads_.front().round <= confirmed) {
    const PendingRead r = pending_reads_.front();
    pending_reads_.pop_front();
    AnswerRead(r.request_id, r.index, r.from);
  }
}

void RaftNode::AnswerRead(uint64_t request_id, uint64_t index, uint64_t from) {
  if (from == id_) {
    read_states_.push_back(ReadState{request_id, index});
    return;
  }
  Message m;
  m.type = MessageType::kReadIndexResp;
  m.to = from;
  m.index = index;
  m.context = request_id;
  Send(std::move(m));
}

}  // namespace rusd::raft
