#include "raftd/raft/progress.h"

#include <algorithm>

namespace rusd::raft {

const char* ProgressStateName(ProgressState s) {
  switch (s) {
    case ProgressState::kProbe: return "probe";
    case ProgressState::kReplicate: return "replicate";
    case ProgressState::kSnapshot: return "snapshot";
  }
  return "?";
}

void Inflights::Add(uint64_t last_index, uint64_t bytes) {
  items_.push_back(Item{last_index, bytes});
  bytes_ += bytes;
}

void Inflights::FreeLE(uint64_t index) {
  while (!items_.empty() && items_.front().index <= index) {
    bytes_ -= items_.front().bytes;
    items_.pop_front();
  }
}

void Inflights::FreeFirstOne() {
  if (items_.empty()) return;
  bytes_ -= items_.front().bytes;
  items_.pop_front();
}

bool Inflights::Full() const {
  return items_.size() >= max_count_ || (max_bytes_ != 0 && bytes_ >= max_bytes_);
}

bool Progress::IsPaused() const {
  switch (state) {
    case ProgressState::kProbe: return probe_sent;
    case ProgressState::kReplicate: return inflights.Full();
    case ProgressState::kSnapshot: return true;
  }
  return true;
}

void Progress::ResetState(ProgressState s) {
  state = s;
  probe_sent = false;
  pending_snapshot = 0;
  inflights.Reset();
}

void Progress::BecomeProbe() {
  // After a snapshot the follower holds at least the snapshot: probe right after it.
  const uint64_t after = state == ProgressState::kSnapshot ? pending_snapshot : 0;
  ResetState(ProgressState::kProbe);
  next = std::max(match + 1, after + 1);
}

void Progress::BecomeReplicate() {
  ResetState(ProgressState::kReplicate);
  next = match + 1;
}

void Progress::BecomeSnapshot(uint64_t snapshot_index) {
  ResetState(ProgressState::kSnapshot);
  pending_snapshot = snapshot_index;
}

bool Progress::MaybeUpdate(uint64_t index) {
  bool updated = false;
  if (match < index) {
    match = index;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, index + 1);
  return updated;
}

bool Progress::MaybeDecrTo(uint64_t rejected, uint64_t hint) {
  if (state == ProgressState::kReplicate) {
    // Only a rejection above what is known to match is news; the rest answer appends
    // sent before an earlier rejection moved us back.
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // Probing: only the answer to the latest probe counts.
  if (next == 0 || next - 1 != rejected) return false;
  next = std::max({std::min(rejected, hint + 1), match + 1, uint64_t{1}});
  probe_sent = false;
  return true;
}

void Progress::SentAppend(bool entries, uint64_t last, uint64_t bytes) {
  switch (state) {
    case ProgressState::kReplicate:
      if (entries) {
        next = last + 1;
        inflights.Add(last, bytes);
      }
      break;
    case ProgressState::kProbe:
      probe_sent = true;
      break;
    case ProgressState::kSnapshot:
      break;
  }
}

}  // namespace rusd::raft
