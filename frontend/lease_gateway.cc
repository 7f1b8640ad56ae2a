#include "frontend/lease_gateway.h"

#include <memory>
#include <string>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "frontend/etcd_errors.h"
#include "frontend/gateway.h"
#include "frontend/gateway_json.h"
#include "frontend/lease_forwarder.h"
#include "frontend/ring_client.h"
#include "ipc/message_type.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"

namespace rusd::frontend {
namespace {

// Splits concatenated JSON objects ("{...}{...}", whitespace between allowed).
std::vector<std::string> SplitJsonObjects(const std::string& body) {
  std::vector<std::string> out;
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  size_t start = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      if (depth++ == 0) start = i;
    } else if (c == '}' && depth > 0 && --depth == 0) {
      out.push_back(body.substr(start, i - start + 1));
    }
  }
  return out;
}

}  // namespace

std::optional<HttpResponse> LeaseGateway::Serve(const HttpRequest& request) {
  std::string p = request.path;
  if (p.rfind("/v3/kv/lease/", 0) == 0) p.erase(3, 3);  // "/v3/kv/lease/x" -> "/v3/lease/x"
  if (p != "/v3/lease/grant" && p != "/v3/lease/revoke" && p != "/v3/lease/timetolive" &&
      p != "/v3/lease/leases" && p != "/v3/lease/keepalive") {
    return next_ != nullptr ? next_->Serve(request) : std::nullopt;
  }
  if (request.method != "POST") {
    HttpResponse r = JsonErrorResponse(Status(StatusCode::kUnimplemented, "Method Not Allowed"));
    r.status = 405;
    return r;
  }
  // etcd's gateway calls its own gRPC server, whose interceptor refuses these on a learner.
  if (ring_.is_learner()) return JsonErrorResponse(etcd_errors::NotSupportedForLearner());
  if (p == "/v3/lease/grant") {
    etcdserverpb::LeaseGrantRequest req;
    return JsonCall<etcdserverpb::LeaseGrantRequest, etcdserverpb::LeaseGrantResponse>(
        request.body, req, [&](RequestCallback cb) {
          internal::Command cmd;
          const uint64_t id = ring_.NextRequestId();
          cmd.set_request_id(id);
          cmd.set_origin_member_id(ring_.member_id());
          *cmd.mutable_lease_grant() = req;
          while (cmd.lease_grant().id() == 0) {
            cmd.mutable_lease_grant()->set_id(
                static_cast<int64_t>(ring_.NextRequestId() & ((1ull << 63) - 1)));
          }
          ring_.Propose(id, cmd.SerializeAsString(), std::move(cb));
        });
  }
  if (p == "/v3/lease/revoke") {
    etcdserverpb::LeaseRevokeRequest req;
    return JsonCall<etcdserverpb::LeaseRevokeRequest, etcdserverpb::LeaseRevokeResponse>(
        request.body, req, [&](RequestCallback cb) {
          internal::Command cmd;
          const uint64_t id = ring_.NextRequestId();
          cmd.set_request_id(id);
          cmd.set_origin_member_id(ring_.member_id());
          *cmd.mutable_lease_revoke() = req;
          ring_.Propose(id, cmd.SerializeAsString(), std::move(cb));
        });
  }
  if (p == "/v3/lease/keepalive") {
    HttpResponse all;
    all.content_type = "application/json";
    for (const std::string& one : SplitJsonObjects(request.body)) {
      etcdserverpb::LeaseKeepAliveRequest req;
      HttpResponse r = JsonCall<etcdserverpb::LeaseKeepAliveRequest,
                            etcdserverpb::LeaseKeepAliveResponse>(
          one, req, [&](RequestCallback cb) {
            if (leader_ == nullptr) {
              ring_.ReadAs(static_cast<uint16_t>(ipc::MessageType::kLeaseKeepAlive),
                           req.SerializeAsString(), /*linearizable=*/true, std::move(cb));
              return;
            }
            // A batch of one, to wherever the leader is; its answer as the gRPC one.
            internal::KeepAliveBatch batch;
            batch.add_ids(req.id());
            const int64_t id = req.id();
            leader_->KeepAliveBatch(
                batch.SerializeAsString(),
                [cb = std::move(cb), id](const Status& st, std::string&& payload) {
                  internal::KeepAliveBatchReply reply;
                  if (!st.ok()) return cb(st, std::move(payload));
                  if (!reply.ParseFromString(payload) || reply.ttls_size() != 1) {
                    return cb(Status::Internal("rusd: malformed keep-alive reply"), {});
                  }
                  etcdserverpb::LeaseKeepAliveResponse resp;
                  *resp.mutable_header() = reply.header();
                  resp.set_id(id);
                  resp.set_ttl(reply.ttls(0));
                  cb(Status::Ok(), resp.SerializeAsString());
                });
          });
      if (r.status != 200) return r;  // grpc-gateway ends the stream with the error
      all.body.append("{\"result\":").append(r.body).append("}\n");
    }
    return all;
  }
  if (p == "/v3/lease/timetolive") {
    etcdserverpb::LeaseTimeToLiveRequest req;
    return JsonCall<etcdserverpb::LeaseTimeToLiveRequest, etcdserverpb::LeaseTimeToLiveResponse>(
        request.body, req, [&](RequestCallback cb) {
          if (leader_ != nullptr) {
            return leader_->TimeToLive(req.SerializeAsString(), std::move(cb));
          }
          ring_.ReadAs(static_cast<uint16_t>(ipc::MessageType::kLeaseTimeToLive),
                       req.SerializeAsString(), /*linearizable=*/true, std::move(cb));
        });
  }
  etcdserverpb::LeaseLeasesRequest req;
  return JsonCall<etcdserverpb::LeaseLeasesRequest, etcdserverpb::LeaseLeasesResponse>(
      request.body, req, [&](RequestCallback cb) {
        ring_.ReadAs(static_cast<uint16_t>(ipc::MessageType::kLeaseLeases),
                     req.SerializeAsString(), /*linearizable=*/false, std::move(cb));
      });
}

}  // namespace rusd::frontend
