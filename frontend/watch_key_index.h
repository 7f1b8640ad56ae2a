// WatchKeyIndex: which watchers a changed key concerns, at a cost that does not grow with
// the number of unrelated watchers.
//
// A watcher covers etcd's key range (empty range_end = the key alone; "\0" = every key >=
// key; otherwise [key, range_end)). The index files each one by shape:
//   - single key        -> hash map key -> watchers                      (1 lookup)
//   - prefix            -> hash map prefix -> watchers, probed only at the prefix lengths
//     (range_end == PrefixEnd(key))  some prefix watcher uses           (≤ distinct lengths)
//   - from key (>= key) -> ordered map by key: every entry <= the changed key matches
//   - any other range   -> an interval tree (watch_range_index.h)
// So matching a key costs O(distinct prefix lengths + log(arbitrary ranges) + matches).
//
// Not thread-safe: the owner (the watch hub) serializes access. T is the watcher type; the
// index stores pointers and never owns them.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "frontend/watch_range_index.h"

namespace rusd::frontend {

// etcd's GetPrefixRangeEnd: the smallest key greater than every key with `prefix`; "\0"
// (all keys) when the prefix is empty or all 0xff bytes.
inline std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char c = static_cast<unsigned char>(end.back());
    if (c < 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

// Lets the hash maps be probed with a string_view (no allocation per lookup).
struct WatchKeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

template <typename T>
class WatchKeyIndex {
 public:
  // Files `w` under [key, range_end) in etcd's conventions (range_end already normalized:
  // empty = single key, "\0" = from key).
  void Add(T* w, const std::string& key, const std::string& range_end) {
    switch (ShapeOf(key, range_end)) {
      case Shape::kSingle: exact_[key].push_back(w); break;
      case Shape::kPrefix:
        prefix_[key].push_back(w);
        ++prefix_lengths_[key.size()];
        break;
      case Shape::kFrom: from_.emplace(key, w); break;
      case Shape::kRange: ranges_.Add(w, key, range_end); break;
    }
    ++size_;
  }

  void Remove(T* w, const std::string& key, const std::string& range_end) {
    switch (ShapeOf(key, range_end)) {
      case Shape::kSingle: EraseFrom(exact_, key, w); break;
      case Shape::kPrefix:
        if (EraseFrom(prefix_, key, w)) {
          auto it = prefix_lengths_.find(key.size());
          if (--it->second == 0) prefix_lengths_.erase(it);
        }
        break;
      case Shape::kFrom: {
        auto [b, e] = from_.equal_range(key);
        for (auto it = b; it != e; ++it) {
          if (it->second == w) {
            from_.erase(it);
            break;
          }
        }
        break;
      }
      case Shape::kRange: ranges_.Remove(w); break;
    }
    --size_;
  }

  // Calls fn(T*) for every watcher whose range contains `key` (each once).
  template <typename Fn>
  void Match(std::string_view key, Fn&& fn) const {
    if (!exact_.empty()) {
      auto it = exact_.find(key);
      if (it != exact_.end()) {
        for (T* w : it->second) fn(w);
      }
    }
    for (const auto& [len, count] : prefix_lengths_) {
      if (len > key.size()) break;
      auto it = prefix_.find(key.substr(0, len));
      if (it != prefix_.end()) {
        for (T* w : it->second) fn(w);
      }
    }
    for (auto it = from_.begin(); it != from_.end() && std::string_view(it->first) <= key; ++it) {
      fn(it->second);
    }
    ranges_.Match(key, fn);
  }

  size_t size() const { return size_; }

 private:
  enum class Shape { kSingle, kPrefix, kFrom, kRange };

  static Shape ShapeOf(const std::string& key, const std::string& range_end) {
    if (range_end.empty()) return Shape::kSingle;
    if (range_end.size() == 1 && range_end[0] == '\0') return Shape::kFrom;
    // A prefix of all-0xff bytes has PrefixEnd "\0" and is filed as "from key" above.
    if (!key.empty() && PrefixEnd(key) == range_end) return Shape::kPrefix;
    return Shape::kRange;
  }

  using Map = std::unordered_map<std::string, std::vector<T*>, WatchKeyHash, std::equal_to<>>;

  static bool EraseFrom(Map& m,
                        const std::string& key, T* w) {
    auto it = m.find(key);
    if (it == m.end()) return false;
    auto& v = it->second;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == w) {
        v[i] = v.back();
        v.pop_back();
        if (v.empty()) m.erase(it);
        return true;
      }
    }
    return false;
  }

  Map exact_;
  Map prefix_;
  std::map<size_t, size_t> prefix_lengths_;  // prefix length -> watchers using it
  std::multimap<std::string, T*> from_;
  WatchRangeIndex<T> ranges_;
  size_t size_ = 0;
};

}  // namespace rusd::frontend
