#include "frontend/cluster_service.h"

#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <ctime>
#include <memory>

#include "common/url.h"
#include "frontend/grpc_status.h"
#include "frontend/learner_gate.h"
#include "frontend/member_change.h"
#include "frontend/ring_client.h"

namespace rusd::frontend {
namespace {

class ClusterService final : public etcdserverpb::Cluster::CallbackService {
 public:
  ClusterService(RingClient& ring, uint64_t member_id, uint64_t cluster_id)
      : ring_(ring), member_id_(member_id), cluster_id_(cluster_id) {}

  grpc::ServerUnaryReactor* MemberList(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::MemberListRequest*,
                                       etcdserverpb::MemberListResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    const std::string members = ring_.member_list();
    if (members.empty() || !resp->ParseFromString(members)) {
      // raftd has not reported yet (it is starting): as etcd before it has a raft node.
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "etcdserver: not capable"));
      return reactor;
    }
    auto* h = resp->mutable_header();
    h->set_cluster_id(cluster_id_);
    h->set_member_id(member_id_);
    h->set_raft_term(ring_.leader().term);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberAdd(grpc::CallbackServerContext* ctx,
                                      const etcdserverpb::MemberAddRequest* req,
                                      etcdserverpb::MemberAddResponse* resp) override {
    internal::MemberChangeRequest change;
    change.set_kind(internal::MemberChangeRequest::ADD);
    for (const auto& u : req->peerurls()) change.add_peer_urls(u);
    change.set_is_learner(req->islearner());
    change.set_unix_time(static_cast<int64_t>(std::time(nullptr)));
    return Change(ctx, change, resp, /*with_member=*/true);
  }

  grpc::ServerUnaryReactor* MemberRemove(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberRemoveRequest* req,
                                         etcdserverpb::MemberRemoveResponse* resp) override {
    internal::MemberChangeRequest change;
    change.set_kind(internal::MemberChangeRequest::REMOVE);
    change.set_member_id(req->id());
    return Change(ctx, change, resp, false);
  }

  grpc::ServerUnaryReactor* MemberUpdate(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberUpdateRequest* req,
                                         etcdserverpb::MemberUpdateResponse* resp) override {
    internal::MemberChangeRequest change;
    change.set_kind(internal::MemberChangeRequest::UPDATE);
    change.set_member_id(req->id());
    for (const auto& u : req->peerurls()) change.add_peer_urls(u);
    return Change(ctx, change, resp, false);
  }

  grpc::ServerUnaryReactor* MemberPromote(grpc::CallbackServerContext* ctx,
                                          const etcdserverpb::MemberPromoteRequest* req,
                                          etcdserverpb::MemberPromoteResponse* resp) override {
    // Only the leader knows whether the learner is in sync: a follower passes the call on to
    // the leader's client URL, as etcd forwards promotions to the leader.
    if (ring_.is_learner()) return Change(ctx, {}, resp, false);  // refused there
    const LeaderState leader = ring_.leader();
    if (leader.leader_id != 0 && leader.leader_id != member_id_) {
      std::string target = LeaderClientTarget(leader.leader_id);
      if (!target.empty()) return ForwardPromote(ctx, *req, resp, target);
    }
    internal::MemberChangeRequest change;
    change.set_kind(internal::MemberChangeRequest::PROMOTE);
    change.set_member_id(req->id());
    return Change(ctx, change, resp, false);
  }

 private:
  // host:port of the leader's first client URL, from raftd's member list ("" if unknown).
  std::string LeaderClientTarget(uint64_t leader_id) const {
    etcdserverpb::MemberListResponse list;
    if (!list.ParseFromString(ring_.member_list())) return "";
    for (const auto& m : list.members()) {
      if (m.id() != leader_id || m.clienturls().empty()) continue;
      // TLS to the leader's client port: not yet.
      Result<Url> url = ParseUrl(m.clienturls(0));
      return url.ok() && url->scheme == "http" ? url->HostPort() : "";
    }
    return "";
  }

  grpc::ServerUnaryReactor* ForwardPromote(grpc::CallbackServerContext* ctx,
                                           const etcdserverpb::MemberPromoteRequest& req,
                                           etcdserverpb::MemberPromoteResponse* resp,
                                           const std::string& target) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    struct Call {
      std::shared_ptr<grpc::Channel> channel;
      std::unique_ptr<etcdserverpb::Cluster::Stub> stub;
      grpc::ClientContext ctx;
      etcdserverpb::MemberPromoteRequest req;
    };
    auto call = std::make_shared<Call>();
    call->channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    call->stub = etcdserverpb::Cluster::NewStub(call->channel);
    call->req = req;
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(7));
    call->stub->async()->MemberPromote(&call->ctx, &call->req, resp,
                                       [call, reactor](grpc::Status st) { reactor->Finish(st); });
    return reactor;
  }

  // Sends the change to raftd; fills the response (header, members and, for MemberAdd,
  // member) from what raftd applied.
  template <typename Response>
  grpc::ServerUnaryReactor* Change(grpc::CallbackServerContext* ctx,
                                   const internal::MemberChangeRequest& change, Response* resp,
                                   bool with_member) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    RequestMemberChange(
        ring_, change,
        [this, reactor, resp, with_member](const Status& st, internal::MemberChangeResult&& r) {
          if (!st.ok()) {
            reactor->Finish(ToGrpcStatus(st));
            return;
          }
          auto* h = resp->mutable_header();
          h->set_cluster_id(cluster_id_);
          h->set_member_id(member_id_);
          h->set_raft_term(ring_.leader().term);
          *resp->mutable_members() = r.members();
          if constexpr (requires { resp->mutable_member(); }) {
            if (with_member) *resp->mutable_member() = r.member();
          }
          reactor->Finish(grpc::Status::OK);
        });
    return reactor;
  }

  RingClient& ring_;
  const uint64_t member_id_;
  const uint64_t cluster_id_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeClusterService(RingClient& ring, uint64_t member_id,
                                                  uint64_t cluster_id) {
  return std::make_unique<ClusterService>(ring, member_id, cluster_id);
}

}  // namespace rusd::frontend
