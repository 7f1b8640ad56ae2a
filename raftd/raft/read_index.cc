// RaftNode: linearizable reads (thesis §6.4), batched. A read waits until the leader has
// committed an entry of its term, records the commit index, and is answered once a quorum
// of voters acknowledged a heartbeat round sent after it arrived. All reads that arrive
// between two Readys join the same round, so a burst of reads costs one round trip; the
// rounds are numbered and an acknowledgement of round r confirms every round <= r.
// A follower forwards its reads of one Ready in one message, and the leader answers each
// member's reads of one Ready in one message.
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
  // Answers to one member go out together with the next Ready (FlushReads).
  ReadAnswers& a = read_answers_[from];
  a.index = std::max(a.index, index);
  a.request_ids.push_back(request_id);
}

void RaftNode::FlushReads() {
  // One message per member for all its answers: each read gets the highest index of the
  // batch, which is committed and at least its own (reading later state is still
  // linearizable: it was committed before the answer).
  for (auto& [to, a] : read_answers_) {
    Message m;
    m.type = MessageType::kReadIndexResp;
    m.to = to;
    m.index = a.index;
    if (a.request_ids.size() == 1) {
      m.context = a.request_ids[0];
    } else {
      m.entries.resize(a.request_ids.size());
      for (size_t i = 0; i < a.request_ids.size(); ++i) m.entries[i].index = a.request_ids[i];
    }
    Send(std::move(m));
  }
  read_answers_.clear();
  // A follower's reads since the last Ready, in one message to the leader.
  if (!reads_to_forward_.empty() && leader_ != 0 && role_ != Role::kLeader) {
    Message m;
    m.type = MessageType::kReadIndex;
    m.to = leader_;
    if (reads_to_forward_.size() == 1) {
      m.context = reads_to_forward_[0];
    } else {
      m.entries.resize(reads_to_forward_.size());
      for (size_t i = 0; i < reads_to_forward_.size(); ++i) {
        m.entries[i].index = reads_to_forward_[i];
      }
    }
    Send(std::move(m));
  }
  reads_to_forward_.clear();
}

}  // namespace rusd::raft
