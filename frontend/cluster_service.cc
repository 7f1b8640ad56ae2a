#include "frontend/cluster_service.h"

#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "frontend/ring_client.h"

namespace rusd::frontend {
namespace {

// What a membership change answers until raftd has configuration changes (the call is
// refused before anything is proposed, so its outcome is certain: nothing changed).
grpc::Status MembershipChangesUnsupported(const char* method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      std::string("rusd: ") + method +
                          " is not supported yet: the membership is fixed by "
                          "--initial-cluster until Raft configuration changes land");
}

class ClusterService final : public etcdserverpb::Cluster::CallbackService {
 public:
  ClusterService(RingClient& ring, uint64_t member_id, uint64_t cluster_id)
      : ring_(ring), member_id_(member_id), cluster_id_(cluster_id) {}

  grpc::ServerUnaryReactor* MemberList(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::MemberListRequest*,
                                       etcdserverpb::MemberListResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
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
                                      const etcdserverpb::MemberAddRequest*,
                                      etcdserverpb::MemberAddResponse*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(MembershipChangesUnsupported("MemberAdd"));
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberRemove(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberRemoveRequest*,
                                         etcdserverpb::MemberRemoveResponse*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(MembershipChangesUnsupported("MemberRemove"));
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberUpdate(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberUpdateRequest*,
                                         etcdserverpb::MemberUpdateResponse*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(MembershipChangesUnsupported("MemberUpdate"));
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberPromote(grpc::CallbackServerContext* ctx,
                                          const etcdserverpb::MemberPromoteRequest*,
                                          etcdserverpb::MemberPromoteResponse*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(MembershipChangesUnsupported("MemberPromote"));
    return reactor;
  }

 private:
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
