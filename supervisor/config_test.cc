#include "supervisor/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace rusd::supervisor {
namespace {

using Env = std::map<std::string, std::string>;

Result<LoadedConfig> Load(std::vector<std::string> args, Env env = {}) {
  return LoadConfig(args, env);
}

// A config file in a fresh temporary directory, removed with the test.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/rusd_config_test_XXXXXX";
    int fd = ::mkstemp(tmpl);
    path_ = tmpl;
    ::close(fd);
    std::ofstream(path_) << text;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(Config, DefaultsEqualEtcds) {
  auto loaded = Load({});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Config& c = loaded->config;
  EXPECT_EQ(c.name, "default");
  EXPECT_EQ(c.data_dir, "default.etcd");
  EXPECT_EQ(c.listen_client_urls, std::vector<std::string>{"http://localhost:2379"});
  EXPECT_EQ(c.listen_peer_urls, std::vector<std::string>{"http://localhost:2380"});
  EXPECT_EQ(c.advertise_client_urls, std::vector<std::string>{"http://localhost:2379"});
  EXPECT_EQ(c.initial_advertise_peer_urls, std::vector<std::string>{"http://localhost:2380"});
  EXPECT_EQ(c.initial_cluster, "default=http://localhost:2380");
  EXPECT_EQ(c.initial_cluster_state, "new");
  EXPECT_EQ(c.initial_cluster_token, "etcd-cluster");
  EXPECT_EQ(c.max_request_bytes, 1572864u);
  EXPECT_EQ(c.quota_backend_bytes, 2147483648u);
  EXPECT_EQ(c.snapshot_count, 100000u);
  EXPECT_EQ(c.heartbeat_interval_ms, 100u);
  EXPECT_EQ(c.election_timeout_ms, 1000u);
  EXPECT_EQ(c.max_txn_ops, 128u);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.log_format, "text");
  EXPECT_FALSE(c.experimental_enable_auth);
  EXPECT_TRUE(loaded->warnings.empty());
}

TEST(Config, NameDerivesDataDirAndInitialCluster) {
  auto loaded = Load({"--name", "infra9", "--initial-advertise-peer-urls=http://10.0.0.9:2380"});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->config.data_dir, "infra9.etcd");
  EXPECT_EQ(loaded->config.initial_cluster, "infra9=http://10.0.0.9:2380");
}

TEST(Config, AcceptsGoFlagSyntaxes) {
  auto loaded = Load({"-name=a", "--snapshot-count", "5", "--max-txn-ops=7",
                      "--experimental-initial-corrupt-check", "--client-cert-auth=false",
                      "-heartbeat-interval", "10", "--election-timeout=50", "--name", "b", "--"});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->config.name, "b");  // the last repetition wins
  EXPECT_EQ(loaded->config.snapshot_count, 5u);
  EXPECT_EQ(loaded->config.max_txn_ops, 7u);
  EXPECT_TRUE(loaded->config.experimental_initial_corrupt_check);
  EXPECT_FALSE(loaded->config.client_cert_auth);
  EXPECT_EQ(loaded->config.heartbeat_interval_ms, 10u);
  EXPECT_EQ(loaded->config.election_timeout_ms, 50u);
}

// The exact command line kubeadm 1.28 writes into etcd's static pod manifest.
TEST(Config, AcceptsEveryFlagKubeadmPasses) {
  auto loaded = Load({
      "--advertise-client-urls=https://10.0.0.1:2379",
      "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
      "--client-cert-auth=true",
      "--data-dir=/var/lib/etcd",
      "--experimental-initial-corrupt-check=true",
      "--experimental-watch-progress-notify-interval=5s",
      "--initial-advertise-peer-urls=https://10.0.0.1:2380",
      "--initial-cluster=cp1=https://10.0.0.1:2380",
      "--key-file=/etc/kubernetes/pki/etcd/server.key",
      "--listen-client-urls=http://127.0.0.1:2379,http://10.0.0.1:2379",
      "--listen-metrics-urls=http://127.0.0.1:2381",
      "--listen-peer-urls=https://10.0.0.1:2380",
      "--name=cp1",
      "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
      "--peer-client-cert-auth=true",
      "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
      "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
      "--snapshot-count=10000",
      "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
  });
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const auto& w = loaded->warnings;
  auto warned = [&w](const std::string& flag) {
    for (const auto& line : w) {
      if (line.rfind("flag --" + flag + " is accepted but not implemented yet", 0) == 0) return true;
    }
    return false;
  };
  for (const char* f : {"cert-file", "key-file", "trusted-ca-file", "client-cert-auth",
                        "peer-cert-file", "peer-key-file", "peer-trusted-ca-file",
                        "peer-client-cert-auth",
                        "experimental-initial-corrupt-check",
                        "experimental-watch-progress-notify-interval"}) {
    EXPECT_TRUE(warned(f)) << "no warning for --" << f;
  }
  EXPECT_TRUE(warned("cert-file"));
  EXPECT_EQ(w.front().find("flag --"), 0u);
  for (const auto& line : w) EXPECT_NE(line.find("; ignoring"), std::string::npos) << line;
}

TEST(Config, EveryFlagIsAcceptedOnTheCommandLine) {
  std::map<std::string, std::string> values = {
      {"name", "n"}, {"data-dir", "/tmp/x"}, {"log-level", "debug"}, {"log-format", "json"},
      {"logger", "zap"}, {"log-outputs", "stderr"}, {"experimental-enable-auth", "true"},
      {"experimental-initial-corrupt-check", "true"},
      {"experimental-watch-progress-notify-interval", "1m30s"},
      {"watch-progress-notify-interval", "500ms"}, {"auto-compaction-mode", "revision"},
      {"auto-compaction-retention", "1000"}, {"listen-client-urls", "http://127.0.0.1:1"},
      {"advertise-client-urls", "http://127.0.0.1:1"}, {"listen-peer-urls", "http://127.0.0.1:2"},
      {"initial-advertise-peer-urls", "http://127.0.0.1:2"}, {"listen-metrics-urls", "http://127.0.0.1:3"},
      {"cert-file", "c"}, {"key-file", "k"}, {"trusted-ca-file", "ca"}, {"client-cert-auth", "true"},
      {"peer-cert-file", "pc"}, {"peer-key-file", "pk"}, {"peer-trusted-ca-file", "pca"},
      {"peer-client-cert-auth", "true"}, {"initial-cluster", "n=http://127.0.0.1:2"},
      {"initial-cluster-state", "existing"}, {"initial-cluster-token", "tok"},
      {"strict-reconfig-check", "false"}, {"experimental-native-grpc", "false"},
      {"heartbeat-interval", "20"}, {"election-timeout", "200"}, {"snapshot-count", "3"},
      {"max-request-bytes", "4"}, {"quota-backend-bytes", "5"}, {"max-txn-ops", "6"},
      {"config-file", ""}};
  std::vector<std::string> args;
  for (const auto& f : AllFlagNames()) {
    ASSERT_TRUE(values.count(f)) << "test lacks a value for --" << f;
    args.push_back("--" + f + "=" + values[f]);
  }
  auto loaded = Load(args);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->config.max_txn_ops, 6u);
  EXPECT_EQ(loaded->config.initial_cluster_token, "tok");
  EXPECT_FALSE(loaded->config.ToComponentFlags().experimental_native_grpc);
}

// etcd's --strict-reconfig-check: true by default; a flag, ETCD_STRICT_RECONFIG_CHECK or
// the [cluster] table turns it off, and raftd gets it (--strict-reconfig-check=false).
TEST(Config, StrictReconfigCheckDefaultsToTrueAndReachesRaftd) {
  auto def = Load({});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_TRUE(def->config.strict_reconfig_check);
  EXPECT_TRUE(def->config.ToComponentFlags().strict_reconfig_check);
  auto off = Load({"--strict-reconfig-check=false"});
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_FALSE(off->config.strict_reconfig_check);
  auto env = Load({}, {{"ETCD_STRICT_RECONFIG_CHECK", "false"}});
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  EXPECT_FALSE(env->config.strict_reconfig_check);
  TempFile file("[cluster]\nstrict-reconfig-check = false\n");
  auto toml = Load({"--config-file", file.path()});
  ASSERT_TRUE(toml.ok()) << toml.status().ToString();
  EXPECT_FALSE(toml->config.strict_reconfig_check);

  ComponentFlags f = off->config.ToComponentFlags();
  f.segment = "s";
  f.data_dir = "/d";
  std::vector<std::string> args = f.ToArgs();
  std::vector<char*> argv = {const_cast<char*>("x")};
  for (auto& a : args) argv.push_back(a.data());
  auto back = ComponentFlags::Parse(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_FALSE(back->strict_reconfig_check);
  f.strict_reconfig_check = true;
  args = f.ToArgs();
  argv = {const_cast<char*>("x")};
  for (auto& a : args) argv.push_back(a.data());
  back = ComponentFlags::Parse(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->strict_reconfig_check);
}

TEST(Config, UnknownFlagIsAUsageErrorWithGoFlagText) {
  auto loaded = Load({"--no-such-flag=1"});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(), "flag provided but not defined: -no-such-flag");
}

TEST(Config, SyntaxErrorsUseGoFlagTexts) {
  EXPECT_EQ(Load({"--name"}).status().message(), "flag needs an argument: -name");
  EXPECT_EQ(Load({"--max-txn-ops=abc"}).status().message(),
            "invalid value \"abc\" for flag -max-txn-ops: parse error");
  EXPECT_EQ(Load({"--client-cert-auth", "false"}).status().message(),
            "'false' is not a valid flag");
  EXPECT_EQ(Load({"---name=x"}).status().message(), "bad flag syntax: ---name=x");
  EXPECT_EQ(Load({"--initial-cluster-state=old"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Load({"--heartbeat-interval=99999999999"}).status().message(),
            "invalid value \"99999999999\" for flag -heartbeat-interval: value out of range");
  // Go refuses durations beyond int64 nanoseconds (~292 years); the frontend's conversion
  // of this one overflowed (undefined behaviour) instead of failing.
  EXPECT_EQ(Load({"--watch-progress-notify-interval=2562048h"}).status().message(),
            "invalid value \"2562048h\" for flag -watch-progress-notify-interval: "
            "time: invalid duration \"2562048h\"");
  EXPECT_TRUE(Load({"--watch-progress-notify-interval=2562047h"}).ok());
}

TEST(Config, HelpAndVersionAreActions) {
  EXPECT_EQ(Load({"--help"})->action, LoadedConfig::Action::kPrintHelp);
  EXPECT_EQ(Load({"-h"})->action, LoadedConfig::Action::kPrintHelp);
  EXPECT_EQ(Load({"--version"})->action, LoadedConfig::Action::kPrintVersion);
  std::string v = VersionText();
  EXPECT_EQ(v.rfind("rusd Version: ", 0), 0u) << v;
  EXPECT_NE(v.find("\netcd API Version: 3.5."), std::string::npos) << v;
}

TEST(Config, HelpListsEveryFlagWithItsDefault) {
  std::string help = HelpText();
  for (const auto& f : AllFlagNames()) {
    EXPECT_NE(help.find("  --" + f + " '"), std::string::npos) << f;
  }
  EXPECT_NE(help.find("--max-request-bytes '1572864'"), std::string::npos);
  EXPECT_NE(help.find("--initial-cluster-token 'etcd-cluster'"), std::string::npos);
}

TEST(Config, MetricsUrlsAreImplementedForHttpOnly) {
  auto ok = Load({"--listen-metrics-urls=http://127.0.0.1:2381"});
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->warnings.empty());
  auto tls = Load({"--listen-metrics-urls=https://127.0.0.1:2381"});
  ASSERT_FALSE(tls.ok());
  EXPECT_NE(tls.status().message().find("only http is implemented yet"), std::string::npos);
}

TEST(Config, ElectionTimeoutMustBeFiveHeartbeats) {
  auto loaded = Load({"--heartbeat-interval=300", "--election-timeout=1000"});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(loaded.status().message(),
            "--election-timeout[1000ms] should be at least as 5 times as "
            "--heartbeat-interval[300ms]");
  EXPECT_TRUE(Load({"--heartbeat-interval=200", "--election-timeout=1000"}).ok());
}

TEST(Config, UrlsAreValidated) {
  auto bad = Load({"--listen-client-urls=localhost:2379"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("URL scheme must be http, https, unix, or unixs"),
            std::string::npos);
  EXPECT_NE(Load({"--advertise-client-urls=http://host"}).status().message().find("host:port"),
            std::string::npos);
  EXPECT_NE(Load({"--initial-advertise-peer-urls=http://h:1/x"}).status().message().find("path"),
            std::string::npos);
  EXPECT_EQ(Load({"--listen-client-urls=http://127.0.0.1:5"}).status().message(),
            "--advertise-client-urls is required when --listen-client-urls is set explicitly");
}

TEST(Config, InitialClusterMustContainThisMemberWithItsAdvertisedUrls) {
  EXPECT_EQ(Load({"--initial-cluster=other=http://localhost:2380"}).status().message(),
            "couldn't find local name \"default\" in the initial cluster configuration");
  EXPECT_EQ(Load({"--initial-cluster=default=http://h:2380"}).status().message(),
            "--initial-cluster has default=http://h:2380 but missing from "
            "--initial-advertise-peer-urls=http://localhost:2380");
  auto three = Load({"--name=a", "--initial-advertise-peer-urls=http://h1:2380",
                     "--initial-cluster=a=http://h1:2380,b=http://h2:2380,c=http://h3:2380"});
  ASSERT_TRUE(three.ok()) << three.status().ToString();
  EXPECT_TRUE(three->warnings.empty());  // multi-member clusters run (raftd/transport)
}

TEST(ComponentFlags, MembersRoundTripWithAwkwardNames) {
  ComponentFlags f;
  f.segment = "s";
  f.data_dir = "/d";
  f.members = {{0x1, "plain", {"http://127.0.0.1:2380"}},
               {0xabcdef0123456789ull, "a,b=c|d%e", {"http://h1:2380", "http://[::1]:2381"}}};
  f.listen_peer_urls = {"http://127.0.0.1:2380"};
  f.advertise_client_urls = {"http://127.0.0.1:2379", "http://10.0.0.1:2379"};
  std::vector<std::string> args = f.ToArgs();
  std::vector<char*> argv = {const_cast<char*>("x")};
  for (auto& a : args) argv.push_back(a.data());
  auto back = ComponentFlags::Parse(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->members, f.members);
  EXPECT_EQ(back->listen_peer_urls, f.listen_peer_urls);
  EXPECT_EQ(back->advertise_client_urls, f.advertise_client_urls);
  EXPECT_TRUE(back->experimental_native_grpc);  // the default: nothing on the command line
  f.experimental_native_grpc = false;
  args = f.ToArgs();
  argv.resize(1);
  for (auto& a : args) argv.push_back(a.data());
  back = ComponentFlags::Parse(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_FALSE(back->experimental_native_grpc);
  char bad0[] = "x", bad1[] = "--segment=s", bad2[] = "--data-dir=d", bad3[] = "--members=zz=a=b";
  char* bad[] = {bad0, bad1, bad2, bad3};
  EXPECT_FALSE(ComponentFlags::Parse(4, bad).ok());
}

TEST(Config, EnvironmentUsesEtcdNamesAndRusdWins) {
  auto loaded = Load({}, {{"ETCD_NAME", "from-etcd"},
                          {"ETCD_MAX_TXN_OPS", "11"},
                          {"RUSD_MAX_TXN_OPS", "22"},
                          {"ETCD_DATA_DIR", "/tmp/d"},
                          {"ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:4000"},
                          {"ETCD_ADVERTISE_CLIENT_URLS", "http://127.0.0.1:4000"},
                          {"ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", "true"},
                          {"PATH", "/bin"}});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->config.name, "from-etcd");
  EXPECT_EQ(loaded->config.max_txn_ops, 22u);
  EXPECT_EQ(loaded->config.data_dir, "/tmp/d");
  EXPECT_EQ(loaded->config.listen_client_urls, std::vector<std::string>{"http://127.0.0.1:4000"});
  EXPECT_TRUE(loaded->config.experimental_initial_corrupt_check);
}

TEST(Config, BadEnvironmentValueNamesTheVariable) {
  auto loaded = Load({}, {{"ETCD_SNAPSHOT_COUNT", "many"}});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "invalid value \"many\" for ETCD_SNAPSHOT_COUNT: parse error");
}

TEST(Config, UnrecognizedEnvironmentVariableIsWarnedAbout) {
  auto loaded = Load({}, {{"ETCD_NAMEE", "typo"}});
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->warnings.size(), 1u);
  EXPECT_EQ(loaded->warnings[0], "unrecognized environment variable ETCD_NAMEE=typo");
}

TEST(Config, PrecedenceIsFlagsThenEnvThenFileThenDefaults) {
  TempFile file(R"(
[server]
name = "from-file"
log-level = "debug"

[raft]
heartbeat_interval = 50   # underscores work too
election-timeout = 500

[limits]
max-txn-ops = 1
max-request-bytes = 2
quota-backend-bytes = 3
)");
  auto loaded = Load({"--config-file", file.path(), "--max-txn-ops=100"},
                     {{"ETCD_MAX_TXN_OPS", "10"},
                      {"ETCD_MAX_REQUEST_BYTES", "20"},
                      {"RUSD_NAME", "from-env"}});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Config& c = loaded->config;
  EXPECT_EQ(c.max_txn_ops, 100u);        // flag beats env and file
  EXPECT_EQ(c.max_request_bytes, 20u);   // env beats file
  EXPECT_EQ(c.name, "from-env");         // env beats file
  EXPECT_EQ(c.quota_backend_bytes, 3u);  // file beats default
  EXPECT_EQ(c.heartbeat_interval_ms, 50u);
  EXPECT_EQ(c.election_timeout_ms, 500u);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.snapshot_count, 100000u);  // default
  EXPECT_EQ(c.data_dir, "from-env.etcd");
  EXPECT_EQ(c.config_file, file.path());
  // The flag shadowed an environment variable: said, not silent.
  ASSERT_EQ(loaded->warnings.size(), 1u);
  EXPECT_NE(loaded->warnings[0].find("ETCD_MAX_TXN_OPS is shadowed"), std::string::npos);
}

TEST(Config, ConfigFileFromEnvironment) {
  TempFile file("[cluster]\ninitial-cluster-token = \"tok\"\n");
  auto loaded = Load({}, {{"ETCD_CONFIG_FILE", file.path()}});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->config.initial_cluster_token, "tok");
}

TEST(Config, ConfigFileListsAndBooleans) {
  TempFile file(R"([network]
listen-client-urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
advertise-client-urls = "http://127.0.0.1:1"
client-cert-auth = true
)");
  auto loaded = Load({"--config-file=" + file.path()});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->config.listen_client_urls.size(), 2u);
  EXPECT_TRUE(loaded->config.client_cert_auth);
}

TEST(Config, ConfigFileErrorsNameTheLine) {
  struct Case {
    const char* text;
    int line;
    const char* fragment;
  };
  const Case cases[] = {
      {"[server]\nname = \"a\"\nbogus = 1\n", 3, "unknown key 'bogus'"},
      {"[server]\n\nmax-txn-ops = 5\n", 3, "belongs in [limits], not [server]"},
      {"name = \"x\"\n", 1, "belongs in [server], not before any table"},
      {"[limits]\nmax-txn-ops = \"5\"\n", 2, "must be an integer, got string"},
      {"[limits]\nmax-txn-ops = -5\n", 2, "must not be negative"},
      {"[network]\nclient-cert-auth = \"yes\"\n", 2, "must be true or false"},
      {"[server]\nlog-level = \"loud\"\n", 2, "invalid value \"loud\" for key 'log-level'"},
      {"[network]\nlisten-client-urls = [\"nope\"]\n", 2, "URL scheme"},
      {"\n\n[servr]\n", 3, "unknown table [servr]"},
      {"[server]\nname = \"a\n", 2, "unterminated string"},
  };
  for (const auto& c : cases) {
    TempFile file(c.text);
    auto loaded = Load({"--config-file", file.path()});
    ASSERT_FALSE(loaded.ok()) << c.text;
    EXPECT_EQ(loaded.status().message().rfind(file.path() + ":" + std::to_string(c.line) + ": ", 0),
              0u)
        << loaded.status().message();
    EXPECT_NE(loaded.status().message().find(c.fragment), std::string::npos)
        << loaded.status().message();
  }
}

TEST(Config, EveryFileKeyHasASection) {
  for (const auto& f : AllFlagNames()) {
    if (f == "config-file") {
      EXPECT_EQ(SectionOfFlag(f), "");
    } else {
      EXPECT_FALSE(SectionOfFlag(f).empty()) << f;
    }
  }
  EXPECT_EQ(SectionOfFlag("name"), "server");
  EXPECT_EQ(SectionOfFlag("listen-client-urls"), "network");
  EXPECT_EQ(SectionOfFlag("initial-cluster"), "cluster");
  EXPECT_EQ(SectionOfFlag("election-timeout"), "raft");
  EXPECT_EQ(SectionOfFlag("max-request-bytes"), "limits");
}

TEST(Config, ComponentFlagsCarryTheResolvedValues) {
  auto loaded = Load({"--max-txn-ops=9", "--log-format=json", "--data-dir=/tmp/z"});
  ASSERT_TRUE(loaded.ok());
  ComponentFlags f = loaded->config.ToComponentFlags();
  EXPECT_EQ(f.max_txn_ops, 9u);
  EXPECT_EQ(f.log_format, "json");
  EXPECT_EQ(f.data_dir, "/tmp/z");
  EXPECT_EQ(f.listen_client_urls, std::vector<std::string>{"http://localhost:2379"});
}

}  // namespace
}  // namespace rusd::supervisor

namespace rusd::supervisor {
namespace {

// The peer transport speaks plain TCP: a cluster with TLS peer URLs could never form, so
// it is refused at start with a clear message; a lone member (kubeadm's single-node
// manifest says https) still starts, without a peer listener.
TEST(Config, TlsPeerUrlsAreRefusedInAClusterAndIgnoredAlone) {
  auto cluster = Load({"--name=a", "--initial-advertise-peer-urls=https://10.0.0.1:2380",
                       "--listen-peer-urls=https://10.0.0.1:2380",
                       "--initial-cluster=a=https://10.0.0.1:2380,b=https://10.0.0.2:2380"});
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().message(),
            "--initial-cluster: TLS peer URLs are not supported yet (use http://): "
            "https://10.0.0.1:2380");
  auto joining = Load({"--name=a", "--initial-advertise-peer-urls=http://10.0.0.1:2380",
                       "--listen-peer-urls=https://10.0.0.1:2380",
                       "--initial-cluster=a=http://10.0.0.1:2380",
                       "--initial-cluster-state=existing"});
  ASSERT_FALSE(joining.ok());
  EXPECT_NE(joining.status().message().find("--listen-peer-urls: TLS peer URLs are not supported"),
            std::string::npos);
  auto alone = Load({"--name=a", "--initial-advertise-peer-urls=https://10.0.0.1:2380",
                     "--listen-peer-urls=https://10.0.0.1:2380",
                     "--initial-cluster=a=https://10.0.0.1:2380"});
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  EXPECT_TRUE(alone->config.ToComponentFlags().listen_peer_urls.empty());
  bool warned = false;
  for (const auto& w : alone->warnings) warned |= w.find("TLS peer URLs") != std::string::npos;
  EXPECT_TRUE(warned);
  // Plain http peers are passed on, even alone (it may grow with member add).
  auto plain = Load({});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->config.ToComponentFlags().listen_peer_urls,
            std::vector<std::string>{"http://localhost:2380"});
}

}  // namespace
}  // namespace rusd::supervisor
