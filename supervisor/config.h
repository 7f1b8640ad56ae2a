// rusd's user-facing configuration: etcd's command-line flags, ETCD_* / RUSD_* environment
// variables and a TOML --config-file, resolved once at start-up into a Config.
//
// Precedence (highest first): command-line flags > RUSD_<FLAG> > ETCD_<FLAG> > config file >
// defaults (etcd's). Note: etcd itself ignores flags and environment when --config-file is
// given; rusd layers them instead (docs/configuration.md says so).
//
// Flags follow Go's `flag` package, as etcd does: `-flag` or `--flag`, `--flag value` or
// `--flag=value`, booleans bare or `=true/false`, `--` ends the flags, the last repetition
// wins. Which TOML section holds which key is in supervisor/README.md and
// docs/configuration.md; keys are the flag names ('_' and '-' are interchangeable).
//
// LoadConfig is a pure function of its inputs (reads only the config file); no thread rules.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/component_flags.h"
#include "common/status.h"

namespace rusd::supervisor {

struct Config {
  // [server]
  std::string name = "default";
  std::string data_dir;  // after LoadConfig: never empty ("${name}.etcd" by default)
  std::string log_level = "info";
  std::string log_format = "text";
  std::string logger = "zap";
  std::vector<std::string> log_outputs = {"default"};
  std::string config_file;
  bool experimental_enable_auth = false;
  bool experimental_initial_corrupt_check = false;
  std::string experimental_watch_progress_notify_interval = "10m0s";
  std::string watch_progress_notify_interval = "10m0s";
  bool experimental_native_grpc = true;  // rusd only: frontend/native_grpc/
  std::string auto_compaction_mode = "periodic";
  std::string auto_compaction_retention = "0";
  // [network]
  std::vector<std::string> listen_client_urls = {"http://localhost:2379"};
  std::vector<std::string> listen_peer_urls = {"http://localhost:2380"};
  std::vector<std::string> advertise_client_urls = {"http://localhost:2379"};
  std::vector<std::string> initial_advertise_peer_urls = {"http://localhost:2380"};
  std::vector<std::string> listen_metrics_urls;
  std::string cert_file;
  std::string key_file;
  std::string trusted_ca_file;
  bool client_cert_auth = false;
  std::string peer_cert_file;
  std::string peer_key_file;
  std::string peer_trusted_ca_file;
  bool peer_client_cert_auth = false;
  // [cluster]
  std::string initial_cluster;  // after LoadConfig: never empty ("<name>=<advertise peer urls>")
  std::string initial_cluster_state = "new";
  std::string initial_cluster_token = "etcd-cluster";
  bool strict_reconfig_check = true;  // etcd's mayAddMember / mayRemoveMember checks
  // [raft]
  uint32_t heartbeat_interval_ms = 100;
  uint32_t election_timeout_ms = 1000;
  uint64_t snapshot_count = 100000;
  // [limits]
  uint64_t max_request_bytes = 1572864;
  uint64_t quota_backend_bytes = 2147483648ull;
  uint32_t max_txn_ops = 128;

  // The resolved flags every component gets; segment, member and cluster id are filled in
  // by the caller (they depend on the data dir's state).
  ComponentFlags ToComponentFlags() const;
};

struct LoadedConfig {
  enum class Action { kRun, kPrintHelp, kPrintVersion };
  Action action = Action::kRun;
  Config config;
  // One line per accepted-but-unimplemented setting and per ignored environment variable;
  // the caller logs each as a warning once logging is set up.
  std::vector<std::string> warnings;
};

// args: argv without argv[0]. env: the process environment (name -> value).
// Errors: InvalidArgument for usage errors (unknown flag, bad syntax, unparsable value;
// the caller exits 2 like Go's flag package), FailedPrecondition for a configuration that
// parses but is invalid (election timeout too short, bad URL, ...; exit 1 like etcd).
// The message is ready to print (etcd's wording where etcd has one).
Result<LoadedConfig> LoadConfig(const std::vector<std::string>& args,
                                const std::map<std::string, std::string>& env);

// `rusd --help`: every flag with its default, grouped by TOML section.
std::string HelpText();
// `rusd --version`.
std::string VersionText();
std::string RusdVersion();     // CMake PROJECT_VERSION, e.g. "0.1.0"
std::string EtcdApiVersion();  // the etcd server version rusd implements, e.g. "3.5.17"
// The short usage shown after a usage error.
std::string UsageText();

// The TOML section ("server", "network", ...) that holds `flag`, or "" if none.
std::string SectionOfFlag(const std::string& flag);
// Every flag name rusd accepts (without dashes), in help order.
std::vector<std::string> AllFlagNames();

}  // namespace rusd::supervisor
