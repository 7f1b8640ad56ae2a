#include "supervisor/config.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <set>
#include <sstream>
#include <variant>

#include "common/go_duration.h"
#include "supervisor/cluster_ids.h"
#include "common/url.h"
#include "supervisor/toml_reader.h"

#ifndef RUSD_VERSION
#define RUSD_VERSION "unknown"
#endif
#ifndef RUSD_ETCD_API_VERSION
#define RUSD_ETCD_API_VERSION "unknown"
#endif
#ifndef RUSD_ETCD_CLUSTER_VERSION
#define RUSD_ETCD_CLUSTER_VERSION "unknown"
#endif

namespace rusd::supervisor {
namespace {

// How a flag's text is checked and stored.
enum class Syntax {
  kString,
  kUint32,
  kUint64,
  kBool,
  kUrlList,     // comma-separated URLs (TOML: a string or an array of strings)
  kStringList,  // comma-separated strings (TOML: a string or an array of strings)
  kDuration,    // Go duration ("10m", "1h30m", "500ms")
};

using Field = std::variant<std::string Config::*, uint32_t Config::*, uint64_t Config::*,
                           bool Config::*, std::vector<std::string> Config::*>;

struct FlagSpec {
  const char* name;
  const char* section;  // TOML table; "" = not settable from the file
  Syntax syntax;
  Field field;
  const char* default_text;  // as --help shows it (etcd's text)
  const char* help;
  // nullptr when rusd implements the flag; otherwise the reason it is only accepted,
  // printed in the start-up warning when the flag is set to a non-default value.
  const char* not_implemented = nullptr;
  std::vector<std::string> choices = {};  // allowed values of an enumerated string flag
};

constexpr const char* kTls = "TLS: issue 'auth and TLS'";

const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec> specs = {
      // [server]
      {"name", "server", Syntax::kString, &Config::name, "default",
       "Human-readable name for this member."},
      {"data-dir", "server", Syntax::kString, &Config::data_dir, "${name}.etcd",
       "Path to the data directory."},
      {"log-level", "server", Syntax::kString, &Config::log_level, "info",
       "Configures log level. Only supports debug, info, warn, error.", nullptr,
       {"debug", "info", "warn", "error"}},
      {"log-format", "server", Syntax::kString, &Config::log_format, "text",
       "Log line format: text or json (rusd; etcd's zap logger writes json).", nullptr,
       {"text", "json"}},
      {"logger", "server", Syntax::kString, &Config::logger, "zap",
       "Accepted for etcd compatibility; rusd always logs with its own logger.", nullptr,
       {"zap"}},
      {"log-outputs", "server", Syntax::kStringList, &Config::log_outputs, "default",
       "Accepted for etcd compatibility; rusd logs to stderr ('default' or 'stderr').",
       "log outputs other than stderr: issue 'logging'"},
      {"experimental-enable-auth", "server", Syntax::kBool, &Config::experimental_enable_auth,
       "false", "Enable authentication (rusd).", "authentication: issue 'auth and TLS'"},
      {"experimental-initial-corrupt-check", "server", Syntax::kBool,
       &Config::experimental_initial_corrupt_check, "false",
       "Enable to check data corruption before serving any client/peer traffic.",
       "corruption checks: issue 'corrupt check'"},
      {"experimental-watch-progress-notify-interval", "server", Syntax::kDuration,
       &Config::experimental_watch_progress_notify_interval, "10m0s",
       "Duration of periodic watch progress notifications.",
       "progress notifications: issue 'watch progress notify'"},
      {"watch-progress-notify-interval", "server", Syntax::kDuration,
       &Config::watch_progress_notify_interval, "10m0s",
       "Duration of periodic watch progress notifications (etcd 3.6 spelling).",
       "progress notifications: issue 'watch progress notify'"},
      {"experimental-native-grpc", "server", Syntax::kBool, &Config::experimental_native_grpc,
       "true",
       "Serve gRPC clients with rusd's own HTTP/2 server (rusd: KV natively, the rest "
       "forwarded in process to gRPC C++); false serves them with gRPC C++ alone."},
      {"auto-compaction-mode", "server", Syntax::kString, &Config::auto_compaction_mode,
       "periodic", "Interpret 'auto-compaction-retention' one of: periodic|revision.",
       "auto compaction: issue 'auto compaction'", {"periodic", "revision"}},
      {"auto-compaction-retention", "server", Syntax::kString,
       &Config::auto_compaction_retention, "0",
       "Auto compaction retention length. 0 means disable auto compaction.",
       "auto compaction: issue 'auto compaction'"},
      // [network]
      {"listen-client-urls", "network", Syntax::kUrlList, &Config::listen_client_urls,
       "http://localhost:2379", "List of URLs to listen on for client grpc traffic and http."},
      {"advertise-client-urls", "network", Syntax::kUrlList, &Config::advertise_client_urls,
       "http://localhost:2379", "List of this member's client URLs to advertise to the public."},
      {"listen-peer-urls", "network", Syntax::kUrlList, &Config::listen_peer_urls,
       "http://localhost:2380", "List of URLs to listen on for peer traffic."},
      {"initial-advertise-peer-urls", "network", Syntax::kUrlList,
       &Config::initial_advertise_peer_urls, "http://localhost:2380",
       "List of this member's peer URLs to advertise to the rest of the cluster."},
      {"listen-metrics-urls", "network", Syntax::kUrlList, &Config::listen_metrics_urls, "",
       "List of URLs to listen on for the metrics and health endpoints."},
      {"cert-file", "network", Syntax::kString, &Config::cert_file, "",
       "Path to the client server TLS cert file.", kTls},
      {"key-file", "network", Syntax::kString, &Config::key_file, "",
       "Path to the client server TLS key file.", kTls},
      {"trusted-ca-file", "network", Syntax::kString, &Config::trusted_ca_file, "",
       "Path to the client server TLS trusted CA cert file.", kTls},
      {"client-cert-auth", "network", Syntax::kBool, &Config::client_cert_auth, "false",
       "Enable client cert authentication.", kTls},
      {"peer-cert-file", "network", Syntax::kString, &Config::peer_cert_file, "",
       "Path to the peer server TLS cert file.", kTls},
      {"peer-key-file", "network", Syntax::kString, &Config::peer_key_file, "",
       "Path to the peer server TLS key file.", kTls},
      {"peer-trusted-ca-file", "network", Syntax::kString, &Config::peer_trusted_ca_file, "",
       "Path to the peer server TLS trusted CA file.", kTls},
      {"peer-client-cert-auth", "network", Syntax::kBool, &Config::peer_client_cert_auth, "false",
       "Enable peer client cert authentication.", kTls},
      // [cluster]
      {"initial-cluster", "cluster", Syntax::kString, &Config::initial_cluster,
       "default=http://localhost:2380",
       "Initial cluster configuration for bootstrapping (default: <name>=<initial-advertise-peer-urls>)."},
      {"initial-cluster-state", "cluster", Syntax::kString, &Config::initial_cluster_state, "new",
       "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding "
       "new members to an existing cluster).",
       nullptr, {"new", "existing"}},
      {"initial-cluster-token", "cluster", Syntax::kString, &Config::initial_cluster_token,
       "etcd-cluster", "Initial cluster token for the etcd cluster during bootstrap."},
      {"strict-reconfig-check", "cluster", Syntax::kBool, &Config::strict_reconfig_check, "true",
       "Reject reconfiguration requests that would cause quorum loss."},
      // [raft]
      {"heartbeat-interval", "raft", Syntax::kUint32, &Config::heartbeat_interval_ms, "100",
       "Time (in milliseconds) of a heartbeat interval."},
      {"election-timeout", "raft", Syntax::kUint32, &Config::election_timeout_ms, "1000",
       "Time (in milliseconds) for an election to timeout."},
      {"snapshot-count", "raft", Syntax::kUint64, &Config::snapshot_count, "100000",
       "Number of committed transactions to trigger a snapshot to disk."},
      // [limits]
      {"max-request-bytes", "limits", Syntax::kUint64, &Config::max_request_bytes, "1572864",
       "Maximum client request size in bytes the server will accept."},
      {"quota-backend-bytes", "limits", Syntax::kUint64, &Config::quota_backend_bytes,
       "2147483648", "Raise alarms when backend size exceeds the given quota."},
      {"max-txn-ops", "limits", Syntax::kUint32, &Config::max_txn_ops, "128",
       "Maximum number of operations permitted in a transaction."},
      // Not in the file: where the file is.
      {"config-file", "", Syntax::kString, &Config::config_file, "",
       "Path to the server configuration file (TOML; see docs/configuration.md)."},
  };
  return specs;
}

const FlagSpec* FindSpec(const std::string& name) {
  for (const auto& s : Specs()) {
    if (name == s.name) return &s;
  }
  return nullptr;
}

std::string EnvName(const std::string& prefix, const std::string& flag) {
  std::string out = prefix + "_";
  for (char c : flag) out.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
  return out;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::stringstream in(s);
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string Join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// Checks `text` against the flag's syntax and stores it. The error is the reason only
// (Go's flag package style: "parse error", "value out of range", ...).
Status SetFlag(const FlagSpec& spec, const std::string& text, Config* cfg) {
  switch (spec.syntax) {
    case Syntax::kString: {
      if (!spec.choices.empty() &&
          std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
        return Status::InvalidArgument("valid values are " + Join(spec.choices, ", "));
      }
      cfg->*std::get<std::string Config::*>(spec.field) = text;
      return Status::Ok();
    }
    case Syntax::kDuration:
      // Go's time.ParseDuration, range included: the component converts it the same way.
      if (auto d = ParseGoDuration(text); !d.ok()) return d.status();
      cfg->*std::get<std::string Config::*>(spec.field) = text;
      return Status::Ok();
    case Syntax::kUint32:
    case Syntax::kUint64: {
      uint64_t v = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 10);
      if (ec == std::errc::result_out_of_range) return Status::InvalidArgument("value out of range");
      if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
        return Status::InvalidArgument("parse error");
      }
      if (spec.syntax == Syntax::kUint32) {
        if (v > UINT32_MAX) return Status::InvalidArgument("value out of range");
        cfg->*std::get<uint32_t Config::*>(spec.field) = static_cast<uint32_t>(v);
      } else {
        cfg->*std::get<uint64_t Config::*>(spec.field) = v;
      }
      return Status::Ok();
    }
    case Syntax::kBool: {
      // Go's strconv.ParseBool.
      static const std::set<std::string> kTrue = {"1", "t", "T", "TRUE", "true", "True"};
      static const std::set<std::string> kFalse = {"0", "f", "F", "FALSE", "false", "False"};
      if (kTrue.count(text)) cfg->*std::get<bool Config::*>(spec.field) = true;
      else if (kFalse.count(text)) cfg->*std::get<bool Config::*>(spec.field) = false;
      else return Status::InvalidArgument("parse error");
      return Status::Ok();
    }
    case Syntax::kUrlList: {
      auto urls = SplitCommas(text);
      for (const auto& u : urls) {
        auto parsed = ParseUrl(u);
        if (!parsed.ok()) return parsed.status();
      }
      cfg->*std::get<std::vector<std::string> Config::*>(spec.field) = urls;
      return Status::Ok();
    }
    case Syntax::kStringList:
      cfg->*std::get<std::vector<std::string> Config::*>(spec.field) = SplitCommas(text);
      return Status::Ok();
  }
  return Status::Internal("unknown flag syntax");
}

// The text form of a flag's current value, to compare with its default.
std::string CurrentText(const FlagSpec& spec, const Config& cfg) {
  return std::visit(
      [&cfg](auto member) -> std::string {
        using T = std::decay_t<decltype(cfg.*member)>;
        if constexpr (std::is_same_v<T, std::string>) return cfg.*member;
        else if constexpr (std::is_same_v<T, bool>) return cfg.*member ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::vector<std::string>>) return Join(cfg.*member);
        else return std::to_string(cfg.*member);
      },
      spec.field);
}

struct CommandLine {
  bool help = false;
  bool version = false;
  std::vector<std::pair<std::string, std::string>> values;  // in order; last wins
};

// Go's flag.FlagSet.Parse with etcd's rule that no positional argument may follow.
Result<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') {
      return Status::InvalidArgument("'" + arg + "' is not a valid flag");
    }
    size_t dashes = arg[1] == '-' ? 2 : 1;
    if (dashes == 2 && arg.size() == 2) {  // "--": the flags end here
      if (i + 1 < args.size()) return Status::InvalidArgument("'" + args[i + 1] + "' is not a valid flag");
      break;
    }
    std::string body = arg.substr(dashes);
    if (body.empty() || body[0] == '-' || body[0] == '=') {
      return Status::InvalidArgument("bad flag syntax: " + arg);
    }
    std::string name = body;
    std::string value;
    bool has_value = false;
    if (auto eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    if (name == "h" || name == "help") {
      out.help = true;
      continue;
    }
    if (name == "version") {
      if (has_value && value != "true" && value != "1") continue;
      out.version = true;
      continue;
    }
    const FlagSpec* spec = FindSpec(name);
    if (spec == nullptr) return Status::InvalidArgument("flag provided but not defined: -" + name);
    if (spec->syntax == Syntax::kBool) {
      if (!has_value) value = "true";
    } else if (!has_value) {
      if (i + 1 >= args.size()) return Status::InvalidArgument("flag needs an argument: -" + name);
      value = args[++i];
    }
    out.values.emplace_back(name, value);
  }
  return out;
}

// Applies one TOML value; `where` is "path:line".
Status ApplyTomlValue(const FlagSpec& spec, const TomlValue& v, const std::string& where,
                      Config* cfg) {
  std::string text;
  auto mismatch = [&](const char* want) {
    return Status::InvalidArgument(where + ": key '" + spec.name + "' must be " + want + ", got " +
                                   TomlValue::KindName(v.kind));
  };
  switch (spec.syntax) {
    case Syntax::kString:
    case Syntax::kDuration:
      if (v.kind != TomlValue::Kind::kString) return mismatch("a string");
      text = v.string_value;
      break;
    case Syntax::kUint32:
    case Syntax::kUint64:
      if (v.kind != TomlValue::Kind::kInteger) return mismatch("an integer");
      if (v.integer_value < 0) {
        return Status::InvalidArgument(where + ": key '" + spec.name + "' must not be negative");
      }
      text = std::to_string(v.integer_value);
      break;
    case Syntax::kBool:
      if (v.kind != TomlValue::Kind::kBoolean) return mismatch("true or false");
      text = v.boolean_value ? "true" : "false";
      break;
    case Syntax::kUrlList:
    case Syntax::kStringList:
      if (v.kind == TomlValue::Kind::kString) text = v.string_value;
      else if (v.kind == TomlValue::Kind::kStringArray) text = Join(v.array_value);
      else return mismatch("a string or an array of strings");
      break;
  }
  Status st = SetFlag(spec, text, cfg);
  if (!st.ok()) {
    return Status::InvalidArgument(where + ": invalid value \"" + text + "\" for key '" +
                                   spec.name + "': " + st.message());
  }
  return Status::Ok();
}

std::string NormalizeKey(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

Status ApplyConfigFile(const std::string& path, Config* cfg, std::set<std::string>* set_flags) {
  auto doc = ReadTomlFile(path);
  if (!doc.ok()) return doc.status();
  for (const auto& [table, keys] : doc->tables) {
    if (!table.empty() && table != "server" && table != "network" && table != "cluster" &&
        table != "raft" && table != "limits") {
      return Status::InvalidArgument(path + ":" + std::to_string(doc->table_lines.at(table)) +
                                     ": unknown table [" + table +
                                     "] (rusd knows [server], [network], [cluster], [raft], [limits])");
    }
    for (const auto& [raw_key, value] : keys) {
      std::string where = path + ":" + std::to_string(value.line);
      std::string key = NormalizeKey(raw_key);
      const FlagSpec* spec = FindSpec(key);
      if (spec == nullptr || std::string(spec->section).empty()) {
        return Status::InvalidArgument(where + ": unknown key '" + raw_key + "'");
      }
      if (table != spec->section) {
        return Status::InvalidArgument(where + ": key '" + raw_key + "' belongs in [" +
                                       spec->section + "], not " +
                                       (table.empty() ? std::string("before any table")
                                                      : "[" + table + "]"));
      }
      RUSD_RETURN_IF_ERROR(ApplyTomlValue(*spec, value, where, cfg));
      set_flags->insert(spec->name);
    }
  }
  return Status::Ok();
}

std::string Lookup(const std::map<std::string, std::string>& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? std::string() : it->second;
}

Status Validate(const Config& cfg, const std::set<std::string>& set_flags) {
  auto fail = [](std::string m) { return Status::FailedPrecondition(std::move(m)); };
  if (cfg.heartbeat_interval_ms == 0) {
    return fail("--heartbeat-interval must be >0 (set to 0ms)");
  }
  if (cfg.election_timeout_ms == 0) return fail("--election-timeout must be >0 (set to 0ms)");
  if (5ull * cfg.heartbeat_interval_ms > cfg.election_timeout_ms) {
    return fail("--election-timeout[" + std::to_string(cfg.election_timeout_ms) +
                "ms] should be at least as 5 times as --heartbeat-interval[" +
                std::to_string(cfg.heartbeat_interval_ms) + "ms]");
  }
  if (cfg.election_timeout_ms > 50000) {
    return fail("--election-timeout[" + std::to_string(cfg.election_timeout_ms) +
                "ms] is too long, and should be set less than 50000ms");
  }
  if (cfg.listen_client_urls.empty()) return fail("--listen-client-urls must not be empty");
  for (const auto& u : cfg.listen_client_urls) {
    auto parsed = ParseUrl(u);
    if (!parsed.ok()) return fail(parsed.status().message());
    if (parsed->scheme == "https") {
      return fail("--listen-client-urls " + u + ": https is accepted but not implemented yet (" +
                  std::string(kTls) + ")");
    }
  }
  // etcd refuses a changed listen address without an advertised one: clients would be
  // told to dial the default localhost:2379.
  if (set_flags.count("listen-client-urls") && !set_flags.count("advertise-client-urls")) {
    return fail("--advertise-client-urls is required when --listen-client-urls is set explicitly");
  }
  for (const auto& u : cfg.listen_metrics_urls) {
    if (ParseUrl(u)->scheme != "http") {
      return fail("--listen-metrics-urls " + u + ": only http is implemented yet (" +
                  std::string(kTls) + ")");
    }
  }
  if (cfg.initial_advertise_peer_urls.empty()) {
    return fail("--initial-advertise-peer-urls must not be empty");
  }
  if (cfg.max_txn_ops == 0) return fail("--max-txn-ops must be >0");
  if (cfg.max_request_bytes == 0) return fail("--max-request-bytes must be >0");
  if (cfg.name.empty()) return fail("--name must not be empty");
  auto cluster = ParseInitialCluster(cfg.initial_cluster);
  if (!cluster.ok()) return fail("--initial-cluster: " + cluster.status().message());
  const std::vector<std::string>* mine = nullptr;
  for (const auto& m : *cluster) {
    if (m.name == cfg.name) mine = &m.peer_urls;
  }
  if (mine == nullptr) {
    return fail("couldn't find local name \"" + cfg.name +
                "\" in the initial cluster configuration");
  }
  auto a = *mine;
  auto b = cfg.initial_advertise_peer_urls;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (a != b) {
    return fail("--initial-cluster has " + cfg.name + "=" + Join(*mine) +
                " but missing from --initial-advertise-peer-urls=" +
                Join(cfg.initial_advertise_peer_urls));
  }
  auto ids = DeriveClusterIds(*cluster, cfg.name, cfg.initial_cluster_token);
  if (!ids.ok()) return fail(ids.status().message());
  // Peers must reach each other, and the transport speaks plain TCP only: a cluster whose
  // peer URLs need TLS could never form, so say so now rather than time out later. A lone
  // member (kubeadm's single-node manifest says https) starts without a peer listener.
  if (cluster->size() > 1 || cfg.initial_cluster_state == "existing") {
    for (const auto& m : *cluster) {
      for (const auto& u : m.peer_urls) {
        if (auto p = ParsePeerUrl(u); !p.ok()) return fail("--initial-cluster: " + p.status().message());
      }
    }
    for (const auto& u : cfg.listen_peer_urls) {
      if (auto p = ParsePeerUrl(u); !p.ok()) return fail("--listen-peer-urls: " + p.status().message());
    }
  }
  return Status::Ok();
}

bool PeerListenerUsable(const Config& cfg) {
  for (const auto& u : cfg.listen_peer_urls) {
    if (!ParsePeerUrl(u).ok()) return false;
  }
  return true;
}

}  // namespace

ComponentFlags Config::ToComponentFlags() const {
  ComponentFlags f;
  f.data_dir = data_dir;
  f.name = name;
  f.listen_client_urls = listen_client_urls;
  f.advertise_client_urls = advertise_client_urls;
  // Validate refused unusable peer URLs in a cluster; a lone member with them runs
  // without a peer listener (it cannot grow until restarted with http:// peer URLs).
  if (PeerListenerUsable(*this)) f.listen_peer_urls = listen_peer_urls;
  f.max_request_bytes = max_request_bytes;
  f.max_txn_ops = max_txn_ops;
  f.quota_backend_bytes = quota_backend_bytes;
  f.snapshot_count = snapshot_count;
  f.strict_reconfig_check = strict_reconfig_check;
  f.experimental_native_grpc = experimental_native_grpc;
  f.heartbeat_interval_ms = heartbeat_interval_ms;
  f.election_timeout_ms = election_timeout_ms;
  f.log_level = log_level;
  f.log_format = log_format;
  // The 3.6 spelling wins when set; else etcd 3.4/3.5's experimental flag.
  f.watch_progress_notify_interval = watch_progress_notify_interval != "10m0s"
                                         ? watch_progress_notify_interval
                                         : experimental_watch_progress_notify_interval;
  return f;
}

Result<LoadedConfig> LoadConfig(const std::vector<std::string>& args,
                                const std::map<std::string, std::string>& env) {
  auto cmdline = ParseCommandLine(args);
  if (!cmdline.ok()) return cmdline.status();
  LoadedConfig out;
  if (cmdline->help) {
    out.action = LoadedConfig::Action::kPrintHelp;
    return out;
  }
  if (cmdline->version) {
    out.action = LoadedConfig::Action::kPrintVersion;
    return out;
  }

  std::set<std::string> on_command_line;
  std::string config_file;
  for (const auto& [name, value] : cmdline->values) {
    on_command_line.insert(name);
    if (name == "config-file") config_file = value;
  }
  if (config_file.empty()) config_file = Lookup(env, "RUSD_CONFIG_FILE");
  if (config_file.empty()) config_file = Lookup(env, "ETCD_CONFIG_FILE");

  Config& cfg = out.config;
  std::set<std::string> set_flags;  // set by any source
  // Layer 1: the file.
  if (!config_file.empty()) {
    RUSD_RETURN_IF_ERROR(ApplyConfigFile(config_file, &cfg, &set_flags));
    cfg.config_file = config_file;
  }
  // Layer 2: the environment, ETCD_ then RUSD_ (so RUSD_ wins); skipped for flags given on
  // the command line (etcd refuses that combination; rusd lets the flag win and says so).
  std::set<std::string> used_env;
  for (const auto& spec : Specs()) {
    for (const char* prefix : {"ETCD", "RUSD"}) {
      std::string key = EnvName(prefix, spec.name);
      std::string value = Lookup(env, key);
      if (value.empty()) continue;
      used_env.insert(key);
      if (on_command_line.count(spec.name)) {
        out.warnings.push_back("environment variable " + key + " is shadowed by the --" +
                               spec.name + " command-line flag; ignoring it");
        continue;
      }
      Status st = SetFlag(spec, value, &cfg);
      if (!st.ok()) {
        return Status::InvalidArgument("invalid value \"" + value + "\" for " + key + ": " +
                                       st.message());
      }
      set_flags.insert(spec.name);
    }
  }
  for (const auto& [key, value] : env) {
    if ((key.rfind("ETCD_", 0) == 0 || key.rfind("RUSD_", 0) == 0) && !used_env.count(key) &&
        key != "ETCD_VERSION" && !value.empty()) {
      // etcd warns about these too; a typo in a variable name must not pass silently.
      out.warnings.push_back("unrecognized environment variable " + key + "=" + value);
    }
  }
  // Layer 3: the command line.
  for (const auto& [name, value] : cmdline->values) {
    const FlagSpec* spec = FindSpec(name);
    Status st = SetFlag(*spec, value, &cfg);
    if (!st.ok()) {
      return Status::InvalidArgument("invalid value \"" + value + "\" for flag -" + name + ": " +
                                     st.message());
    }
    set_flags.insert(name);
  }

  // Derived defaults, as etcd resolves them.
  if (cfg.data_dir.empty()) cfg.data_dir = cfg.name + ".etcd";
  if (cfg.initial_cluster.empty() || !set_flags.count("initial-cluster")) {
    std::string ic;
    for (const auto& u : cfg.initial_advertise_peer_urls) {
      ic += (ic.empty() ? "" : ",") + cfg.name + "=" + u;
    }
    cfg.initial_cluster = ic;
  }

  RUSD_RETURN_IF_ERROR(Validate(cfg, set_flags));

  // One warning per accepted-but-unimplemented setting.
  for (const auto& spec : Specs()) {
    if (spec.not_implemented == nullptr || !set_flags.count(spec.name)) continue;
    std::string current = CurrentText(spec, cfg);
    if (current == spec.default_text) continue;
    if (std::string(spec.name) == "log-outputs" && (current == "stderr" || current.empty())) continue;
    out.warnings.push_back("flag --" + std::string(spec.name) +
                           " is accepted but not implemented yet (" + spec.not_implemented +
                           "); ignoring");
  }
  if (!PeerListenerUsable(cfg)) {
    out.warnings.push_back("--listen-peer-urls " + Join(cfg.listen_peer_urls) +
                           ": TLS peer URLs are not supported yet; ignoring them (no peer "
                           "listener: this member runs alone and cannot be joined)");
  }
  return out;
}

std::string HelpText() {
  std::ostringstream o;
  o << UsageText() << "\n";
  const char* sections[] = {"server", "network", "cluster", "raft", "limits", ""};
  const char* titles[] = {"Member and logging ([server] in the config file):",
                          "Network and TLS ([network]):",
                          "Clustering ([cluster]):",
                          "Raft ([raft]):",
                          "Limits ([limits]):",
                          "Configuration:"};
  for (size_t i = 0; i < std::size(sections); ++i) {
    o << "\n" << titles[i] << "\n";
    for (const auto& s : Specs()) {
      if (std::string(s.section) != sections[i]) continue;
      o << "  --" << s.name << " '" << s.default_text << "'\n    " << s.help << "\n";
      o << "    env: " << EnvName("RUSD", s.name) << " or " << EnvName("ETCD", s.name) << "\n";
      if (s.not_implemented) o << "    (accepted, not implemented yet: " << s.not_implemented << ")\n";
    }
  }
  o << "\nPrecedence: command-line flags > RUSD_* > ETCD_* environment > --config-file > defaults.\n";
  return o.str();
}

std::string UsageText() {
  return "Usage:\n\n"
         "  rusd [flags]\n"
         "    Start a rusd (etcd-compatible) server.\n\n"
         "  rusd --version\n"
         "    Show the version of rusd and the etcd API it implements.\n\n"
         "  rusd -h | --help\n"
         "    Show the help information about rusd.\n\n"
         "  rusd --config-file <path>\n"
         "    Read settings from a TOML file (flags and environment variables override it).\n";
}

std::string VersionText() {
  return std::string("rusd Version: ") + RUSD_VERSION + "\n" +
         "etcd API Version: " + RUSD_ETCD_API_VERSION + "\n" +
         "etcd Cluster Version: " + RUSD_ETCD_CLUSTER_VERSION + "\n" +
         "OS/Arch: linux/" +
#if defined(__x86_64__)
         "amd64"
#elif defined(__aarch64__)
         "arm64"
#else
         "unknown"
#endif
         + "\n";
}

std::string RusdVersion() { return RUSD_VERSION; }
std::string EtcdApiVersion() { return RUSD_ETCD_API_VERSION; }

std::string SectionOfFlag(const std::string& flag) {
  const FlagSpec* s = FindSpec(flag);
  return s ? s->section : "";
}

std::vector<std::string> AllFlagNames() {
  std::vector<std::string> out;
  for (const auto& s : Specs()) out.push_back(s.name);
  return out;
}

}  // namespace rusd::supervisor
