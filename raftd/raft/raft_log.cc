#include "raftd/raft/raft_log.h"

#include <algorithm>
#include <cassert>

namespace rusd::raft {

RaftLog::RaftLog(uint64_t prev_index, uint64_t prev_term, std::vector<Entry> entries)
    : prev_index_(prev_index),
      prev_term_(prev_term),
      entries_(std::move(entries)),
      committed_(prev_index),
      stabled_(prev_index + entries_.size()),
      applied_(prev_index) {
#ifndef NDEBUG
  for (size_t i = 0; i < entries_.size(); ++i) assert(entries_[i].index == prev_index_ + 1 + i);
#endif
}

std::optional<uint64_t> RaftLog::Term(uint64_t index) const {
  if (index == prev_index_) return prev_term_;
  if (index < prev_index_ || index > last_index()) return std::nullopt;
  return entries_[index - prev_index_ - 1].term;
}

bool RaftLog::MatchTerm(uint64_t index, uint64_t term) const {
  auto t = Term(index);
  return t && *t == term;
}

bool RaftLog::IsUpToDate(uint64_t index, uint64_t term) const {
  return term > last_term() || (term == last_term() && index >= last_index());
}

const Entry& RaftLog::At(uint64_t index) const {
  assert(index > prev_index_ && index <= last_index());
  return entries_[index - prev_index_ - 1];
}

std::span<const Entry> RaftLog::Slice(uint64_t lo, uint64_t hi) const {
  lo = std::max(lo, first_index());
  hi = std::min(hi, last_index());
  if (lo > hi) return {};
  return std::span<const Entry>(entries_).subspan(lo - first_index(), hi - lo + 1);
}

void RaftLog::AppendLeaderEntry(Entry e) {
  assert(e.index == last_index() + 1);
  entries_.push_back(std::move(e));
}

std::optional<uint64_t> RaftLog::MaybeAppend(uint64_t index, uint64_t log_term,
                                             std::vector<Entry>&& entries) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  uint64_t last_new = index + entries.size();
  // Skip entries we already hold with the same term (a repeated AppendEntries must not
  // truncate anything, Raft §5.3); the first conflict truncates our suffix from there.
  size_t skip = 0;
  for (; skip < entries.size(); ++skip) {
    const Entry& e = entries[skip];
    if (e.index <= prev_index_) continue;  // already compacted, hence committed
    if (!MatchTerm(e.index, e.term)) break;
  }
  if (skip < entries.size()) {
    uint64_t from = entries[skip].index;
    assert(from > committed_);
    if (from <= last_index()) {
      entries_.resize(from - prev_index_ - 1);
      stabled_ = std::min(stabled_, from - 1);
    }
    for (size_t i = skip; i < entries.size(); ++i) entries_.push_back(std::move(entries[i]));
  }
  return last_new;
}

void RaftLog::CommitTo(uint64_t index) {
  if (index <= committed_) return;
  assert(index <= last_index());
  committed_ = index;
}

std::span<const Entry> RaftLog::Unstable() const {
  return std::span<const Entry>(entries_).subspan(stabled_ - prev_index_);
}

std::span<const Entry> RaftLog::NextCommitted() const {
  uint64_t hi = std::min(committed_, stabled_);
  if (hi <= applied_) return {};
  return Slice(applied_ + 1, hi);
}

void RaftLog::StableTo(uint64_t index, uint64_t term) {
  // The entry may have been replaced by a newer leader's while the WAL write was in flight.
  if (index > stabled_ && MatchTerm(index, term)) stabled_ = index;
}

void RaftLog::AppliedTo(uint64_t index) {
  assert(index <= std::min(committed_, stabled_));
  applied_ = std::max(applied_, index);
}

void RaftLog::CompactTo(uint64_t index) {
  index = std::min(index, applied_);
  if (index <= prev_index_) return;
  prev_term_ = At(index).term;
  entries_.erase(entries_.begin(), entries_.begin() + (index - prev_index_));
  prev_index_ = index;
}

void RaftLog::Restore(uint64_t index, uint64_t term) {
  entries_.clear();
  prev_index_ = index;
  prev_term_ = term;
  committed_ = index;
  stabled_ = index;
  applied_ = index;
}

uint64_t RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  index = std::min(index, last_index());
  while (index > prev_index_) {
    if (entries_[index - prev_index_ - 1].term <= term) break;
    --index;
  }
  return index;
}

}  // namespace rusd::raft
