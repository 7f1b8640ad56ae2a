// Process-level tests of the rusd supervisor: real `rusd` processes, real signals, real
// /proc and /dev/shm.
//
// Each test runs twice: with stub components (supervisor/testdata/stub_component.cc,
// always available: they pin the supervisor's own behaviour) and with the real
// rusd-frontend, rusd-raftd and rusd-stored from the build's bin directory (skipped, with a
// message, while any of them is missing from it; SUPERVISOR_TEST_BIN_DIR overrides it).
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "ipc/segment.h"
#include "supervisor/data_dir_lock.h"
#include "supervisor/node_identity.h"
#include "common/free_port_for_tests.h"

namespace rusd::supervisor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const char* const kComponents[] = {"rusd-frontend", "rusd-raftd", "rusd-stored"};

// Upper bound for waits on things that take a second or two on an idle machine (a node
// coming up, a hung component found after its 5 s heartbeat timeout and restarted). The
// waits poll a condition, so a generous bound costs nothing when the machine is fast; tight
// bounds made these tests fail on a machine loaded by parallel builds and tests.
constexpr auto kSlowMachineBound = std::chrono::seconds(60);

using test_support::FreePort;

struct ProcInfo {
  pid_t ppid = 0;
  char state = '?';
  std::string name;  // base name of argv[0]
};

bool ReadProc(pid_t pid, ProcInfo* out) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(text.substr(close + 2));
  rest >> out->state >> out->ppid;
  std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
  std::string argv0;
  std::getline(cmd, argv0, '\0');
  out->name = fs::path(argv0).filename().string();
  return true;
}

bool Alive(pid_t pid) {
  ProcInfo p;
  return ReadProc(pid, &p) && p.state != 'Z' && p.state != 'X';
}

// Live children of `parent`, by component name.
std::map<std::string, pid_t> ChildrenOf(pid_t parent) {
  std::map<std::string, pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    pid_t pid = std::atoi(e.path().filename().c_str());
    ProcInfo p;
    if (pid > 0 && ReadProc(pid, &p) && p.ppid == parent && p.state != 'Z') out[p.name] = pid;
  }
  return out;
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

struct BinDirKind {
  const char* label;
  bool stub;
};

class ProcessTest : public ::testing::TestWithParam<BinDirKind> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rusd_process_test_XXXXXX";
    root_ = ::mkdtemp(tmpl);
    data_dir_ = root_ + "/data";
    if (GetParam().stub) {
      // rusd finds its components beside its own executable (/proc/self/exe), so the
      // stub setup needs a real copy of rusd next to the stubs.
      bin_dir_ = root_ + "/bin";
      fs::create_directories(bin_dir_);
      fs::copy_file(RUSD_BINARY_PATH, bin_dir_ + "/rusd");
      for (const char* c : kComponents) fs::create_symlink(STUB_COMPONENT_PATH, bin_dir_ + "/" + c);
    } else {
      // SUPERVISOR_TEST_BIN_DIR points the real-component tests at another bin directory
      // holding rusd and the three components (e.g. an install or another build).
      const char* override_dir = std::getenv("SUPERVISOR_TEST_BIN_DIR");
      bin_dir_ = override_dir ? override_dir : fs::path(RUSD_BINARY_PATH).parent_path().string();
      for (const char* c : {"rusd", "rusd-frontend", "rusd-raftd", "rusd-stored"}) {
        if (::access((bin_dir_ + "/" + c).c_str(), X_OK) != 0) {
          GTEST_SKIP() << c << " is not in " << bin_dir_
                       << " yet: build it to run the process tests with the real components";
        }
      }
    }
    int client = FreePort(), peer = FreePort();
    client_url_ = "http://127.0.0.1:" + std::to_string(client);
    peer_url_ = "http://127.0.0.1:" + std::to_string(peer);
    segment_ = ipc::Segment::NameForDataDir(data_dir_);
  }

  void TearDown() override {
    for (pid_t pid : started_) {
      if (Alive(pid)) ::kill(pid, SIGKILL);
      int status;
      ::waitpid(pid, &status, 0);
    }
    if (HasFailure()) {
      for (size_t i = 0; i < started_.size(); ++i) {
        std::ifstream log(LogPath(i));
        std::cerr << "---- rusd #" << i << " log ----\n" << log.rdbuf() << "\n";
      }
    }
    std::error_code ec;
    fs::remove_all(root_, ec);
    ipc::Segment::Remove(segment_);
  }

  std::string LogPath(size_t i) const { return root_ + "/rusd." + std::to_string(i) + ".log"; }

  // Starts rusd on this test's data dir; `env` is added to the environment.
  pid_t StartRusd(const std::vector<std::string>& env = {},
                  const std::vector<std::string>& extra_args = {}) {
    std::vector<std::string> args = {
        bin_dir_ + "/rusd",
        "--data-dir=" + data_dir_,
        "--listen-client-urls=" + client_url_,
        "--advertise-client-urls=" + client_url_,
        "--listen-peer-urls=" + peer_url_,
        "--initial-advertise-peer-urls=" + peer_url_,
        "--initial-cluster=default=" + peer_url_,
    };
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::string log = LogPath(started_.size());
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    started_.push_back(pid);
    return pid;
  }

  std::string Log(size_t i) const {
    std::ifstream in(LogPath(i));
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  // Waits until rusd `pid` runs all three components and says it is ready.
  std::map<std::string, pid_t> WaitUp(pid_t pid, size_t log_index = 0) {
    std::map<std::string, pid_t> kids;
    bool up = WaitFor(
        [&] {
          kids = ChildrenOf(pid);
          return kids.size() == 3 &&
                 Log(log_index).find("ready to serve client requests") != std::string::npos;
        },
        kSlowMachineBound);
    EXPECT_TRUE(up) << "rusd pid " << pid << " did not bring up its components";
    return kids;
  }

  // waitpid with a timeout; returns the exit status or -1.
  int WaitExit(pid_t pid, std::chrono::milliseconds timeout) {
    int status = -1;
    bool done = WaitFor([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
    return done ? status : -1;
  }

  bool SegmentExists() const { return fs::exists("/dev/shm/" + segment_); }

  std::string root_, data_dir_, bin_dir_, client_url_, peer_url_, segment_;
  std::vector<pid_t> started_;
};

TEST_P(ProcessTest, KilledComponentIsRestartedWhileTheOthersKeepRunning) {
  pid_t rusd = StartRusd();
  auto before = WaitUp(rusd);
  ASSERT_EQ(before.size(), 3u);
  auto segment = ipc::Segment::Open(segment_);
  ASSERT_TRUE(segment.ok()) << segment.status().ToString();
  auto& slot = (*segment)->component(ipc::Component::kRaftd);
  EXPECT_EQ(slot.pid.load(), before["rusd-raftd"]);
  uint64_t epoch = slot.epoch.load();

  ASSERT_EQ(::kill(before["rusd-raftd"], SIGKILL), 0);
  std::map<std::string, pid_t> after;
  ASSERT_TRUE(WaitFor(
      [&] {
        after = ChildrenOf(rusd);
        return after.count("rusd-raftd") && after["rusd-raftd"] != before["rusd-raftd"];
      },
      10s));
  EXPECT_EQ(after["rusd-frontend"], before["rusd-frontend"]);
  EXPECT_EQ(after["rusd-stored"], before["rusd-stored"]);
  // Bumped when reaped and again when respawned; the pid slot names the new process.
  EXPECT_TRUE(WaitFor([&] { return slot.pid.load() == after["rusd-raftd"]; }, 2s));
  EXPECT_EQ(slot.epoch.load(), epoch + 2);
  EXPECT_TRUE(Alive(rusd));
  EXPECT_NE(Log(0).find("rusd-raftd (pid " + std::to_string(before["rusd-raftd"]) +
                        ") was killed by signal 9"),
            std::string::npos);
}

TEST_P(ProcessTest, SigtermStopsEverythingAndRemovesTheSegment) {
  pid_t rusd = StartRusd();
  auto kids = WaitUp(rusd);
  ASSERT_TRUE(SegmentExists());
  ASSERT_EQ(::kill(rusd, SIGTERM), 0);
  int status = WaitExit(rusd, 15s);
  ASSERT_NE(status, -1) << "rusd did not exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  for (const auto& [name, pid] : kids) EXPECT_FALSE(Alive(pid)) << name << " outlived rusd";
  EXPECT_FALSE(SegmentExists()) << "/dev/shm/" << segment_ << " left behind";
  EXPECT_TRUE(DataDirLock::Acquire(data_dir_).ok()) << "lock not released";
}

// Tests that need the real components (the stubs bind no port).
class RealProcessTest : public ProcessTest {};

TEST_P(RealProcessTest, ClientPortHeldByAnotherProcessStopsTheNodeWithoutRestarts) {
  // Hold the client port the way another server would.
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(std::stoi(client_url_.substr(client_url_.rfind(':') + 1)));
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(holder, 4), 0);

  pid_t rusd = StartRusd();
  int status = WaitExit(rusd, 15s);
  ::close(holder);
  ASSERT_NE(status, -1) << "rusd kept running while its client port was taken";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status;
  std::string log = Log(0);
  EXPECT_NE(log.find("rusd-frontend cannot start with this configuration; stopping the node"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("restarting rusd-frontend"), std::string::npos) << log;
  EXPECT_FALSE(SegmentExists()) << "/dev/shm/" << segment_ << " left behind";
}

TEST_P(ProcessTest, SecondRusdOnTheSameDataDirFails) {
  pid_t first = StartRusd();
  auto kids = WaitUp(first);
  pid_t second = StartRusd();
  int status = WaitExit(second, kSlowMachineBound);
  ASSERT_NE(status, -1) << "second rusd kept running";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status;
  EXPECT_NE(Log(1).find("is already in use by another rusd (pid " + std::to_string(first) + ")"),
            std::string::npos)
      << Log(1);
  // The first node is untouched.
  EXPECT_EQ(ChildrenOf(first), kids);
  EXPECT_TRUE(SegmentExists());
}

TEST_P(ProcessTest, KilledSupervisorTakesItsChildrenAndARestartReclaimsTheSegment) {
  pid_t first = StartRusd();
  auto kids = WaitUp(first);
  std::ifstream id_file(NodeIdentityPath(data_dir_));
  std::string identity((std::istreambuf_iterator<char>(id_file)), std::istreambuf_iterator<char>());
  ASSERT_NE(identity.find("member_id="), std::string::npos);

  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_NE(WaitExit(first, 5s), -1);
  for (const auto& [name, pid] : kids) {
    EXPECT_TRUE(WaitFor([pid = pid] { return !Alive(pid); }, 5s)) << name << " survived (PDEATHSIG)";
  }
  EXPECT_TRUE(SegmentExists()) << "a SIGKILLed supervisor cannot have removed its segment";

  pid_t second = StartRusd();
  auto again = WaitUp(second, 1);
  EXPECT_EQ(again.size(), 3u);
  std::ifstream id_again(NodeIdentityPath(data_dir_));
  EXPECT_EQ(identity, std::string((std::istreambuf_iterator<char>(id_again)),
                                  std::istreambuf_iterator<char>()));
  EXPECT_NE(Log(1).find("restarting member"), std::string::npos);
}

TEST_P(ProcessTest, HungComponentIsKilledAndRestarted) {
  pid_t rusd = StartRusd();
  auto before = WaitUp(rusd);
  ASSERT_EQ(::kill(before["rusd-stored"], SIGSTOP), 0);  // alive, but its heartbeat stops
  std::map<std::string, pid_t> after;
  ASSERT_TRUE(WaitFor(
      [&] {
        after = ChildrenOf(rusd);
        return after.count("rusd-stored") && after["rusd-stored"] != before["rusd-stored"];
      },
      kSlowMachineBound));
  EXPECT_FALSE(Alive(before["rusd-stored"]));
  EXPECT_EQ(after["rusd-raftd"], before["rusd-raftd"]);
  EXPECT_NE(Log(0).find("heartbeat has not moved"), std::string::npos);
}

// Runs `rusd args...` to completion; returns the exit status and stdout+stderr.
std::pair<int, std::string> RunRusd(const std::vector<std::string>& args) {
  std::string cmd = std::string(RUSD_BINARY_PATH);
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(RusdCommandLine, VersionPrintsRusdAndEtcdApiVersions) {
  auto [code, out] = RunRusd({"--version"});
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out.rfind("rusd Version: 0.", 0), 0u) << out;
  EXPECT_NE(out.find("\netcd API Version: 3.5."), std::string::npos) << out;
}

TEST(RusdCommandLine, HelpListsFlagsWithDefaults) {
  auto [code, out] = RunRusd({"--help"});
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("--data-dir '${name}.etcd'"), std::string::npos) << out;
  EXPECT_NE(out.find("--election-timeout '1000'"), std::string::npos) << out;
}

TEST(RusdCommandLine, UnknownFlagExitsWithStatus2) {
  auto [code, out] = RunRusd({"--listen-client-url=http://127.0.0.1:1"});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(out.rfind("flag provided but not defined: -listen-client-url\n", 0), 0u) << out;
}

TEST(RusdCommandLine, InvalidCombinationExitsWithStatus1AndEtcdsText) {
  auto [code, out] = RunRusd({"--heartbeat-interval=300"});
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("error verifying flags, --election-timeout[1000ms] should be at least as 5 "
                     "times as --heartbeat-interval[300ms]"),
            std::string::npos)
      << out;
}

TEST(RusdCommandLine, UncreatableDataDirIsAClearError) {
  auto [code, out] = RunRusd({"--data-dir=/proc/rusd-cannot-be-here"});
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("cannot create data dir /proc/rusd-cannot-be-here"), std::string::npos) << out;
}

// GET http://127.0.0.1:<port><path>; returns the whole response ("" if no connection).
std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ssize_t ignored = ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  (void)ignored;
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// Behaviours only a stub can provoke on purpose.
class StubProcessTest : public ProcessTest {};

TEST_P(StubProcessTest, CrashLoopStopsTheNode) {
  pid_t rusd = StartRusd({"STUB_CRASH_COMPONENT=raftd"});
  int status = WaitExit(rusd, 20s);
  ASSERT_NE(status, -1) << "rusd kept restarting a crashing component";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status;
  EXPECT_NE(Log(0).find("crash loop"), std::string::npos) << Log(0);
  EXPECT_TRUE(ChildrenOf(rusd).empty());
  EXPECT_FALSE(SegmentExists());
}

// stored exits 75 (kExitRestartRequested) after installing a snapshot: restarted at once,
// never counted toward the crash loop.
TEST_P(StubProcessTest, RequestedRestartIsNotACrash) {
  pid_t rusd = StartRusd({"STUB_CRASH_COMPONENT=stored", "STUB_CRASH_CODE=75"});
  std::this_thread::sleep_for(3s);
  ASSERT_TRUE(Alive(rusd)) << Log(0);
  size_t restarts = 0;
  const std::string log = Log(0);
  for (size_t at = log.find("asked to be restarted"); at != std::string::npos;
       at = log.find("asked to be restarted", at + 1)) {
    ++restarts;
  }
  EXPECT_GT(restarts, 6u) << log;  // more than the crash-loop limit of 5 in 30 s
  EXPECT_EQ(log.find("crash loop"), std::string::npos);
  ASSERT_EQ(::kill(rusd, SIGTERM), 0);
  int status = WaitExit(rusd, 20s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

TEST_P(StubProcessTest, ComponentIgnoringSigtermIsKilledAfterTheGracePeriod) {
  pid_t rusd = StartRusd({"STUB_IGNORE_SIGTERM=1"});
  auto kids = WaitUp(rusd);
  ASSERT_EQ(::kill(rusd, SIGTERM), 0);
  int status = WaitExit(rusd, 20s);
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (const auto& [name, pid] : kids) EXPECT_FALSE(Alive(pid)) << name;
  EXPECT_NE(Log(0).find("did not stop in time; SIGKILL"), std::string::npos);
}

// kubeadm probes etcd on --listen-metrics-urls (/health); rusd relays to the frontend.
TEST_P(StubProcessTest, MetricsUrlRelaysHealthToTheFrontend) {
  int metrics_port = FreePort();
  pid_t rusd = StartRusd({}, {"--listen-metrics-urls=http://127.0.0.1:" + std::to_string(metrics_port)});
  WaitUp(rusd);
  // Nothing serves the client URL (stub frontend): 503 with etcd's JSON shape.
  std::string down = HttpGet(metrics_port, "/health?serializable=true");
  EXPECT_EQ(down.rfind("HTTP/1.1 503", 0), 0u) << down;
  EXPECT_NE(down.find("{\"health\":\"false\""), std::string::npos) << down;
  EXPECT_EQ(HttpGet(metrics_port, "/nope").rfind("HTTP/1.1 404", 0), 0u);

  // Play the frontend: answer one request on the client port, then compare.
  int client_port = std::stoi(client_url_.substr(client_url_.rfind(':') + 1));
  int srv = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(client_port));
  ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::listen(srv, 1);
  std::string seen_request;
  std::thread frontend([&] {
    int c = ::accept(srv, nullptr, nullptr);
    char buf[4096];
    ssize_t n = ::recv(c, buf, sizeof buf, 0);
    if (n > 0) seen_request.assign(buf, static_cast<size_t>(n));
    std::string resp =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 34\r\n\r\n"
        "{\"health\":\"true\",\"reason\":\"\"}\n\n";
    ssize_t ignored = ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    (void)ignored;
    ::close(c);
  });
  std::string up = HttpGet(metrics_port, "/health?exclude=NOSPACE&serializable=true");
  frontend.join();
  ::close(srv);
  EXPECT_EQ(up.rfind("HTTP/1.1 200 OK", 0), 0u) << up;
  EXPECT_NE(up.find("{\"health\":\"true\""), std::string::npos) << up;
  EXPECT_EQ(seen_request.rfind("GET /health?exclude=NOSPACE&serializable=true HTTP/1.1\r\n", 0), 0u)
      << seen_request;
}

// The supervisor itself serves /metrics (prometheus-cpp's Exposer) and /livez, and gates
// /readyz, whether or not a frontend answers (the stubs serve no HTTP).
TEST_P(StubProcessTest, MetricsUrlServesMetricsAndProbesItself) {
  int metrics_port = FreePort();
  pid_t rusd = StartRusd({}, {"--listen-metrics-urls=http://127.0.0.1:" + std::to_string(metrics_port)});
  auto kids = WaitUp(rusd);
  std::string metrics = HttpGet(metrics_port, "/metrics");
  EXPECT_EQ(metrics.rfind("HTTP/1.1 200", 0), 0u) << metrics.substr(0, 300);
  for (const char* want : {"\netcd_server_has_leader 0\n", "\nrusd_component_up{component=\"raftd\"} 1\n",
                           "\nrusd_component_restarts_total{component=\"stored\"} 0\n",
                           "\nprocess_resident_memory_bytes{component=\"supervisor\"} ",
                           "\netcd_server_quota_backend_bytes 2147483648\n",
                           "# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n"}) {
    EXPECT_NE(metrics.find(want), std::string::npos) << want;
  }
  std::string livez = HttpGet(metrics_port, "/livez?verbose");
  EXPECT_EQ(livez.rfind("HTTP/1.1 200", 0), 0u) << livez;
  EXPECT_NE(livez.find("[+]raftd ok\n"), std::string::npos) << livez;
  // The stubs elect no leader: not ready, and said why.
  std::string readyz = HttpGet(metrics_port, "/readyz");
  EXPECT_EQ(readyz.rfind("HTTP/1.1 503", 0), 0u) << readyz;
  EXPECT_NE(readyz.find("[-]raft failed: no leader"), std::string::npos) << readyz;

  // A killed component shows in the restart counter, and /livez keeps answering.
  ASSERT_EQ(::kill(kids.at("rusd-stored"), SIGKILL), 0);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::string now;
  while (std::chrono::steady_clock::now() < deadline) {
    now = HttpGet(metrics_port, "/metrics");
    if (now.find("\nrusd_component_restarts_total{component=\"stored\"} 1\n") != std::string::npos) break;
    EXPECT_EQ(HttpGet(metrics_port, "/livez").rfind("HTTP/1.1 200", 0), 0u);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(now.find("\nrusd_component_restarts_total{component=\"stored\"} 1\n"), std::string::npos);
  EXPECT_NE(now.find("\nrusd_component_restarts_total{component=\"raftd\"} 0\n"), std::string::npos);
}

// IPv6 metrics URLs (kubeadm on single-stack IPv6 probes [::1]:2381) go through a relay,
// because Debian's civetweb has no IPv6.
TEST_P(StubProcessTest, MetricsUrlServesIpv6) {
  int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_addr = in6addr_loopback;
  if (probe < 0 || ::bind(probe, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) {
    if (probe >= 0) ::close(probe);
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  socklen_t len = sizeof any;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&any), &len);
  const int port = ntohs(any.sin6_port);
  ::close(probe);
  pid_t rusd = StartRusd({}, {"--listen-metrics-urls=http://[::1]:" + std::to_string(port)});
  WaitUp(rusd);
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&any), sizeof any), 0) << std::strerror(errno);
  std::string req = "GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  EXPECT_NE(out.find("\r\n\r\nok\n"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Supervisor, ProcessTest,
                         ::testing::Values(BinDirKind{"StubComponents", true},
                                           BinDirKind{"RealComponents", false}),
                         [](const auto& info) { return std::string(info.param.label); });
INSTANTIATE_TEST_SUITE_P(Supervisor, RealProcessTest,
                         ::testing::Values(BinDirKind{"RealComponents", false}),
                         [](const auto& info) { return std::string(info.param.label); });
INSTANTIATE_TEST_SUITE_P(Supervisor, StubProcessTest,
                         ::testing::Values(BinDirKind{"StubComponents", true}),
                         [](const auto& info) { return std::string(info.param.label); });

}  // namespace
}  // namespace rusd::supervisor
