// Request ids that are never reused, even across restarts of a frontend or a whole node.
//
// Built as etcd's idutil builds them: the low 16 bits of the member id in the top 16 bits,
// then the low 40 bits of the boot time in milliseconds shifted left by 8, plus a counter
// that starts there. A restart begins from a later boot time, so its ids start above any
// the previous incarnation issued unless it issued more than 256 per millisecond of its
// lifetime on average (the same bound as etcd's).
#pragma once

#include <atomic>
#include <cstdint>

namespace rusd {

class RequestIdGenerator {
 public:
  RequestIdGenerator(uint64_t member_id, uint64_t boot_time_ms)
      : prefix_((member_id & 0xffff) << 48),
        counter_(((boot_time_ms & ((1ull << 40) - 1)) << 8)) {}

  // Thread-safe; never returns 0.
  uint64_t Next() {
    uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed) + 1;
    return prefix_ | (n & ((1ull << 48) - 1));
  }

 private:
  const uint64_t prefix_;
  std::atomic<uint64_t> counter_;
};

}  // namespace rusd
