// ReadDispatcher: stored's reads thread. It consumes the reads ring (frontend -> stored) and
// routes each request without doing the work itself: a kRangeRead goes to the
// AppliedIndexGate (served at once, or parked until the applied index reaches its
// min_applied_index); kHashKvRead/kHashRead go to the read workers at once (hash_read.h);
// anything malformed or unsupported is answered with a kError through the
// read workers. It never writes a ring, so it never blocks on one.
//
// Threads: Run() on the one reads thread; Stop() from any thread.
#pragma once

#include <atomic>

namespace rusd::ipc {
class Segment;
}

namespace rusd::stored {

class AppliedIndexGate;
class KvStore;
class LeaseKeeper;
class ReadWorkerPool;

class ReadDispatcher {
 public:
  // Everything passed in must outlive the dispatcher.
  ReadDispatcher(ipc::Segment& segment, AppliedIndexGate& gate, ReadWorkerPool& workers,
                 KvStore& store);

  // Consumes the reads ring until Stop().
  void Run();
  void Stop() { stop_.store(true, std::memory_order_release); }
  // Lease queries (kLeaseKeepAlive/TimeToLive/Leases) go here; set before Run.
  void SetLeaseKeeper(LeaseKeeper* leases) { leases_ = leases; }

 private:
  ipc::Segment& segment_;
  AppliedIndexGate& gate_;
  ReadWorkerPool& workers_;
  KvStore& store_;  // hashes (hash_read.h)
  std::atomic<bool> stop_{false};
  LeaseKeeper* leases_ = nullptr;
};

}  // namespace rusd::stored
