// etcd's Cluster gRPC service (MemberList, MemberAdd, MemberRemove, MemberUpdate,
// MemberPromote) on top of what raftd reports on the raft-replies ring.
//
// MemberList answers from the member list raftd last sent (kMemberList: ids, names and peer
// URLs from the bootstrap membership, client URLs as each member announced them in its peer
// handshake), with this member's header (cluster id, member id, raft term). The membership
// changes need Raft configuration changes, which raftd does not have yet: they answer
// Unimplemented with a text that says so (never a false success).
//
// Thread safety: gRPC calls the methods on its threads; the object is immutable after
// construction and must outlive the grpc::Server it is registered with.
#pragma once

#include <cstdint>
#include <memory>

namespace grpc {
class Service;
}

namespace rusd::frontend {

class RingClient;

std::unique_ptr<grpc::Service> MakeClusterService(RingClient& ring, uint64_t member_id,
                                                  uint64_t cluster_id);

}  // namespace rusd::frontend
