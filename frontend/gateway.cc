#include "frontend/gateway.h"

#include <google/protobuf/util/json_util.h>

#include <future>
#include <memory>
#include <string>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "frontend/json_text.h"
#include "frontend/kv_dispatcher.h"

namespace rusd::frontend {
namespace {

std::string JsonQuote(const std::string& s) {
  std::string out(1, '"');
  out.append(JsonEscape(s)).push_back('"');
  return out;
}

HttpResponse JsonError(const Status& st) {
  HttpResponse r;
  r.status = HttpStatusFromGrpcCode(static_cast<int>(st.code()));
  r.content_type = "application/json";
  r.body = "{\"error\":" + JsonQuote(st.message()) + ",\"code\":" +
           std::to_string(static_cast<int>(st.code())) + ",\"message\":" +
           JsonQuote(st.message()) + "}";
  return r;
}

template <typename Request, typename Response>
HttpResponse Call(const KvDispatcher& dispatcher, KvMethod method, const std::string& body) {
  Request request;
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = true;
  if (!body.empty() && !google::protobuf::util::JsonStringToMessage(body, &request, parse).ok()) {
    return JsonError(Status::InvalidArgument("invalid JSON request body"));
  }
  auto promise = std::make_shared<std::promise<std::pair<Status, std::string>>>();
  auto future = promise->get_future();
  dispatcher.Submit(method, request.SerializeAsString(),
                    [promise](const Status& st, std::string&& payload) {
                      promise->set_value({st, std::move(payload)});
                    });
  auto [st, payload] = future.get();
  if (!st.ok()) return JsonError(st);
  Response response;
  if (!response.ParseFromString(payload)) {
    return JsonError(Status::Internal("malformed response from the store"));
  }
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  HttpResponse r;
  r.content_type = "application/json";
  if (!google::protobuf::util::MessageToJsonString(response, &r.body, print).ok()) {
    return JsonError(Status::Internal("cannot encode the response as JSON"));
  }
  return r;
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
    HttpResponse r = JsonError(Status(StatusCode::kUnimplemented, "Method Not Allowed"));
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
