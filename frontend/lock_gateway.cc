#include "frontend/lock_gateway.h"

#include <string>

#include "etcd/v3electionpb/v3election.pb.h"
#include "etcd/v3lockpb/v3lock.pb.h"
#include "frontend/gateway.h"
#include "frontend/gateway_json.h"
#include "frontend/lock_ops.h"

namespace rusd::frontend {
namespace {

// Parses the JSON body, runs `op(request, &response)` and renders the response as JSON.
template <typename Request, typename Response, typename Op>
HttpResponse Call(const std::string& body, Op&& op) {
  Request request;
  if (Status st = ParseJsonRequest(body, &request); !st.ok()) return JsonErrorResponse(st);
  Response response;
  if (Status st = op(request, &response); !st.ok()) return JsonErrorResponse(st);
  return JsonMessageResponse(response);
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
    HttpResponse r = JsonErrorResponse(Status(StatusCode::kUnimplemented, "Method Not Allowed"));
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
