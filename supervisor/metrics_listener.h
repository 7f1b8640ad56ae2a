// --listen-metrics-urls: a plain-HTTP listener in the supervisor that answers what
// Kubernetes probes and Prometheus scrape on etcd's metrics port (kubeadm's liveness and
// startup probes GET http://127.0.0.1:2381/health?...): /metrics, /health, /livez, /readyz
// and /version are relayed unchanged to rusd-frontend on the node's first client URL, so
// the answers are the frontend's own; any other path is 404. While the frontend cannot be
// reached (restarting), /health, /livez and /readyz answer 503 with etcd's JSON shape.
//
// One background thread serves one connection at a time (probes are rare and small), with
// short socket timeouts so a stuck peer cannot hold it. Its sockets are close-on-exec (the
// components never inherit them). The thread inherits the caller's signal mask: create the
// listener after BlockSupervisorSignals(), so stop signals still reach the main thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace rusd::supervisor {

class MetricsListener {
 public:
  // Binds every http:// URL in `listen_urls` (host:port; 0.0.0.0 and [::] allowed) and starts
  // serving. `client_url` is where the frontend listens (http://host:port).
  static Result<std::unique_ptr<MetricsListener>> Start(const std::vector<std::string>& listen_urls,
                                                        const std::string& client_url);
  ~MetricsListener();  // stops and joins the thread, closes the sockets

  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;

  struct Impl;

 private:
  explicit MetricsListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rusd::supervisor
