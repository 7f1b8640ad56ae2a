// Member changes for the Cluster service: a MemberChangeRequest goes to raftd on the
// proposals ring (kMemberChange); raftd checks it with etcd's rules, proposes the conf
// change and answers once it is applied with the member and the new member list, or
// with etcd's error (code and message unchanged), or the request times out as a proposal.
#pragma once

#include <functional>

#include "common/status.h"
#include "frontend/ring_client.h"
#include "rusd/membership.pb.h"

namespace rusd::frontend {

using MemberChangeDone =
    std::function<void(const Status& status, internal::MemberChangeResult&& result)>;

void RequestMemberChange(RingClient& ring, const internal::MemberChangeRequest& request,
                         MemberChangeDone done);

// Maintenance.MoveLeader: answered OK once `target_id` leads.
void RequestMoveLeader(RingClient& ring, uint64_t target_id,
                       std::function<void(const Status& status)> done);

}  // namespace rusd::frontend
