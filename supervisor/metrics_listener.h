// --listen-metrics-urls: what Prometheus scrapes and Kubernetes probes on etcd's metrics
// port (kubeadm's probes GET http://127.0.0.1:2381/health?..., /livez, /readyz), served by
// the supervisor so that it keeps answering while a component restarts.
//
// - /metrics: prometheus-cpp's Exposer with ipc::SegmentCollector (every component's metrics
//   from the shared-memory segment, process_* of each process, rusd_* of the supervisor).
// - /livez (and /livez/<check>): answered here: the supervisor is alive and restarts what
//   fails, so liveness holds while a component restarts (a kubelet restarting the whole node
//   would not help). ?verbose lists the components.
// - /readyz (and /readyz/<check>): 503 unless every component runs with a heartbeat younger
//   than 2 s and raftd knows a leader; then relayed to the frontend, whose checks read
//   through the rings as etcd's do.
// - /health (?exclude=, ?serializable=) and /version: relayed unchanged to rusd-frontend on
//   the node's first client URL; 503 with etcd's JSON shape while it cannot be reached.
// Anything else is 404; a non-GET on a probe path is 405 (as the frontend answers).
//
// IPv6 URLs: Debian's civetweb has no IPv6, so they are served through a TcpRelay
// (metrics_tcp_relay.h) to an internal 127.0.0.1 port of the same Exposer.
//
// Threads: civetweb's four (a probe relayed to a frontend that waits for raftd may hold one
// for up to 3 s), created by Start; they inherit the caller's signal mask, so create the
// listener after BlockSupervisorSignals() and stop signals still reach the main thread.
// Their sockets are close-on-exec (the components never inherit them).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace rusd::ipc {
class Segment;
}

namespace rusd::supervisor {

struct MetricsListenerOptions {
  std::vector<std::string> listen_urls;  // http://host:port; 0.0.0.0 and [::] allowed
  std::string client_url;                // where the frontend listens (http://host:port)
  std::string server_version;            // etcd_server_version's label
};

class MetricsListener {
 public:
  // Binds every URL and starts serving. `segment` must outlive the listener.
  static Result<std::unique_ptr<MetricsListener>> Start(const MetricsListenerOptions& options,
                                                        ipc::Segment& segment);
  ~MetricsListener();  // stops civetweb and joins its threads

  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;

  struct Impl;

 private:
  explicit MetricsListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rusd::supervisor
