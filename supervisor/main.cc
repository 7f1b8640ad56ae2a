// rusd: the binary users run in place of etcd. Resolves the configuration, takes the
// data-directory lock, fixes the node identity, creates the shared-memory segment and runs
// the three components until told to stop. See supervisor/README.md.
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <optional>
#include <iostream>
#include <map>
#include <spdlog/spdlog.h>

#include "common/logging.h"
#include "ipc/segment.h"
#include "supervisor/cluster_ids.h"
#include "supervisor/join_cluster.h"
#include "supervisor/config.h"
#include "supervisor/data_dir_lock.h"
#include "supervisor/metrics_listener.h"
#include "supervisor/node_identity.h"
#include "supervisor/node_supervisor.h"

extern char** environ;

namespace rusd::supervisor {
namespace {

std::map<std::string, std::string> ReadEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

std::string OwnDirectory() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().string();
}

// mkdir -p with etcd's 0700 and a check that we can write there.
Status PrepareDataDir(const std::string& dir) {
  std::error_code ec;
  bool created = std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create data dir " + dir + ": " + ec.message());
  if (created) ::chmod(dir.c_str(), 0700);  // etcd's permission for a new data dir
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status::IoError("data dir " + dir + " is not writable: " + std::strerror(errno));
  }
  return Status::Ok();
}

int Main(int argc, char** argv) {
  // Before anything else (and before any thread exists): the supervisor takes its signals
  // synchronously in NodeSupervisor::Run.
  BlockSupervisorSignals();

  std::vector<std::string> args(argv + 1, argv + argc);
  auto loaded = LoadConfig(args, ReadEnvironment());
  if (!loaded.ok()) {
    if (loaded.status().code() == StatusCode::kInvalidArgument) {
      // Go's flag package: the error, the usage, exit status 2.
      std::cerr << loaded.status().message() << "\n" << UsageText();
      return 2;
    }
    std::cerr << "rusd: error verifying flags, " << loaded.status().message()
              << ". See 'rusd --help'.\n";
    return 1;
  }
  if (loaded->action == LoadedConfig::Action::kPrintHelp) {
    std::cout << HelpText();
    return 0;
  }
  if (loaded->action == LoadedConfig::Action::kPrintVersion) {
    std::cout << VersionText();
    return 0;
  }
  Config& cfg = loaded->config;
  Status st = SetUpLogging("rusd", cfg.log_level, cfg.log_format);
  if (!st.ok()) {
    std::cerr << "rusd: " << st.message() << "\n";
    return 1;
  }
  for (const auto& w : loaded->warnings) spdlog::warn("{}", w);

  st = PrepareDataDir(cfg.data_dir);
  if (!st.ok()) {
    spdlog::error("{}", st.message());
    return 1;
  }
  cfg.data_dir = std::filesystem::canonical(cfg.data_dir).string();
  auto lock = DataDirLock::Acquire(cfg.data_dir);
  if (!lock.ok()) {
    spdlog::error("{}", lock.status().message());
    return 1;
  }

  auto members = ParseInitialCluster(cfg.initial_cluster);
  auto derived = members.ok() ? DeriveClusterIds(*members, cfg.name, cfg.initial_cluster_token)
                              : Result<ClusterIds>(members.status());
  if (!derived.ok()) {  // LoadConfig validated this; kept as a guard
    spdlog::error("{}", derived.status().message());
    return 1;
  }
  // --initial-cluster-state=existing on an empty data dir: ask the running cluster who we
  // are (etcd's GetClusterFromRemotePeers); a joined data dir keeps that answer.
  std::optional<JoinedCluster> joined;
  if (auto loaded = LoadJoinedCluster(cfg.data_dir); loaded.ok()) {
    joined = std::move(*loaded);
  } else if (cfg.initial_cluster_state == "existing" &&
             !std::filesystem::exists(NodeIdentityPath(cfg.data_dir))) {
    std::vector<std::string> ask;
    for (const auto& m : *members) {
      if (m.name == cfg.name) continue;
      ask.insert(ask.end(), m.peer_urls.begin(), m.peer_urls.end());
    }
    auto q = QueryExistingCluster(ask, cfg.initial_advertise_peer_urls, std::chrono::seconds(30));
    if (!q.ok()) {
      spdlog::error("--initial-cluster-state=existing: {}", q.status().message());
      return 1;
    }
    if (Status saved = SaveJoinedCluster(cfg.data_dir, *q); !saved.ok()) {
      spdlog::error("{}", saved.message());
      return 1;
    }
    spdlog::info("joining cluster {} as member {} ({} other members)", IdToHex(q->cluster_id),
                 IdToHex(q->member_id), q->others.size());
    joined = std::move(*q);
  }
  NodeIdentity fresh{cfg.name, derived->member_id, derived->cluster_id, false,
                     cfg.initial_cluster, cfg.initial_cluster_token};
  if (joined) {
    fresh.member_id = joined->member_id;
    fresh.cluster_id = joined->cluster_id;
  }
  auto identity = LoadOrCreateNodeIdentity(cfg.data_dir, fresh);
  if (!identity.ok()) {
    spdlog::error("cannot load the node identity: {}", identity.status().message());
    return 1;
  }
  if (!identity->created && !joined && (identity->member_id != derived->member_id ||
                             identity->cluster_id != derived->cluster_id)) {
    spdlog::warn(
        "data dir {} was bootstrapped as member {} of cluster {}; --initial-cluster* flags are "
        "ignored on restart (as etcd does)",
        cfg.data_dir, IdToHex(identity->member_id), IdToHex(identity->cluster_id));
  }

  const std::string bin_dir = OwnDirectory();
  for (const char* component : {"rusd-stored", "rusd-raftd", "rusd-frontend"}) {
    std::string path = bin_dir + "/" + component;
    if (::access(path.c_str(), X_OK) != 0) {
      spdlog::error("cannot run {}: {} (the components must be installed next to rusd)", path,
                    std::strerror(errno));
      return 1;
    }
  }

  ComponentFlags flags = cfg.ToComponentFlags();
  flags.member_id = identity->member_id;
  flags.cluster_id = identity->cluster_id;
  // The membership is the one the node was bootstrapped with (as etcd, which ignores
  // --initial-cluster on a restart); identity files written before it was recorded fall
  // back to the flags.
  if (joined) {
    flags.members = joined->others;  // raftd: not listed itself = joining (log replay adds it)
  } else {
    const bool stored = !identity->initial_cluster.empty();
    auto boot = ResolveClusterMembers(stored ? identity->initial_cluster : cfg.initial_cluster,
                                      stored ? identity->initial_cluster_token
                                             : cfg.initial_cluster_token);
    if (!boot.ok()) {
      spdlog::error("--initial-cluster: {}", boot.status().message());
      return 1;
    }
    std::vector<uint64_t> ids;
    for (const auto& m : *boot) ids.push_back(m.id);
    if (ComputeClusterId(ids) != identity->cluster_id) {
      spdlog::error(
          "the membership {} does not match cluster {} this data dir belongs to; refusing to "
          "start",
          stored ? identity->initial_cluster : cfg.initial_cluster,
          IdToHex(identity->cluster_id));
      return 1;
    }
    flags.members = std::move(*boot);
  }
  flags.segment = ipc::Segment::NameForDataDir(cfg.data_dir);

  spdlog::info("starting rusd {} (etcd API {}), name={}, data-dir={}", RusdVersion(),
               EtcdApiVersion(), cfg.name, cfg.data_dir);
  if (!cfg.config_file.empty()) spdlog::info("loaded configuration file {}", cfg.config_file);
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out;
  };
  spdlog::info(
      "listen-client-urls={} advertise-client-urls={} initial-advertise-peer-urls={} "
      "initial-cluster={} initial-cluster-token={} heartbeat-interval={}ms "
      "election-timeout={}ms snapshot-count={} max-request-bytes={} max-txn-ops={} "
      "quota-backend-bytes={}",
      join(cfg.listen_client_urls), join(cfg.advertise_client_urls),
      join(cfg.initial_advertise_peer_urls), cfg.initial_cluster, cfg.initial_cluster_token,
      cfg.heartbeat_interval_ms, cfg.election_timeout_ms, cfg.snapshot_count,
      cfg.max_request_bytes, cfg.max_txn_ops, cfg.quota_backend_bytes);
  spdlog::info("{} member {} in cluster {}", identity->created ? "starting new" : "restarting",
               IdToHex(identity->member_id), IdToHex(identity->cluster_id));
  if (!identity->created && identity->name != cfg.name) {
    spdlog::warn("data dir {} belongs to member named '{}', now started as --name={}",
                 cfg.data_dir, identity->name, cfg.name);
  }

  int code;
  {
    auto segment = ipc::Segment::Create(flags.segment);
    if (!segment.ok()) {
      spdlog::error("cannot create the shared-memory segment {}: {}", flags.segment,
                    segment.status().ToString());
      return 1;
    }
    // The metrics listener's thread exists before the components are forked; that is safe
    // because SpawnChild's child side only makes async-signal-safe calls (restarts fork
    // from a threaded process anyway).
    // What the components cannot know: exported as etcd_server_id, quota and process_*.
    ipc::MetricsArea& area = (*segment)->metrics();
    area.Set(ipc::Metric::kMemberId, identity->member_id);
    // etcd reports its 2 GiB default when the quota is 0.
    area.Set(ipc::Metric::kQuotaBackendBytes,
             cfg.quota_backend_bytes == 0 ? 2147483648ull : cfg.quota_backend_bytes);
    area.Set(ipc::Metric::kSupervisorPid, static_cast<uint64_t>(::getpid()));
    std::unique_ptr<MetricsListener> metrics;
    if (!cfg.listen_metrics_urls.empty()) {
      MetricsListenerOptions metrics_options;
      metrics_options.listen_urls = cfg.listen_metrics_urls;
      metrics_options.client_url = cfg.listen_client_urls[0];
      metrics_options.server_version = EtcdApiVersion();
      auto listener = MetricsListener::Start(metrics_options, **segment);
      if (!listener.ok()) {
        spdlog::error("--listen-metrics-urls: {}", listener.status().message());
        segment->reset();
        ipc::Segment::Remove(flags.segment);
        return 1;
      }
      metrics = std::move(*listener);
      for (const auto& u : cfg.listen_metrics_urls) {
        spdlog::info("serving /metrics, /livez, /readyz and /health on {}", u);
      }
    }
    NodeSupervisorOptions options;
    options.bin_dir = bin_dir;
    options.flags = flags;
    for (const auto& u : cfg.listen_client_urls) {
      options.client_urls += (options.client_urls.empty() ? "" : ",") + u;
    }
    NodeSupervisor supervisor(std::move(options), segment->get());
    code = supervisor.Run();
  }
  ipc::Segment::Remove(flags.segment);
  spdlog::info("removed segment {}; released {}", flags.segment, lock->path());
  return code;
}

}  // namespace
}  // namespace rusd::supervisor

int main(int argc, char** argv) { return rusd::supervisor::Main(argc, argv); }
