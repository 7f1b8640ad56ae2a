// Member and cluster ids, derived exactly as etcd derives them at bootstrap, so that a rusd
// node reports the same ids an etcd node with the same flags would (clients and tools
// print them; kubeadm compares them).
//
//   member id  = first 8 bytes (big-endian) of SHA-1( sorted peer URLs concatenated
//                + initial-cluster-token [+ decimal unix time, only for members added
//                to a running cluster] )            (etcd membership/member.go)
//   cluster id = first 8 bytes of SHA-1( the sorted member ids, 8 bytes big-endian
//                each )                              (etcd membership/cluster.go genID)
//
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/component_flags.h"
#include "common/status.h"

namespace rusd::supervisor {

struct InitialMember {
  std::string name;
  std::vector<std::string> peer_urls;  // in the order given
};

// Parses --initial-cluster ("name=url,name=url,..."; a name may repeat to give a member
// several URLs). Members come out in order of first appearance.
Result<std::vector<InitialMember>> ParseInitialCluster(const std::string& text);

uint64_t ComputeMemberId(const std::vector<std::string>& peer_urls, const std::string& token,
                         std::optional<int64_t> unix_time = std::nullopt);
uint64_t ComputeClusterId(std::vector<uint64_t> member_ids);

struct ClusterIds {
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
};

// The ids for member `name` of a new cluster bootstrapped from `members`. Errors (as etcd's):
// name absent, two members with the same id, an id of 0.
Result<ClusterIds> DeriveClusterIds(const std::vector<InitialMember>& members,
                                    const std::string& name, const std::string& token);

// Every member of a new cluster with its id (the order of --initial-cluster).
Result<std::vector<ClusterMember>> ResolveClusterMembers(const std::string& initial_cluster,
                                                         const std::string& token);

// Lower-case hex without leading zeros, as etcd prints ids (types.ID.String).
std::string IdToHex(uint64_t id);

}  // namespace rusd::supervisor
