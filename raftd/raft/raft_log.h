// The in-memory Raft log of one node: entries after a compaction point, plus the three
// indexes that move through it.
//
//   prev_index  <  applied  <=  committed
//   prev_index  <=  stabled  <=  last_index
//
// - stabled: entries up to here are durable in the caller's WAL (Ready → Advance).
// - committed: known committed (quorum of matches in the leader's current term).
// - applied: handed to the caller as committed entries; never beyond stabled, because
//   raftd gives stored only entries already fsynced in its own WAL.
// Entries at or below the compaction point are gone; (prev_index, prev_term) is kept for
// the log-matching check of the entry after it.
//
// Thread safety: none; owned by one RaftNode.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "raftd/raft/messages.h"

namespace rusd::raft {

class RaftLog {
 public:
  // `entries` are already stable (replayed from the WAL) and must follow prev_index
  // consecutively.
  RaftLog(uint64_t prev_index, uint64_t prev_term, std::vector<Entry> entries);

  uint64_t first_index() const { return prev_index_ + 1; }
  uint64_t last_index() const { return prev_index_ + entries_.size(); }
  uint64_t last_term() const { return entries_.empty() ? prev_term_ : entries_.back().term; }
  uint64_t committed() const { return committed_; }
  uint64_t stabled() const { return stabled_; }
  uint64_t applied() const { return applied_; }

  // Term of the entry at `index`, or nullopt if it is compacted away or beyond the end.
  std::optional<uint64_t> Term(uint64_t index) const;
  bool MatchTerm(uint64_t index, uint64_t term) const;
  // Raft §5.4.1: is a log ending at (last_index, last_term) at least as up to date?
  bool IsUpToDate(uint64_t last_index, uint64_t last_term) const;

  // The entry at `index`; first_index() <= index <= last_index().
  const Entry& At(uint64_t index) const;
  // Entries in [lo, hi], clipped to what is held.
  std::span<const Entry> Slice(uint64_t lo, uint64_t hi) const;

  // Appends entries the leader created; their indexes must follow last_index().
  void AppendLeaderEntry(Entry e);
  // Follower side of AppendEntries: if (index, log_term) matches, appends `entries`,
  // truncating a conflicting suffix (never at or below committed), and returns the index
  // of the last new entry; nullopt if the log does not match.
  std::optional<uint64_t> MaybeAppend(uint64_t index, uint64_t log_term,
                                      std::vector<Entry>&& entries);

  void CommitTo(uint64_t index);  // monotonic; index <= last_index()
  // Entries (stabled, last]: to be written to the WAL.
  std::span<const Entry> Unstable() const;
  // Entries (applied, min(committed, stabled)]: committed and durable, not yet handed out.
  std::span<const Entry> NextCommitted() const;
  bool HasNextCommitted() const { return std::min(committed_, stabled_) > applied_; }
  // The WAL now holds entries up to `index` of `term` (ignored if the log changed since).
  void StableTo(uint64_t index, uint64_t term);
  void AppliedTo(uint64_t index);
  // Forgets entries up to `index` (<= applied); they are safe in the state machine.
  void CompactTo(uint64_t index);
  // Replaces the whole log by a snapshot point: everything up to `index` (of `term`) is
  // in the state machine, committed, durable and applied.
  void Restore(uint64_t index, uint64_t term);
  // The largest index <= `index` whose entry has a term <= `term` (or the oldest index
  // whose term is still known): where a log that has `term` at `index` may match ours.
  uint64_t FindConflictByTerm(uint64_t index, uint64_t term) const;

 private:
  uint64_t prev_index_;
  uint64_t prev_term_;
  std::vector<Entry> entries_;  // entries_[i].index == prev_index_ + 1 + i
  uint64_t committed_;
  uint64_t stabled_;
  uint64_t applied_;
};

}  // namespace rusd::raft
