// Test-only: a segment with a unique name that is removed when the test ends.
#pragma once

#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>

#include "ipc/segment.h"

namespace rusd::ipc::testing {

inline std::string UniqueSegmentName(const std::string& tag) {
  static std::atomic<int> n{0};
  return "rusd-test-" + std::to_string(getpid()) + "-" + tag + "-" + std::to_string(n++);
}

// Every ring `ring_bytes` big.
inline SegmentLayout UniformLayout(uint64_t ring_bytes) {
  SegmentLayout l;
  for (auto& b : l.ring_bytes) b = ring_bytes;
  return l;
}

class ScopedSegment {
 public:
  explicit ScopedSegment(const std::string& tag, const SegmentLayout& layout = UniformLayout(64 << 10))
      : name_(UniqueSegmentName(tag)) {
    auto s = Segment::Create(name_, layout);
    if (s.ok()) segment_ = std::move(s).value();
  }
  ~ScopedSegment() { Segment::Remove(name_); }
  bool ok() const { return segment_ != nullptr; }
  Segment& operator*() { return *segment_; }
  Segment* operator->() { return segment_.get(); }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::unique_ptr<Segment> segment_;
};

}  // namespace rusd::ipc::testing
