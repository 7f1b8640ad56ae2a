// RaftNode: the snapshot point, sending a snapshot to a follower whose next entry is
// compacted away, and a follower restoring one. The data never passes through the core.
#include <algorithm>

#include "raftd/raft/raft_node.h"

namespace rusd::raft {

SnapshotMeta RaftNode::snapshot_meta() const {
  SnapshotMeta meta;
  meta.index = log_.first_index() - 1;
  meta.term = log_.Term(meta.index).value_or(0);
  meta.conf = snapshot_conf_;
  return meta;
}

void RaftNode::CompactLog(uint64_t index) {
  index = std::min(index, log_.applied());
  if (index < log_.first_index()) return;
  snapshot_conf_ = ConfAt(index);
  std::erase_if(conf_history_, [&](const auto& h) { return h.first <= index; });
  log_.CompactTo(index);
}

void RaftNode::SendSnapshot(uint64_t to, Progress& pr) {
  // A follower we have not heard from lately is probably down: a snapshot would be wasted.
  if (!pr.recent_active) return;
  Message m;
  m.type = MessageType::kSnapshot;
  m.to = to;
  m.snapshot = snapshot_meta();
  pr.BecomeSnapshot(m.snapshot.index);
  Send(std::move(m));
}

void RaftNode::ReportSnapshot(uint64_t to, bool ok) {
  if (role_ != Role::kLeader) return;
  auto it = progress_.find(to);
  if (it == progress_.end()) return;
  Progress& pr = it->second;
  if (pr.state != ProgressState::kSnapshot) return;
  if (!ok) pr.pending_snapshot = 0;  // probe from what it is known to hold
  pr.BecomeProbe();
  // Success: wait for the follower's answer to the snapshot before appending. Failure:
  // wait for a heartbeat answer before trying again.
  pr.probe_sent = true;
}

void RaftNode::HandleSnapshot(const Message& m) {
  const SnapshotMeta& meta = m.snapshot;
  Message r;
  r.type = MessageType::kAppendResp;
  r.to = m.from;
  if (meta.index <= log_.committed()) {
    r.index = log_.committed();  // nothing new in it
  } else if (log_.MatchTerm(meta.index, meta.term)) {
    // We hold the snapshot's last entry: the log is good, only the commit index moves.
    log_.CommitTo(meta.index);
    r.index = log_.committed();
  } else {
    log_.Restore(meta.index, meta.term);
    conf_ = meta.conf;
    snapshot_conf_ = meta.conf;
    conf_history_.clear();
    restored_snapshot_ = meta;
    r.index = meta.index;
  }
  Send(std::move(r));
}

}  // namespace rusd::raft
