#include "frontend/lock_gateway.h"

#include <google/protobuf/util/json_util.h>

#include <string>

#include "etcd/v3electionpb/v3election.pb.h"
#include "etcd/v3lockpb/v3lock.pb.h"
#include "frontend/gateway.h"
#include "frontend/json_text.h"
#include "frontend/lock_ops.h"

namespace rusd::frontend {
namespace {

HttpResponse JsonError(const Status& st) {
  HttpResponse r;
  r.status = HttpStatusFromGrpcCode(static_cast<int>(st.code()));
  r.content_type = "application/json";
  std::string msg = "\"";
  msg.append(JsonEscape(st.message())).push_back('"');
  r.body = "{\"error\":" + msg + ",\"code\":" + std::to_string(static_cast<int>(st.code())) +
           ",\"message\":" + msg + "}";
  return r;
}

// Parses the JSON body, runs `op(request, &response)` and renders the response as JSON.
template <typename Request, typename Response, typename Op>
HttpResponse Call(const std::string& body, Op&& op) {
  Request request;
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = true;
  if (!body.empty() && !google::protobuf::util::JsonStringToMessage(body, &request, parse).ok()) {
    return JsonError(Status::InvalidArgument("invalid JSON request body"));
  }
  Response response;
  Status st = op(request, &response);
  if (!st.ok()) return JsonError(st);
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  HttpResponse r;
  r.content_type = "application/json";
  if (!google::protobuf::util::MessageToJsonString(response, &r.body, print).ok()) {
    return JsonError(Status::Internal("cannot encode the response as JSON"));
  }
  return r;
}

bool NeverCancelled() { return false; }

}  // namespace

std::optional<HttpResponse> LockGateway::Serve(const HttpRequest& request) {
  const std::string& p = request.path;
  const bool ours = p == "/v3/lock/lock" || p == "/v3/lock/unlock" ||
                    p == "/v3/election/campaign" || p == "/v3/election/proclaim" ||
                    p == "/v3/election/leader" || p == "/v3/election/resign";
  if (!ours) return next_ != nullptr ? next_->Serve(request) : std::nullopt;
  if (request.method != "POST") {
    HttpResponse r = JsonError(Status(StatusCode::kUnimplemented, "Method Not Allowed"));
    r.status = 405;
    return r;
  }
  if (p == "/v3/lock/lock") {
    return Call<v3lockpb::LockRequest, v3lockpb::LockResponse>(
        request.body, [&](const auto& req, auto* resp) {
          return LockOp(kv_, req, resp, NeverCancelled);
        });
  }
  if (p == "/v3/lock/unlock") {
    return Call<v3lockpb::UnlockRequest, v3lockpb::UnlockResponse>(
        request.body, [&](const auto& req, auto* resp) { return UnlockOp(kv_, req, resp); });
  }
  if (p == "/v3/election/campaign") {
    return Call<v3electionpb::CampaignRequest, v3electionpb::CampaignResponse>(
        request.body, [&](const auto& req, auto* resp) {
          return CampaignOp(kv_, req, resp, NeverCancelled);
        });
  }
  if (p == "/v3/election/proclaim") {
    return Call<v3electionpb::ProclaimRequest, v3electionpb::ProclaimResponse>(
        request.body, [&](const auto& req, auto* resp) { return ProclaimOp(kv_, req, resp); });
  }
  if (p == "/v3/election/leader") {
    return Call<v3electionpb::LeaderRequest, v3electionpb::LeaderResponse>(
        request.body, [&](const auto& req, auto* resp) { return LeaderOp(kv_, req, resp); });
  }
  return Call<v3electionpb::ResignRequest, v3electionpb::ResignResponse>(
      request.body, [&](const auto& req, auto* resp) { return ResignOp(kv_, req, resp); });
}

}  // namespace rusd::frontend
