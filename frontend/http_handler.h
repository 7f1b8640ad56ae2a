// The HTTP endpoints etcd 3.5 serves on its client URLs (etcdhttp/base.go, health.go):
//   GET /version  {"etcdserver":"3.5.17","etcdcluster":"3.5.0"}
//   GET /health   {"health":"true","reason":""}, or 503 with health "false" and the reason
//                 ("RAFT NO LEADER", "RANGE ERROR:<etcd error>"); ?serializable=true skips
//                 the leader check and reads locally, as etcd.
//   GET /livez, /readyz (and /livez/<check>, /readyz/<check>): "ok\n", ?verbose lists the
//                 checks, ?exclude=<check> skips one; a failed check answers 503.
//   GET /metrics  Prometheus' text format, when a MetricsPage is given (metrics_page.h).
//   POST /v3/kv/...  the JSON gateway, when one is given (gateway.h).
// Anything else is 404 "404 page not found\n"; a non-GET on a known path is 405.
//
// Thread safety: Handle may be called from many connection threads at once; it blocks the
// caller for the duration of the health reads (bounded by the request timeout).
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "frontend/http_message.h"

namespace rusd::frontend {

// What the health endpoints ask of the node. RingHealthProbe (health_probe.h) answers
// through the rings; tests substitute a fake.
class HealthProbe {
 public:
  virtual ~HealthProbe() = default;
  // True if raftd reported a leader.
  virtual bool HasLeader() = 0;
  // A one-key keys-only range, like etcd's health check; blocks until it completes.
  virtual Status Read(bool serializable) = 0;
};

// The JSON gateway (gateway.h): answers the requests on its paths, nullopt for others.
class JsonGateway {
 public:
  virtual ~JsonGateway() = default;
  virtual std::optional<HttpResponse> Serve(const HttpRequest& request) = 0;
};

// The /metrics page (metrics_page.h renders the segment's metrics).
class MetricsPage {
 public:
  virtual ~MetricsPage() = default;
  virtual std::string ContentType() = 0;
  virtual std::string Render() = 0;
};

struct HttpVersions {
  std::string server = "3.5.17";
  std::string cluster = "3.5.0";
};

class HttpHandler {
 public:
  // `gateway` may be null (no /v3/ JSON gateway).
  HttpHandler(HealthProbe& probe, HttpVersions versions, JsonGateway* gateway = nullptr)
      : probe_(probe), versions_(std::move(versions)), gateway_(gateway) {}

  HttpResponse Handle(const HttpRequest& request);
  // Serves /metrics from `page` (must outlive the handler); set before serving starts.
  void set_metrics_page(MetricsPage* page) { metrics_page_ = page; }

 private:
  HttpResponse Health(const HttpRequest& request);
  HttpResponse Checks(const HttpRequest& request, bool readyz, const std::string& only);

  HealthProbe& probe_;
  const HttpVersions versions_;
  JsonGateway* const gateway_;
  MetricsPage* metrics_page_ = nullptr;
};

}  // namespace rusd::frontend
