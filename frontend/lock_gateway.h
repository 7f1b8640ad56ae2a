// The v3lock and v3election part of etcd's JSON gateway (grpc-gateway, as etcd's embed
// registers v3lockgw and v3electiongw): POST /v3/lock/lock, /v3/lock/unlock,
// /v3/election/campaign, /v3/election/proclaim, /v3/election/leader, /v3/election/resign,
// with KvGateway's JSON conventions. /v3/election/observe (a stream) is not served. Paths it
// does not own go to `next`. Lock and Campaign block the HTTP connection's thread until
// they succeed (or the ring client's deadline passes for a single step).
//
// Thread safety: any thread.
#pragma once

#include <optional>

#include "frontend/http_handler.h"
#include "frontend/lock_kv.h"

namespace rusd::frontend {

class KvDispatcher;

class LockGateway final : public JsonGateway {
 public:
  // `hub` (null: poll) lets Lock and Campaign wait on watches instead of polling.
  LockGateway(KvDispatcher& kv, JsonGateway* next, WatchHub* hub = nullptr)
      : kv_(kv, hub), next_(next) {}
  std::optional<HttpResponse> Serve(const HttpRequest& request) override;

 private:
  BlockingKv kv_;
  JsonGateway* next_;
};

}  // namespace rusd::frontend
