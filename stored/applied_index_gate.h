// AppliedIndexGate: holds back range reads until the store has applied the index they must
// see (a linearizable read's ReadIndex), then hands them to the read workers.
//
// The apply thread publishes each new applied index with Advance(); the reads thread offers
// each read with Submit(). Both only take a short process-local lock and enqueue work, so
// neither ever waits on the other's I/O. A read whose index is already applied goes straight
// to the workers.
//
// Ordering: Advance() stores the new index before it takes the lock and scans the parked
// reads; Submit() reads the index under that lock. A read is therefore either seen by the
// scan or sees the new index itself: none stays parked past the index it waits for.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

namespace rusd::internal {
class RangeRead;
}

namespace rusd::stored {

class ReadWorkerPool;

class AppliedIndexGate {
 public:
  // `applied` is the store's applied index at start; `workers` must outlive the gate.
  AppliedIndexGate(uint64_t applied, ReadWorkerPool& workers);

  // Reads thread: serve `read` once applied >= read->min_applied_index().
  void Submit(uint64_t request_id, std::shared_ptr<const internal::RangeRead> read);

  // Apply thread: the store has applied everything up to `applied` (never decreases).
  void Advance(uint64_t applied);

  uint64_t applied() const { return applied_.load(std::memory_order_acquire); }
  size_t parked() const;

 private:
  struct Parked {
    uint64_t request_id;
    std::shared_ptr<const internal::RangeRead> read;
  };

  ReadWorkerPool& workers_;
  std::atomic<uint64_t> applied_;
  mutable std::mutex mu_;
  std::multimap<uint64_t, Parked> parked_;  // by min_applied_index; guarded by mu_
};

}  // namespace rusd::stored
