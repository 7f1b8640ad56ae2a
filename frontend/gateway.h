// The JSON gateway etcd serves on its client URLs (grpc-gateway, etcd 3.5 embed/serve.go):
// POST /v3/kv/range, /v3/kv/put, /v3/kv/deleterange, /v3/kv/txn, /v3/kv/compaction with the
// request as proto3 JSON (bytes base64, int64 as strings), answered with the response in the
// same JSON with the proto field names (OrigName: "mod_revision"), or on error with
// {"error": msg, "code": grpc code, "message": msg} and grpc-gateway's HTTP status for the code.
// Requests go through the same KvDispatcher as gRPC.
//
// Thread safety: any thread; Serve blocks its caller until the request completes (bounded by
// the ring client's request timeout).
#pragma once

#include <optional>

#include "frontend/http_handler.h"

namespace rusd::frontend {

class KvDispatcher;

class KvGateway final : public JsonGateway {
 public:
  explicit KvGateway(const KvDispatcher& dispatcher) : dispatcher_(dispatcher) {}
  std::optional<HttpResponse> Serve(const HttpRequest& request) override;

 private:
  const KvDispatcher& dispatcher_;
};

// grpc-gateway's runtime.HTTPStatusFromCode.
int HttpStatusFromGrpcCode(int code);

}  // namespace rusd::frontend
