// The command line the supervisor passes to rusd-frontend, rusd-raftd and rusd-stored.
//
// The supervisor owns etcd's user-facing flags/env/TOML (supervisor/config.h); it resolves
// them once and hands each component this small, fully-resolved set as `--key=value`
// arguments. Components never read ETCD_* variables or config files themselves: one
// config path. Unknown keys are an error (a version skew between binaries must be loud).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace rusd {

// One voting member of the cluster, as the supervisor resolved it from --initial-cluster.
struct ClusterMember {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> peer_urls;
  bool operator==(const ClusterMember&) const = default;
};

struct ComponentFlags {
  std::string segment;   // shared-memory segment name (ipc::Segment::NameForDataDir)
  std::string data_dir;  // the node's --data-dir
  std::string name = "default";
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  std::vector<std::string> listen_client_urls;  // frontend: http://host:port, comma-separated
  std::vector<std::string> advertise_client_urls;  // what MemberList shows for this member
  std::vector<std::string> listen_peer_urls;       // raftd: the peer transport's listeners
  // Every member of the cluster, this one included (empty or one: a single-node cluster).
  // Encoded as --members=<hex id>=<name>=<url>|<url>,... with the name percent-encoded.
  std::vector<ClusterMember> members;
  uint64_t max_request_bytes = 1572864;
  uint32_t max_txn_ops = 128;
  uint64_t quota_backend_bytes = 2147483648ull;
  uint64_t snapshot_count = 100000;
  // stored (rusd only, not a user flag): a snapshot also after this many bytes of applied
  // entry data, so that raftd's in-memory log (compacted at snapshots) stays bounded by
  // bytes, not only by entries: 100,000 large txns would otherwise stay in memory.
  uint64_t snapshot_bytes = 32u << 20;
  // raftd: etcd's --strict-reconfig-check (refuse member changes that could lose quorum).
  bool strict_reconfig_check = true;
  uint32_t heartbeat_interval_ms = 100;
  uint32_t election_timeout_ms = 1000;
  std::string log_level = "info";   // debug|info|warn|error
  std::string log_format = "text";  // text|json
  // frontend: etcd's watch progress notify interval, a Go duration (parsed by the frontend).
  std::string watch_progress_notify_interval = "10m0s";
  // frontend: serve gRPC client connections with rusd's own HTTP/2 server
  // (frontend/native_grpc/: KV natively, every other method forwarded in process to gRPC
  // C++) instead of gRPC C++ alone. On by default; false (passed as
  // --experimental-native-grpc=false, by the supervisor to the frontend only) is the way back.
  bool experimental_native_grpc = true;

  // Parses `--key=value` arguments (argv[0] skipped). Keys are the field names with '_'
  // written as '-': --segment, --data-dir, --member-id (hex), --cluster-id (hex), ...
  static Result<ComponentFlags> Parse(int argc, char** argv);
  // The inverse of Parse: the arguments the supervisor passes (without argv[0]).
  std::vector<std::string> ToArgs() const;
};

}  // namespace rusd
