// Joining a running cluster (--initial-cluster-state=existing), as etcd does: the cluster
// id and this member's id are not derived from the flags (`etcdctl member add` chose the
// id) but asked from the members listed in --initial-cluster over the peer port (the
// transport's membership query, raftd/transport/peer_transport.h). The answer is kept in
// <data-dir>/member/joined (one "<hex id>\t<name>\t<url>,..." line per member) so a restart
// uses the same membership without asking again.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/component_flags.h"
#include "common/status.h"

namespace rusd::supervisor {

struct JoinedCluster {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;                // this member (matched by its peer URLs)
  std::vector<ClusterMember> others;     // every other member
};

// How long answers without this node are retried before NotFound: a member that has not
// applied `member add` yet answers without it.
inline constexpr std::chrono::milliseconds kMemberAddPropagationGrace{3000};

// Asks each of `ask_urls` in turn until one answers with a member that has one of
// `own_peer_urls`, or `timeout` passes (Unavailable). NotFound when members answered but
// none had this node for min(timeout, kMemberAddPropagationGrace): not added with member add.
Result<JoinedCluster> QueryExistingCluster(const std::vector<std::string>& ask_urls,
                                           const std::vector<std::string>& own_peer_urls,
                                           std::chrono::milliseconds timeout);

std::string JoinedClusterPath(const std::string& data_dir);
Status SaveJoinedCluster(const std::string& data_dir, const JoinedCluster& c);
// NotFound when the data dir was bootstrapped rather than joined.
Result<JoinedCluster> LoadJoinedCluster(const std::string& data_dir);

}  // namespace rusd::supervisor
