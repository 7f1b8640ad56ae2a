// The node's identity (name, member id, cluster id), fixed at the first start and kept in
// the data directory: etcd ignores --initial-cluster* on a restart, and so does rusd.
//
// File: <data-dir>/member/identity, written once (write to a temporary file, fsync, rename,
// fsync the directory) as text lines, so an operator can read it:
//   # rusd node identity ...
//   name=default
//   member_id=8e9e05c52164694d
//   cluster_id=cdf818194e3a8c32
//   initial_cluster=infra1=http://10.0.0.1:2380,infra2=http://10.0.0.2:2380
//   initial_cluster_token=etcd-cluster
//
// Called by the supervisor's main thread while it holds the data-dir lock.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace rusd::supervisor {

struct NodeIdentity {
  std::string name;
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  bool created = false;  // true when this call wrote the file (first start)
  // The --initial-cluster and --initial-cluster-token the node was bootstrapped with: the
  // membership until Raft configuration changes exist (empty in files written before).
  std::string initial_cluster;
  std::string initial_cluster_token;
};

// Returns the identity stored in `data_dir`, or stores and returns `derived` if there is
// none yet. A present but unreadable or malformed file is DataLoss (never overwritten).
Result<NodeIdentity> LoadOrCreateNodeIdentity(const std::string& data_dir,
                                              const NodeIdentity& derived);

std::string NodeIdentityPath(const std::string& data_dir);

}  // namespace rusd::supervisor
