// The metrics area of the shared-memory segment: the counters, gauges and fixed-bucket
// histograms that the components update and the supervisor (and the frontend's /metrics)
// export to Prometheus (ipc/metrics_collector.h renders them).
//
// Promises:
// - Updating a metric is one relaxed atomic RMW or store on memory already mapped: no lock,
//   no syscall, no allocation. Hot writers own separate cache lines (one `MetricLine` per
//   writing thread group), so raftd's loop never shares a line with stored's apply loop.
// - The area lives in the segment the supervisor owns, so a component restart keeps every
//   counter (they never go backwards while the node runs). Gauges that describe a live
//   process (has_leader, is_leader, proposals_pending) are cleared by the supervisor when it
//   reaps their owner (ResetGaugesOf).
// - A reader may see one metric updated and not another (no snapshot across fields): a
//   histogram's count is derived from its buckets, so count and buckets always agree.
//
// Layout changes here are segment layout changes: bump kLayoutVersion in segment.cc.
#pragma once

#include <atomic>
#include <cstdint>

namespace rusd::ipc {

// A scalar metric. The value's group (value / 8) is the cache line it lives on; each line
// has one writing thread (or thread group), noted per line.
enum class Metric : uint32_t {
  // raftd main loop
  kHasLeader = 0,          // gauge: 1 if raftd knows a leader
  kIsLeader = 1,           // gauge: 1 if this member leads
  kLeaderChanges = 2,      // counter: leader changes seen (including the first election)
  kProposalsFailed = 3,    // counter: proposals that timed out or raftd refused (counted by
                           // the frontend, once each)
  kRaftTerm = 4,           // gauge: current term
  // (etcd's proposals_committed/applied are the committed and applied indexes: the
  // segment's Counter::kRaftCommittedIndex and Counter::kAppliedIndex.)
  // stored apply loop
  kMvccPut = 9,            // counter: puts applied (inside txns too)
  kMvccDelete = 10,        // counter: delete-ranges applied (inside txns too)
  kMvccTxn = 11,           // counter: txns applied
  kKeysCounted = 12,       // 1 once kKeysTotal was counted for this segment (a node start)
  kKeysTotal = 13,         // gauge: live keys (RocksDB's estimate)
  kDbTotalSize = 14,       // gauge: bytes on disk (SST files + memtables)
  kDbInUseSize = 15,       // gauge: bytes of live data (RocksDB's estimate)
  // frontend gRPC threads (shared by many threads: RMW only, never a hot single writer)
  kGrpcReceivedBytes = 16, // counter
  kGrpcSentBytes = 17,     // counter
  kProposalsPending = 18,  // gauge: proposals sent to raftd and not answered yet
  // supervisor (written at start and on component events)
  kMemberId = 24,          // gauge: the member id (exported as a label, as etcd does)
  kQuotaBackendBytes = 25, // gauge
  kSupervisorPid = 26,     // gauge: exported as process_* of component "supervisor"
  // Exported with etcd's names. Frontend watch fan-out:
  kWatchStreams = 40,      // gauge: open Watch streams
  kWatchers = 41,          // gauge: watchers on them
  kSlowWatchers = 42,      // gauge: watchers catching up (unsynced)
  kWatchEventsSent = 43,   // counter: events sent to watchers
  kPendingEvents = 44,     // gauge: events buffered, not yet sent. Nothing writes it yet,
                           // so it is not exported (docs/metrics.md)
  // stored leases:
  kLeaseGranted = 48,      // counter
  kLeaseRevoked = 49,      // counter
  kLeaseRenewed = 50,      // counter: keep-alives that renewed a lease (leader)
  kLeaseExpired = 51,      // counter: leases revoked because they expired
  // raftd, cluster:
  kIsLearner = 56,         // gauge
  kHeartbeatSendFailures = 57,  // counter: leader heartbeats to a peer sent > 2 intervals apart
  kSlowReadIndexes = 58,   // counter: read-index requests unanswered past the retry interval
  kReadIndexesFailed = 59, // counter: read-index requests failed (no leader, leader changed)
  kMetricSlots = 64,
};

// etcd's disk latency histograms: prometheus.ExponentialBuckets(0.001, 2, 14), i.e. upper
// bounds 1 ms, 2 ms, ... 8.192 s, plus +Inf.
inline constexpr int kLatencyBuckets = 14;
inline double LatencyBucketBound(int i) { return 0.001 * static_cast<double>(1u << i); }  // s

enum class Histogram : uint32_t {
  kWalFsync = 0,       // etcd_disk_wal_fsync_duration_seconds (raftd)
  kBackendCommit = 1,  // etcd_disk_backend_commit_duration_seconds (stored)
  kCount
};

// One histogram, on its own cache lines (one writer thread each).
struct alignas(64) LatencyHistogram {
  std::atomic<uint64_t> buckets[kLatencyBuckets + 1];  // not cumulative; last is +Inf
  std::atomic<uint64_t> sum_ns;

  void Observe(uint64_t nanoseconds) {
    int i = 0;
    // Bound i is 1 ms << i; at most 14 compares, no floating point.
    while (i < kLatencyBuckets && nanoseconds > (uint64_t{1000000} << i)) ++i;
    buckets[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns.fetch_add(nanoseconds, std::memory_order_relaxed);
  }
};

// Per ring: what its producer records (the consumer side is visible from head and tail).
struct alignas(64) RingStats {
  std::atomic<uint64_t> messages;        // messages written
  std::atomic<uint64_t> wakeups;         // futex wakes this ring's producer issued
  std::atomic<uint64_t> producer_waits;  // times Write found the ring full and had to wait
  std::atomic<uint64_t> full_rejects;    // TryWrite calls refused because the ring was full
};

// Per component: written by the supervisor.
struct alignas(64) ComponentStats {
  std::atomic<uint64_t> restarts;           // starts after the first
  std::atomic<uint64_t> last_beat_mono_ns;  // CLOCK_MONOTONIC when its heartbeat last moved
  std::atomic<uint64_t> start_mono_ns;      // CLOCK_MONOTONIC of its latest start
};

// grpc_server_handling_seconds: go-grpc-prometheus' default buckets (prometheus.DefBuckets),
// in nanoseconds, plus +Inf. (etcd exports it with --metrics=extensive; rusd always does.)
inline constexpr uint64_t kGrpcLatencyBoundsNs[] = {
    5'000'000,   10'000'000,    25'000'000,    50'000'000,    100'000'000,  250'000'000,
    500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
inline constexpr int kGrpcLatencyBuckets =
    static_cast<int>(sizeof kGrpcLatencyBoundsNs / sizeof kGrpcLatencyBoundsNs[0]);

// gRPC server metrics per method (etcd's go-grpc-prometheus names; metrics_grpc_methods.h).
inline constexpr int kGrpcCodes = 17;    // OK .. UNAUTHENTICATED
inline constexpr int kGrpcMethodSlots = 52;  // the etcd methods + one for anything else
struct alignas(64) GrpcMethodStats {
  std::atomic<uint64_t> started;
  std::atomic<uint64_t> msg_received;
  std::atomic<uint64_t> msg_sent;
  std::atomic<uint64_t> handled[kGrpcCodes];
  std::atomic<uint64_t> handling[kGrpcLatencyBuckets + 1];  // not cumulative; last is +Inf
  std::atomic<uint64_t> handling_sum_ns;

  void ObserveHandling(uint64_t nanoseconds) {
    int i = 0;
    while (i < kGrpcLatencyBuckets && nanoseconds > kGrpcLatencyBoundsNs[i]) ++i;
    handling[i].fetch_add(1, std::memory_order_relaxed);
    handling_sum_ns.fetch_add(nanoseconds, std::memory_order_relaxed);
  }
};

struct MetricsArea {
  alignas(64) std::atomic<uint64_t> values[static_cast<int>(Metric::kMetricSlots)];
  LatencyHistogram histograms[static_cast<int>(Histogram::kCount)];
  RingStats rings[7];  // indexed by RingId (static_assert in segment.cc)
  ComponentStats components[3];  // indexed by Component
  GrpcMethodStats grpc[kGrpcMethodSlots];

  std::atomic<uint64_t>& at(Metric m) { return values[static_cast<int>(m)]; }
  uint64_t Get(Metric m) const {
    return values[static_cast<int>(m)].load(std::memory_order_relaxed);
  }
  void Add(Metric m, uint64_t n = 1) { at(m).fetch_add(n, std::memory_order_relaxed); }
  void Set(Metric m, uint64_t v) { at(m).store(v, std::memory_order_relaxed); }
  LatencyHistogram& histogram(Histogram h) { return histograms[static_cast<int>(h)]; }
};

// One unit of a gauge held while this object lives (a pending proposal, say): +1 when
// made, -1 when destroyed. Movable, so it can ride inside a request's bookkeeping.
class GaugeHold {
 public:
  GaugeHold() = default;
  explicit GaugeHold(std::atomic<uint64_t>& gauge) : gauge_(&gauge) {
    gauge_->fetch_add(1, std::memory_order_relaxed);
  }
  GaugeHold(GaugeHold&& o) noexcept : gauge_(o.gauge_) { o.gauge_ = nullptr; }
  GaugeHold& operator=(GaugeHold&& o) noexcept {
    if (this != &o) {
      Release();
      gauge_ = o.gauge_;
      o.gauge_ = nullptr;
    }
    return *this;
  }
  ~GaugeHold() { Release(); }

 private:
  void Release() {
    if (gauge_ != nullptr) gauge_->fetch_sub(1, std::memory_order_relaxed);
    gauge_ = nullptr;
  }
  std::atomic<uint64_t>* gauge_ = nullptr;
};

}  // namespace rusd::ipc
