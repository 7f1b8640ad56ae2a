// WatchRangeIndex: which arbitrary key ranges [begin, end) contain a key, at a cost that
// grows with the ranges that match, not with all of them (WatchKeyIndex files its
// "any other range" watchers here; etcd keeps them in an interval tree).
//
// A static augmented interval tree: the ranges sorted by begin form an implicit balanced
// binary tree (the middle element of each slice is its root) and every node knows the
// largest end in its subtree. A lookup skips each subtree whose largest end is <= the key
// and each right subtree whose root begins after it: O(log n + matches · log n) per key.
// Adds and removes are O(1) and mark the tree stale; the next lookup rebuilds it
// (O(n log n)), so a burst of creates costs one rebuild.
//
// Not thread-safe (the owner serializes access, lookups included: they may rebuild). The
// index stores pointers and never owns them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace rusd::frontend {

template <typename T>
class WatchRangeIndex {
 public:
  // `end` > `begin` (an empty or inverted range never matches anything).
  void Add(T* w, std::string begin, std::string end) {
    entries_.push_back(Entry{w, std::move(begin), std::move(end)});
    stale_ = true;
  }

  // Removes one entry of `w` (any position).
  bool Remove(T* w) {
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].w == w) {
        entries_[i] = std::move(entries_.back());
        entries_.pop_back();
        stale_ = true;
        return true;
      }
    }
    return false;
  }

  // Calls fn(T*) for every range with begin <= key < end.
  template <typename Fn>
  void Match(std::string_view key, Fn&& fn) const {
    if (entries_.empty()) return;
    if (stale_) Rebuild();
    Visit(0, entries_.size(), key, fn);
  }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    T* w;
    std::string begin;
    std::string end;
  };

  void Rebuild() const {
    std::sort(entries_.begin(), entries_.end(),
              [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
    max_end_.assign(entries_.size(), 0);
    if (!entries_.empty()) Build(0, entries_.size());
    stale_ = false;
  }

  // Fills max_end_[mid] for the slice [lo, hi) and returns the index of its largest end.
  size_t Build(size_t lo, size_t hi) const {
    const size_t mid = lo + (hi - lo) / 2;
    size_t best = mid;
    if (lo < mid) {
      size_t l = Build(lo, mid);
      if (entries_[l].end > entries_[best].end) best = l;
    }
    if (mid + 1 < hi) {
      size_t r = Build(mid + 1, hi);
      if (entries_[r].end > entries_[best].end) best = r;
    }
    max_end_[mid] = best;
    return best;
  }

  template <typename Fn>
  void Visit(size_t lo, size_t hi, std::string_view key, Fn& fn) const {
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (std::string_view(entries_[max_end_[mid]].end) <= key) return;  // all end at or before
      const Entry& e = entries_[mid];
      if (key < std::string_view(e.begin)) {
        hi = mid;  // mid and everything right of it begin after the key
        continue;
      }
      if (key < std::string_view(e.end)) fn(e.w);
      Visit(lo, mid, key, fn);
      lo = mid + 1;
    }
  }

  // Sorted and augmented lazily (mutable: a lookup may rebuild).
  mutable std::vector<Entry> entries_;
  mutable std::vector<size_t> max_end_;  // per node (its slice's middle): index of the largest end
  mutable bool stale_ = false;
};

}  // namespace rusd::frontend
