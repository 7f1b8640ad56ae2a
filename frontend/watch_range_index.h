// WatchRangeIndex: which arbitrary key ranges [begin, end) contain a key, at a cost that
// grows with the ranges that match, not with all of them (WatchKeyIndex files its
// "any other range" watchers here; etcd keeps them in an interval tree).
//
// A static augmented interval tree: the ranges sorted by begin form an implicit balanced
// binary tree (the middle element of each slice is its root) and every node knows the
// largest end in its subtree. A lookup skips each subtree whose largest end is <= the key
// and each right subtree whose root begins after it: O(log n + matches · log n) per key.
// Watchers come and go while events flow, so changes do not rebuild the tree each time: an
// add joins a short list scanned by every lookup (at most kMaxLoose entries), a remove
// leaves a hole in the tree (found through a pointer map: O(1)). A lookup rebuilds
// (O(n log n)) once the list is full or holes outnumber live entries, so a burst of creates
// between two events costs one rebuild and steady churn one per kMaxLoose changes.
//
// Not thread-safe (the owner serializes access, lookups included: they may rebuild). The
// index stores pointers and never owns them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rusd::frontend {

template <typename T>
class WatchRangeIndex {
 public:
  // `end` > `begin` (an empty or inverted range never matches anything).
  void Add(T* w, std::string begin, std::string end) {
    loose_.push_back(Entry{w, std::move(begin), std::move(end)});
    ++size_;
  }

  // Removes one entry of `w` (any position).
  bool Remove(T* w) {
    for (size_t i = 0; i < loose_.size(); ++i) {
      if (loose_[i].w == w) {
        loose_[i] = std::move(loose_.back());
        loose_.pop_back();
        --size_;
        return true;
      }
    }
    auto it = where_.find(w);
    if (it == where_.end()) return false;
    tree_[it->second].w = nullptr;  // a hole: still bounds max_end_, never reported
    where_.erase(it);
    ++holes_;
    --size_;
    return true;
  }

  // Calls fn(T*) for every range with begin <= key < end.
  template <typename Fn>
  void Match(std::string_view key, Fn&& fn) const {
    if (size_ == 0) return;
    if (loose_.size() > kMaxLoose || (holes_ > kMaxLoose && holes_ * 2 > tree_.size())) Rebuild();
    if (!tree_.empty()) Visit(0, tree_.size(), key, fn);
    for (const Entry& e : loose_) {
      if (std::string_view(e.begin) <= key && key < std::string_view(e.end)) fn(e.w);
    }
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  static constexpr size_t kMaxLoose = 64;

  struct Entry {
    T* w;  // null: removed (a hole in tree_)
    std::string begin;
    std::string end;
  };

  void Rebuild() const {
    std::erase_if(tree_, [](const Entry& e) { return e.w == nullptr; });
    for (Entry& e : loose_) tree_.push_back(std::move(e));
    loose_.clear();
    holes_ = 0;
    std::sort(tree_.begin(), tree_.end(),
              [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
    max_end_.assign(tree_.size(), 0);
    if (!tree_.empty()) Build(0, tree_.size());
    where_.clear();
    for (size_t i = 0; i < tree_.size(); ++i) where_.emplace(tree_[i].w, i);
  }

  // Fills max_end_[mid] for the slice [lo, hi) and returns the index of its largest end.
  size_t Build(size_t lo, size_t hi) const {
    const size_t mid = lo + (hi - lo) / 2;
    size_t best = mid;
    if (lo < mid) {
      size_t l = Build(lo, mid);
      if (tree_[l].end > tree_[best].end) best = l;
    }
    if (mid + 1 < hi) {
      size_t r = Build(mid + 1, hi);
      if (tree_[r].end > tree_[best].end) best = r;
    }
    max_end_[mid] = best;
    return best;
  }

  template <typename Fn>
  void Visit(size_t lo, size_t hi, std::string_view key, Fn& fn) const {
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (std::string_view(tree_[max_end_[mid]].end) <= key) return;  // all end at or before
      const Entry& e = tree_[mid];
      if (key < std::string_view(e.begin)) {
        hi = mid;  // mid and everything right of it begin after the key
        continue;
      }
      if (e.w != nullptr && key < std::string_view(e.end)) fn(e.w);
      Visit(lo, mid, key, fn);
      lo = mid + 1;
    }
  }

  size_t size_ = 0;  // live entries (tree_ less holes, plus loose_)
  // Rebuilt lazily (mutable: a lookup may rebuild).
  mutable std::vector<Entry> tree_;      // sorted by begin, with holes
  mutable std::vector<size_t> max_end_;  // per node (its slice's middle): index of the largest end
  mutable std::vector<Entry> loose_;     // added since the last rebuild
  mutable std::unordered_multimap<T*, size_t> where_;  // live tree_ entries by watcher
  mutable size_t holes_ = 0;
};

}  // namespace rusd::frontend
