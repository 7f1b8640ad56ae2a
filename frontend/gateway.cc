#include "frontend/gateway.h"

#include <memory>
#include <string>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "frontend/gateway_json.h"
#include "frontend/kv_dispatcher.h"

namespace rusd::frontend {
namespace {

template <typename Request, typename Response>
HttpResponse Call(const KvDispatcher& dispatcher, KvMethod method, const std::string& body) {
  Request request;
  return JsonCall<Request, Response>(body, request, [&](RequestCallback done) {
    dispatcher.Submit(method, request.SerializeAsString(), std::move(done));
  });
}

}  // namespace

int HttpStatusFromGrpcCode(int code) {
  switch (code) {
    case 0: return 200;
    case 1: return 408;   // Canceled
    case 2: return 500;   // Unknown
    case 3: return 400;   // InvalidArgument
    case 4: return 504;   // DeadlineExceeded
    case 5: return 404;   // NotFound
    case 6: return 409;   // AlreadyExists
    case 7: return 403;   // PermissionDenied
    case 8: return 429;   // ResourceExhausted
    case 9: return 412;   // FailedPrecondition (grpc-gateway v1, as etcd 3.4/3.5 serve)
    case 10: return 409;  // Aborted
    case 11: return 400;  // OutOfRange
    case 12: return 501;  // Unimplemented
    case 13: return 500;  // Internal
    case 14: return 503;  // Unavailable
    case 15: return 500;  // DataLoss
    case 16: return 401;  // Unauthenticated
    default: return 500;
  }
}

std::optional<HttpResponse> KvGateway::Serve(const HttpRequest& request) {
  const std::string& p = request.path;
  if (p.rfind("/v3/kv/", 0) != 0) return std::nullopt;
  KvMethod method;
  if (p == "/v3/kv/range") {
    method = KvMethod::kRange;
  } else if (p == "/v3/kv/put") {
    method = KvMethod::kPut;
  } else if (p == "/v3/kv/deleterange") {
    method = KvMethod::kDeleteRange;
  } else if (p == "/v3/kv/txn") {
    method = KvMethod::kTxn;
  } else if (p == "/v3/kv/compaction") {
    method = KvMethod::kCompact;
  } else {
    return std::nullopt;
  }
  if (request.method != "POST") {
    HttpResponse r = JsonErrorResponse(Status(StatusCode::kUnimplemented, "Method Not Allowed"));
    r.status = 405;
    return r;
  }
  switch (method) {
    case KvMethod::kRange:
      return Call<etcdserverpb::RangeRequest, etcdserverpb::RangeResponse>(dispatcher_, method,
                                                                            request.body);
    case KvMethod::kPut:
      return Call<etcdserverpb::PutRequest, etcdserverpb::PutResponse>(dispatcher_, method,
                                                                        request.body);
    case KvMethod::kDeleteRange:
      return Call<etcdserverpb::DeleteRangeRequest, etcdserverpb::DeleteRangeResponse>(
          dispatcher_, method, request.body);
    case KvMethod::kTxn:
      return Call<etcdserverpb::TxnRequest, etcdserverpb::TxnResponse>(dispatcher_, method,
                                                                        request.body);
    case KvMethod::kCompact:
      return Call<etcdserverpb::CompactionRequest, etcdserverpb::CompactionResponse>(
          dispatcher_, method, request.body);
  }
  return std::nullopt;
}

}  // namespace rusd::frontend
