#include "ipc/metrics_collector.h"

#include <prometheus/text_serializer.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <iterator>
#include <limits>
#include <sstream>

#include "ipc/metrics_grpc_methods.h"
#include "ipc/metrics_process.h"
#include "ipc/ring_layout.h"
#include "ipc/segment.h"

namespace rusd::ipc {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

uint64_t MonotonicNanos() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Builds the family list; one helper per metric shape keeps Collect readable. A deque, so
// the family references Add returns stay valid while more families are added.
class Families {
 public:
  MetricFamily& Add(std::string name, std::string help, MetricType type) {
    out_.push_back(MetricFamily{std::move(name), std::move(help), type, {}});
    return out_.back();
  }
  void Counter(std::string name, std::string help, double v) {
    Sample(Add(std::move(name), std::move(help), MetricType::Counter), {}, v);
  }
  void Gauge(std::string name, std::string help, double v) {
    Sample(Add(std::move(name), std::move(help), MetricType::Gauge), {}, v);
  }
  static void Sample(MetricFamily& f, std::vector<ClientMetric::Label> labels, double v) {
    ClientMetric& m = f.metric.emplace_back();
    m.label = std::move(labels);
    if (f.type == MetricType::Counter) {
      m.counter.value = v;
    } else {
      m.gauge.value = v;
    }
  }
  std::vector<MetricFamily> Take() {
    return std::vector<MetricFamily>(std::make_move_iterator(out_.begin()),
                                     std::make_move_iterator(out_.end()));
  }

 private:
  std::deque<MetricFamily> out_;
};

double Load(const std::atomic<uint64_t>& a) {
  return static_cast<double>(a.load(std::memory_order_relaxed));
}

void AddHistogram(Families& fams, std::string name, std::string help, const LatencyHistogram& h) {
  MetricFamily& f = fams.Add(std::move(name), std::move(help), MetricType::Histogram);
  ClientMetric& m = f.metric.emplace_back();
  uint64_t cumulative = 0;
  for (int i = 0; i <= kLatencyBuckets; ++i) {
    cumulative += h.buckets[i].load(std::memory_order_relaxed);
    m.histogram.bucket.push_back(
        {cumulative, i < kLatencyBuckets ? LatencyBucketBound(i)
                                         : std::numeric_limits<double>::infinity()});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(h.sum_ns.load(std::memory_order_relaxed)) / 1e9;
}

}  // namespace

SegmentCollector::SegmentCollector(Segment& segment, MetricsCollectorOptions options)
    : segment_(segment), options_(std::move(options)) {}

std::vector<MetricFamily> SegmentCollector::Collect() const {
  MetricsArea& m = segment_.metrics();
  Families f;
  auto value = [&](Metric id) { return static_cast<double>(m.Get(id)); };
  auto counter = [&](Counter c) { return Load(segment_.counter(c)); };

  // ---- etcd_server_* (etcdserver/metrics.go) ----
  f.Gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.",
          value(Metric::kHasLeader));
  f.Gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.",
          value(Metric::kIsLeader));
  f.Gauge("etcd_server_is_learner",
          "Whether or not this member is a learner. 1 if is, 0 otherwise.",
          value(Metric::kIsLearner));
  f.Counter("etcd_server_heartbeat_send_failures_total",
            "The total number of leader heartbeat send failures (likely overloaded from slow "
            "disk).",
            value(Metric::kHeartbeatSendFailures));
  f.Counter("etcd_server_slow_read_indexes_total",
            "The total number of pending read indexes not in sync with leader's or timed out "
            "read index requests.",
            value(Metric::kSlowReadIndexes));
  f.Counter("etcd_server_read_indexes_failed_total",
            "The total number of failed read indexes seen.", value(Metric::kReadIndexesFailed));
  f.Counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen.",
            value(Metric::kLeaderChanges));
  // etcd declares these two as gauges holding the committed and applied indexes.
  f.Gauge("etcd_server_proposals_committed_total",
          "The total number of consensus proposals committed.",
          counter(Counter::kRaftCommittedIndex));
  f.Gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.",
          counter(Counter::kAppliedIndex));
  f.Gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.",
          value(Metric::kProposalsPending));
  f.Counter("etcd_server_proposals_failed_total", "The total number of failed proposals seen.",
            value(Metric::kProposalsFailed));
  f.Gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.",
          value(Metric::kQuotaBackendBytes));
  {
    MetricFamily& v = f.Add("etcd_server_version",
                            "Which version is running. 1 for 'server_version' label with current "
                            "version.",
                            MetricType::Gauge);
    Families::Sample(v, {{"server_version", options_.server_version}}, 1);
    MetricFamily& id = f.Add("etcd_server_id",
                             "Server or member ID in hexadecimal format. 1 for 'server_id' label "
                             "with current ID.",
                             MetricType::Gauge);
    char hex[24];
    std::snprintf(hex, sizeof hex, "%llx",
                  static_cast<unsigned long long>(m.Get(Metric::kMemberId)));
    Families::Sample(id, {{"server_id", hex}}, 1);
  }

  // ---- etcd_disk_* (wal/metrics.go, mvcc/backend/metrics.go) ----
  AddHistogram(f, "etcd_disk_wal_fsync_duration_seconds",
               "The latency distributions of fsync called by WAL.",
               m.histogram(Histogram::kWalFsync));
  AddHistogram(f, "etcd_disk_backend_commit_duration_seconds",
               "The latency distributions of commit called by backend.",
               m.histogram(Histogram::kBackendCommit));

  // ---- etcd_mvcc_* (mvcc/metrics.go) ----
  const char* kDbSizeHelp = "Total size of the underlying database physically allocated in bytes.";
  f.Gauge("etcd_mvcc_db_total_size_in_bytes", kDbSizeHelp, value(Metric::kDbTotalSize));
  f.Gauge("etcd_debugging_mvcc_db_total_size_in_bytes", kDbSizeHelp, value(Metric::kDbTotalSize));
  f.Gauge("etcd_mvcc_db_total_size_in_use_in_bytes",
          "Total size of the underlying database logically in use in bytes.",
          value(Metric::kDbInUseSize));
  f.Counter("etcd_mvcc_range_total", "Total number of ranges seen by this member.",
            counter(Counter::kRangeReads));
  f.Counter("etcd_mvcc_put_total", "Total number of puts seen by this member.",
            value(Metric::kMvccPut));
  f.Counter("etcd_mvcc_delete_total", "Total number of deletes seen by this member.",
            value(Metric::kMvccDelete));
  f.Counter("etcd_mvcc_txn_total", "Total number of txns seen by this member.",
            value(Metric::kMvccTxn));
  f.Gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", value(Metric::kKeysTotal));
  // Watch (frontend fan-out) and leases (stored): etcd's debugging families.
  f.Gauge("etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams.",
          value(Metric::kWatchStreams));
  f.Gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.",
          value(Metric::kWatchers));
  f.Gauge("etcd_debugging_mvcc_slow_watcher_total", "Total number of unsynced slow watchers.",
          value(Metric::kSlowWatchers));
  f.Counter("etcd_debugging_mvcc_events_total", "Total number of events sent by this member.",
            value(Metric::kWatchEventsSent));
  // Not etcd_debugging_mvcc_pending_events_total: nothing counts the events the watch
  // streams hold unsent yet (docs/metrics.md), and a gauge stuck at 0 would tell a
  // dashboard that no watcher ever lags.
  f.Counter("etcd_debugging_lease_granted_total", "The total number of granted leases.",
            value(Metric::kLeaseGranted));
  f.Counter("etcd_debugging_lease_revoked_total", "The total number of revoked leases.",
            value(Metric::kLeaseRevoked));
  f.Counter("etcd_debugging_lease_renewed_total",
            "The number of renewed leases seen by the leader.", value(Metric::kLeaseRenewed));
  f.Counter("etcd_debugging_server_lease_expired_total", "The total number of expired leases.",
            value(Metric::kLeaseExpired));

  // ---- etcd_network_* (etcdserver/api/v3rpc/metrics.go) ----
  f.Counter("etcd_network_client_grpc_received_bytes_total",
            "The total number of bytes received from grpc clients.",
            value(Metric::kGrpcReceivedBytes));
  f.Counter("etcd_network_client_grpc_sent_bytes_total",
            "The total number of bytes sent to grpc clients.", value(Metric::kGrpcSentBytes));

  // ---- grpc_server_* (go-grpc-prometheus, every method pre-registered as etcd does) ----
  {
    MetricFamily& started = f.Add("grpc_server_started_total",
                                  "Total number of RPCs started on the server.",
                                  MetricType::Counter);
    MetricFamily& handled =
        f.Add("grpc_server_handled_total",
              "Total number of RPCs completed on the server, regardless of success or failure.",
              MetricType::Counter);
    MetricFamily& received = f.Add("grpc_server_msg_received_total",
                                   "Total number of RPC stream messages received on the server.",
                                   MetricType::Counter);
    MetricFamily& sent = f.Add("grpc_server_msg_sent_total",
                               "Total number of gRPC stream messages sent by the server.",
                               MetricType::Counter);
    MetricFamily& handling =
        f.Add("grpc_server_handling_seconds",
              "Histogram of response latency (seconds) of gRPC that had been application-level "
              "handled by the server.",
              MetricType::Histogram);
    for (int slot = 0; slot <= GrpcMethodCount(); ++slot) {
      const int index = slot < GrpcMethodCount() ? slot : kGrpcOtherMethod;
      const GrpcMethodStats& g = m.grpc[index];
      const GrpcMethodInfo& info = GrpcMethodAt(index);
      // Calls to unknown methods appear only once there are some.
      if (index == kGrpcOtherMethod && g.started.load(std::memory_order_relaxed) == 0) break;
      std::vector<ClientMetric::Label> labels = {
          {"grpc_method", info.method}, {"grpc_service", info.service}, {"grpc_type", info.type}};
      Families::Sample(started, labels, Load(g.started));
      Families::Sample(received, labels, Load(g.msg_received));
      Families::Sample(sent, labels, Load(g.msg_sent));
      for (int code = 0; code < kGrpcCodes; ++code) {
        std::vector<ClientMetric::Label> l = {{"grpc_code", GrpcCodeName(code)}};
        l.insert(l.end(), labels.begin(), labels.end());
        Families::Sample(handled, std::move(l), Load(g.handled[code]));
      }
      // The latency histogram only for methods that were called: 12 series each would
      // double the scrape for methods a node never serves.
      uint64_t cumulative = 0;
      ClientMetric hist;
      for (int i = 0; i <= kGrpcLatencyBuckets; ++i) {
        cumulative += g.handling[i].load(std::memory_order_relaxed);
        hist.histogram.bucket.push_back(
            {cumulative, i < kGrpcLatencyBuckets
                             ? static_cast<double>(kGrpcLatencyBoundsNs[i]) / 1e9
                             : std::numeric_limits<double>::infinity()});
      }
      if (cumulative != 0) {
        hist.label = labels;
        hist.histogram.sample_count = cumulative;
        hist.histogram.sample_sum =
            static_cast<double>(g.handling_sum_ns.load(std::memory_order_relaxed)) / 1e9;
        handling.metric.push_back(std::move(hist));
      }
    }
  }

  // ---- process_* per process (the Go client's process collector), label component ----
  {
    MetricFamily& cpu = f.Add("process_cpu_seconds_total",
                              "Total user and system CPU time spent in seconds.",
                              MetricType::Counter);
    MetricFamily& rss = f.Add("process_resident_memory_bytes", "Resident memory size in bytes.",
                              MetricType::Gauge);
    MetricFamily& vsz = f.Add("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                              MetricType::Gauge);
    MetricFamily& start = f.Add("process_start_time_seconds",
                                "Start time of the process since unix epoch in seconds.",
                                MetricType::Gauge);
    MetricFamily& fds = f.Add("process_open_fds", "Number of open file descriptors.",
                              MetricType::Gauge);
    MetricFamily& max_fds = f.Add("process_max_fds", "Maximum number of open file descriptors.",
                                  MetricType::Gauge);
    auto add = [&](const char* component, int pid) {
      std::optional<ProcessStats> p = ReadProcessStats(pid);
      if (!p) return;
      std::vector<ClientMetric::Label> l = {{"component", component}};
      Families::Sample(cpu, l, p->cpu_seconds);
      Families::Sample(rss, l, p->resident_memory_bytes);
      Families::Sample(vsz, l, p->virtual_memory_bytes);
      Families::Sample(start, l, p->start_time_seconds);
      Families::Sample(fds, l, p->open_fds);
      Families::Sample(max_fds, l, p->max_fds);
    };
    add("supervisor", static_cast<int>(m.Get(Metric::kSupervisorPid)));
    for (int c = 0; c < kComponentCount; ++c) {
      add(ComponentName(static_cast<Component>(c)),
          segment_.component(static_cast<Component>(c)).pid.load(std::memory_order_relaxed));
    }
  }

  // ---- rusd_component_* ----
  {
    MetricFamily& up = f.Add("rusd_component_up",
                             "1 if the component's process is running, 0 while it is down or "
                             "being restarted.",
                             MetricType::Gauge);
    MetricFamily& restarts = f.Add("rusd_component_restarts_total",
                                   "Times the supervisor restarted the component.",
                                   MetricType::Counter);
    MetricFamily& age = f.Add("rusd_component_heartbeat_age_seconds",
                              "Seconds since the component's heartbeat last moved (or since it "
                              "was started, before its first beat).",
                              MetricType::Gauge);
    MetricFamily& epoch = f.Add("rusd_component_epoch",
                                "The component's epoch: bumped at each start and each exit.",
                                MetricType::Gauge);
    const uint64_t now = MonotonicNanos();
    for (int c = 0; c < kComponentCount; ++c) {
      const Component comp = static_cast<Component>(c);
      const ComponentSlot& slot = segment_.component(comp);
      const ComponentStats& st = m.components[c];
      std::vector<ClientMetric::Label> l = {{"component", ComponentName(comp)}};
      Families::Sample(up, l, slot.pid.load(std::memory_order_relaxed) != 0 ? 1 : 0);
      Families::Sample(restarts, l, Load(st.restarts));
      uint64_t since = std::max(st.last_beat_mono_ns.load(std::memory_order_relaxed),
                                st.start_mono_ns.load(std::memory_order_relaxed));
      Families::Sample(age, l,
                       since == 0 || since > now ? 0 : static_cast<double>(now - since) / 1e9);
      Families::Sample(epoch, l, Load(slot.epoch));
    }
  }

  // ---- rusd_ring_* ----
  {
    MetricFamily& cap = f.Add("rusd_ring_capacity_bytes", "The ring's data bytes.",
                              MetricType::Gauge);
    MetricFamily& depth = f.Add("rusd_ring_depth_bytes",
                                "Bytes published by the producer and not yet consumed.",
                                MetricType::Gauge);
    MetricFamily& written = f.Add("rusd_ring_written_bytes_total",
                                  "Bytes ever published into the ring (frames and padding).",
                                  MetricType::Counter);
    MetricFamily& msgs = f.Add("rusd_ring_messages_total", "Messages written into the ring.",
                               MetricType::Counter);
    MetricFamily& wakes = f.Add("rusd_ring_wakeups_total",
                                "Futex wake-ups the producer issued to a sleeping consumer.",
                                MetricType::Counter);
    MetricFamily& waits = f.Add("rusd_ring_producer_waits_total",
                                "Times a producer found the ring full and waited for room.",
                                MetricType::Counter);
    MetricFamily& full = f.Add("rusd_ring_full_total",
                               "Non-blocking writes refused because the ring was full.",
                               MetricType::Counter);
    for (int r = 0; r < kRingCount; ++r) {
      const RingId id = static_cast<RingId>(r);
      Ring& ring = segment_.ring(id);
      const uint64_t tail = ring.tail.load(std::memory_order_acquire);
      const uint64_t head = ring.head.load(std::memory_order_acquire);
      const RingStats& st = m.rings[r];
      std::vector<ClientMetric::Label> l = {{"ring", RingName(id)}};
      Families::Sample(cap, l, static_cast<double>(ring.capacity()));
      Families::Sample(depth, l, head >= tail ? static_cast<double>(head - tail) : 0);
      Families::Sample(written, l, static_cast<double>(head));
      Families::Sample(msgs, l, Load(st.messages));
      Families::Sample(wakes, l, Load(st.wakeups));
      Families::Sample(waits, l, Load(st.producer_waits));
      Families::Sample(full, l, Load(st.full_rejects));
    }
  }

  // ---- rusd's internal counters ----
  f.Counter("rusd_raft_proposals_received_total", "Proposal frames raftd took from its ring.",
            counter(Counter::kProposalsReceived));
  f.Counter("rusd_raft_entries_committed_total", "Entries raftd committed.",
            counter(Counter::kEntriesCommitted));
  f.Counter("rusd_raft_wal_fsyncs_total", "fdatasync calls of raftd's WAL.",
            counter(Counter::kWalFsyncs));
  f.Counter("rusd_store_entries_applied_total", "Entries stored applied.",
            counter(Counter::kEntriesApplied));
  f.Counter("rusd_frontend_requests_total", "Requests the frontend sent over its rings.",
            counter(Counter::kFrontendRequests));
  f.Gauge("rusd_raft_term", "raftd's current Raft term.", value(Metric::kRaftTerm));
  return f.Take();
}

std::string RenderMetricsText(const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace rusd::ipc
