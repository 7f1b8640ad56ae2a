// The lease part of etcd's JSON gateway (grpc-gateway, etcd 3.5): POST /v3/lease/grant,
// /v3/lease/revoke, /v3/lease/timetolive, /v3/lease/leases, and their /v3/kv/lease/...
// aliases, with the same JSON conventions as KvGateway (proto field names, int64 as
// strings, {"error","code","message"} on failure). Paths it does not own go to `next`.
// /v3/lease/keepalive takes one or more concatenated JSON requests and answers each with a
// line {"result": LeaseKeepAliveResponse}, as grpc-gateway streams them (here the whole
// answer is sent at once, after the last keep-alive). With a LeaseForwarder, keepalive and
// timetolive reach the leader from a follower as the gRPC ones do.
//
// Thread safety: any thread; Serve blocks until the request completes.
#pragma once

#include <optional>

#include "frontend/http_handler.h"

namespace rusd::frontend {

class RingClient;
class LeaseForwarder;

class LeaseGateway final : public JsonGateway {
 public:
  LeaseGateway(RingClient& ring, JsonGateway* next, LeaseForwarder* leader = nullptr)
      : ring_(ring), next_(next), leader_(leader) {}
  std::optional<HttpResponse> Serve(const HttpRequest& request) override;

 private:
  RingClient& ring_;
  JsonGateway* next_;
  LeaseForwarder* leader_;  // may be null: this node's stored only
};

}  // namespace rusd::frontend
