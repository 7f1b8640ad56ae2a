// What a leader knows about one follower's log, and the flow control that keeps a slow
// follower from stalling anyone (etcd's tracker.Progress):
//
//   kProbe      we do not know where the follower's log matches: send one append, wait
//               for its answer (or the next heartbeat answer) before sending another.
//   kReplicate  the follower is in sync: appends are pipelined optimistically (`next`
//               advances on send), bounded by an inflight window of messages and bytes.
//               A full window pauses this follower only; the others keep going.
//   kSnapshot   `next` is compacted away: a snapshot is on its way, nothing else is sent
//               until the caller reports the transfer (ReportSnapshot) or the follower
//               acknowledges an index at or past the snapshot.
//
// Thread safety: none; owned by one RaftNode.
#pragma once

#include <cstdint>
#include <cstddef>
#include <deque>

namespace rusd::raft {

enum class ProgressState : uint8_t { kProbe, kReplicate, kSnapshot };
const char* ProgressStateName(ProgressState s);

// The appends sent and not yet acknowledged, by last index; limited by count and bytes.
class Inflights {
 public:
  Inflights(size_t max_count, uint64_t max_bytes) : max_count_(max_count), max_bytes_(max_bytes) {}
  void Add(uint64_t last_index, uint64_t bytes);
  // The follower acknowledged everything up to `index`.
  void FreeLE(uint64_t index);
  void FreeFirstOne();
  bool Full() const;
  size_t count() const { return items_.size(); }
  uint64_t bytes() const { return bytes_; }
  void Reset() {
    items_.clear();
    bytes_ = 0;
  }

 private:
  struct Item {
    uint64_t index;
    uint64_t bytes;
  };
  size_t max_count_;
  uint64_t max_bytes_;  // 0: no byte limit
  std::deque<Item> items_;
  uint64_t bytes_ = 0;
};

struct Progress {
  Progress(uint64_t next_index, size_t max_inflight, uint64_t max_inflight_bytes)
      : next(next_index), inflights(max_inflight, max_inflight_bytes) {}

  uint64_t match = 0;  // highest index known to be in the follower's log
  uint64_t next = 1;   // next index to send
  ProgressState state = ProgressState::kProbe;
  bool probe_sent = false;        // kProbe: an append is out, wait for an answer
  uint64_t pending_snapshot = 0;  // kSnapshot: index of the snapshot being sent
  bool recent_active = false;     // heard from within the last election timeout
  bool is_learner = false;
  uint64_t read_acked = 0;  // highest read-confirmation round this member acknowledged
  uint64_t commit_sent = 0;  // highest commit index queued to it in an append (AnnounceCommit)
  Inflights inflights;

  bool IsPaused() const;
  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(uint64_t snapshot_index);
  // A successful answer up to `index`: returns whether `match` moved.
  bool MaybeUpdate(uint64_t index);
  // A rejection of the append after `rejected`; `hint` is where to probe next. Returns
  // false when the rejection is stale (answers an append we have moved past).
  bool MaybeDecrTo(uint64_t rejected, uint64_t hint);
  // Appends (last index `last`, `bytes` of data) were just sent; `entries` says whether
  // the message had any.
  void SentAppend(bool entries, uint64_t last, uint64_t bytes);

 private:
  void ResetState(ProgressState s);
};

}  // namespace rusd::raft
