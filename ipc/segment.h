// The node's shared-memory segment: one per node, named from the data directory, created
// by the supervisor and opened by the three components.
//
// Layout (all offsets fixed at creation, nothing allocated afterwards, so no
// interprocess mutex is ever needed):
//
//   +-------------------------------+ 0
//   | SegmentHeader                 |  magic, layout version, total size,
//   |   ComponentSlot[3]            |  per component: epoch, heartbeat, pid
//   |   Doorbell[kDoorbellCount]    |  futex words consumers sleep on
//   |   RingDescriptor[kRingCount]  |  offset + capacity of each ring
//   |   metric counters             |  updated by components, exported by the supervisor
//   |   MetricsArea                 |  counters, gauges, histograms (ipc/metrics_area.h)
//   +-------------------------------+ aligned to 4 KiB
//   | ring 0: control block + data  |  (drawn in ipc/ring_layout.h)
//   | ring 1 ...                    |
//   +-------------------------------+
//
// Thread safety: the Segment object itself is immutable after Create/Open; the shared
// structures it points at are accessed only through atomics.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "ipc/metrics_area.h"

namespace rusd::ipc {

enum class Component : uint32_t { kFrontend = 0, kRaftd = 1, kStored = 2 };
inline constexpr int kComponentCount = 3;
const char* ComponentName(Component c);  // "frontend", "raftd", "stored"

// The rings of one node (see docs/architecture.md). Each has exactly one producing
// process and one consuming thread.
enum class RingId : uint32_t {
  kProposals = 0,     // frontend -> raftd
  kRaftReplies = 1,   // raftd -> frontend
  kCommitted = 2,     // raftd -> stored
  kStoreControl = 3,  // stored -> raftd
  kReads = 4,         // frontend -> stored
  kStoreReplies = 5,  // stored -> frontend
  kEvents = 6,        // stored -> frontend
};
inline constexpr int kRingCount = 7;
const char* RingName(RingId r);

// A doorbell is the futex word one consuming thread sleeps on; several rings may ring the
// same doorbell when one thread consumes them all.
enum class DoorbellId : uint32_t {
  kRaftdMain = 0,       // proposals, store-control
  kStoredApply = 1,     // committed
  kStoredReads = 2,     // reads
  kFrontendReplies = 3, // raft-replies, store-replies
  kFrontendEvents = 4,  // events
};
inline constexpr int kDoorbellCount = 5;
DoorbellId DoorbellOf(RingId r);

struct alignas(64) ComponentSlot {
  // Bumped by the supervisor before it spawns the component and again when it reaps it.
  // A component reads its own epoch at start and stamps it on every frame it sends.
  std::atomic<uint64_t> epoch;
  // Incremented by the component's heartbeat thread (a thread that never does I/O);
  // the supervisor restarts a component whose heartbeat stops moving.
  std::atomic<uint64_t> heartbeat;
  std::atomic<int32_t> pid;
};

struct alignas(64) Doorbell {
  std::atomic<uint32_t> word;      // futex word: bumped by a producer that wakes
  std::atomic<uint32_t> sleeping;  // 1 while the consumer is (about to be) asleep
  std::atomic<uint64_t> wakes;     // futex wakes issued on this doorbell (tests, metrics)
};

// Named counters that components increment and the supervisor exports to Prometheus.
enum class Counter : uint32_t {
  kProposalsReceived = 0,
  kEntriesCommitted,
  kEntriesApplied,
  kWalFsyncs,
  kRangeReads,
  kFrontendRequests,
  // Gauges (the latest value, stored, not added): what Maintenance.Status and metrics show.
  kRaftCommittedIndex,  // raftd: highest index committed (and fsynced in its WAL)
  kAppliedIndex,        // stored: highest index applied to the store
  // frontend: 1 once its watch hub has (had) a watcher, 0 from its start until then.
  // stored publishes events only while it is 1: a node nobody watches does not pay for
  // building and shipping every put's events (stored/event_publisher.h).
  kWatchEventsWanted,
  kCount
};
const char* CounterName(Counter c);

struct SegmentHeader;  // defined in segment.cc; only Segment touches it directly

class Ring;

// Sizes of the rings in bytes (each a power of two). Defaults fit Docker's 64 MB /dev/shm.
struct SegmentLayout {
  uint64_t ring_bytes[kRingCount] = {
      4u << 20,  // proposals: must hold one maximal request (max-request-bytes + 512 KiB)
      1u << 20,  // raft-replies
      8u << 20,  // committed
      1u << 20,  // store-control
      4u << 20,  // reads
      8u << 20,  // store-replies (large responses travel in chunks)
      8u << 20,  // events
  };
};

class Segment {
 public:
  // Creates the segment (supervisor only), removing a stale one of the same name first.
  static Result<std::unique_ptr<Segment>> Create(const std::string& name,
                                                 const SegmentLayout& layout = {});
  // Opens an existing segment; fails with FailedPrecondition on a bad magic/version.
  static Result<std::unique_ptr<Segment>> Open(const std::string& name);
  // Removes the named segment (the supervisor does this on clean shutdown).
  static void Remove(const std::string& name);
  // The segment name for a data directory: "rusd-" + 16 hex digits of a hash of its
  // absolute path, so two nodes on one machine never share a segment.
  static std::string NameForDataDir(const std::string& data_dir);

  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  ComponentSlot& component(Component c);
  Doorbell& doorbell(DoorbellId d);
  Ring& ring(RingId r);
  std::atomic<uint64_t>& counter(Counter c);
  // The metrics every component updates and the supervisor exports (ipc/metrics_area.h).
  MetricsArea& metrics();
  // Clears the gauges that describe a live `c` (has_leader and is_leader for raftd, pending
  // proposals for the frontend): the supervisor calls it when it reaps `c`.
  void ResetLiveGauges(Component c);

  // Rings every doorbell: the supervisor does this after bumping an epoch so that a peer
  // asleep on a futex notices.
  void WakeAll();

 private:
  struct Impl;
  explicit Segment(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rusd::ipc
