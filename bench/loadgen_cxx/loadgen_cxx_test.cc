// rusd-loadgen's transport and workloads against a real single-node rusd (the binaries the
// build makes): every workload runs briefly and must complete ops without errors, a get
// returns the value a put wrote, and a gRPC error in the trailers is an error. Run with the
// gRPC C++ frontend and with --experimental-native-grpc (two HTTP/2 servers to speak to).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/loadgen_cxx/cell.h"
#include "bench/loadgen_cxx/watch_bench.h"
#include "common/free_port_for_tests.h"

namespace rusd::loadgen {
namespace {

using namespace std::chrono_literals;

using test_support::FreePort;

// One rusd node in a temp dir, stopped (SIGTERM, then SIGKILL) and removed at the end.
class RusdNode {
 public:
  explicit RusdNode(const std::vector<std::string>& extra) {
    char tmpl[] = "/tmp/loadgen-cxx-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    port_ = FreePort();
    const std::string client = "http://127.0.0.1:" + std::to_string(port_);
    const std::string peer = "http://127.0.0.1:" + std::to_string(FreePort());
    std::vector<std::string> args = {RUSD_BINARY_PATH,
                                     "--data-dir=" + dir_ + "/data",
                                     "--listen-client-urls=" + client,
                                     "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=default=" + peer};
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string log = dir_ + "/rusd.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~RusdNode() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      for (int i = 0; i < 200; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = 0;
          break;
        }
        std::this_thread::sleep_for(50ms);
      }
      if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = 0;
};

std::string RangeFrame(const std::string& key, bool serializable) {
  etcdserverpb::RangeRequest r;
  r.set_key(key);
  r.set_serializable(serializable);
  return GrpcFrame(r);
}

class LoadgenAgainstRusd : public ::testing::TestWithParam<std::vector<std::string>> {
 protected:
  void SetUp() override {
    node_ = std::make_unique<RusdNode>(GetParam());
    // Up = a linearizable Range answers (the node elected itself).
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto c = GrpcConnection::Connect("127.0.0.1", node_->port());
      if (c.ok() && CallOnce(*c.value(), Method::kRange, RangeFrame("probe", false), 2s).ok())
        break;
      std::this_thread::sleep_for(100ms);
    }
    for (int i = 0; i < 2; ++i) {
      auto c = GrpcConnection::Connect("127.0.0.1", node_->port());
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      conns_.push_back(std::move(c.value()));
    }
    ASSERT_TRUE(CallOnce(*conns_[0], Method::kRange, RangeFrame("probe", false)).ok());
  }
  void TearDown() override {
    conns_.clear();
    node_.reset();
  }
  // A small watch run against the node: 10 prefix watchers, 2 connections, 4 putters at
  // 200 puts/s in the steady phase; the test sets watchers, streams, fan-out and duration.
  WatchBenchSpec SmallWatchSpec() const {
    WatchBenchSpec spec;
    spec.name = "rusd";
    spec.host = "127.0.0.1";
    spec.port = node_->port();
    spec.prefix_watchers = 10;
    spec.conns = 2;
    spec.rate = 200;
    spec.putters = 4;
    return spec;
  }
  std::vector<GrpcConnection*> Conns(size_t n) {
    std::vector<GrpcConnection*> out;
    for (size_t i = 0; i < n; ++i) out.push_back(conns_[i].get());
    return out;
  }

  std::unique_ptr<RusdNode> node_;
  std::vector<std::unique_ptr<GrpcConnection>> conns_;
};

TEST_P(LoadgenAgainstRusd, EveryWorkloadCompletesOpsWithoutErrors) {
  constexpr uint64_t kKeyspace = 3000;
  ASSERT_TRUE(PrepareKeyspace(Conns(2), kKeyspace, 8).ok());
  for (const WorkloadInfo& w : AllWorkloads()) {
    for (auto [clients, conns] : {std::pair{1, 1}, std::pair{8, 2}}) {
      CellSpec spec;
      spec.kind = w.kind;
      spec.clients = clients;
      spec.keyspace = kKeyspace;
      spec.duration = 300ms;
      spec.warmup = 50ms;
      spec.threads = conns;  // also exercises one thread per connection
      CellResult r = RunCell(Conns(static_cast<size_t>(conns)), spec);
      EXPECT_GT(r.ops, 0) << w.name << " " << clients << "/" << conns;
      EXPECT_EQ(r.errors, 0) << w.name << " " << clients << "/" << conns << ": " << r.first_error;
      EXPECT_GT(r.p99_ns, 0u) << w.name;
      EXPECT_GE(r.p99_ns, r.p50_ns) << w.name;
      EXPECT_GT(r.seconds, 0.29) << w.name;
    }
  }
}

TEST_P(LoadgenAgainstRusd, GetReturnsTheValueAPutWrote) {
  Rng rng(7);
  const std::string key = MatrixKey(424242), value = RandomValue(rng);
  etcdserverpb::PutRequest put;
  put.set_key(key);
  put.set_value(value);
  ASSERT_TRUE(CallOnce(*conns_[0], Method::kPut, GrpcFrame(put)).ok());
  for (bool serializable : {false, true}) {
    auto got = CallOnce(*conns_[1], Method::kRange, RangeFrame(key, serializable));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    etcdserverpb::RangeResponse resp;
    ASSERT_TRUE(resp.ParseFromString(got.value()));
    ASSERT_EQ(resp.kvs_size(), 1);
    EXPECT_EQ(resp.kvs(0).key(), key);
    EXPECT_EQ(resp.kvs(0).value(), value);
  }
}

TEST_P(LoadgenAgainstRusd, RangeOfAThousandKeysSpansManyDataFrames) {
  ASSERT_TRUE(PrepareKeyspace(Conns(1), 1000, 4).ok());
  etcdserverpb::RangeRequest r;
  r.set_key(MatrixKey(0));
  r.set_range_end(MatrixKey(1000));
  // The default windows hold the whole answer; HTTP/2's initial 64 KB windows need the
  // client's WINDOW_UPDATEs (stream and connection) for the server to finish.
  auto small = GrpcConnection::Connect("127.0.0.1", node_->port(), FlowWindows{65535, 65535});
  ASSERT_TRUE(small.ok());
  for (GrpcConnection* c : {conns_[0].get(), small.value().get()}) {
    for (int round = 0; round < 3; ++round) {
      auto got = CallOnce(*c, Method::kRange, GrpcFrame(r));
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_GT(got.value().size(),
                1000u * (kKeyLen + kValueLen));  // > 16 KB frames, > 64 KB window
      etcdserverpb::RangeResponse resp;
      ASSERT_TRUE(resp.ParseFromString(got.value()));
      ASSERT_EQ(resp.kvs_size(), 1000);
      for (int i = 0; i < 1000; ++i)
        ASSERT_EQ(resp.kvs(i).key(), MatrixKey(static_cast<uint64_t>(i)));
    }
  }
}

TEST_P(LoadgenAgainstRusd, ServerGoingAwayMidCellCountsErrorsAndEndsTheCell) {
  ASSERT_TRUE(PrepareKeyspace(Conns(2), 1000, 4).ok());
  CellSpec spec;
  spec.kind = WorkloadKind::kGetSerializable;
  spec.clients = 8;
  spec.keyspace = 1000;
  spec.duration = 1500ms;
  spec.warmup = 50ms;
  std::thread stopper([&] {
    std::this_thread::sleep_for(400ms);
    node_.reset();  // SIGTERM: the server says GOAWAY and closes its connections
  });
  const auto t0 = std::chrono::steady_clock::now();
  CellResult r = RunCell(Conns(2), spec);
  stopper.join();
  EXPECT_GT(r.ops, 0);
  EXPECT_GT(r.errors, 0);
  EXPECT_FALSE(r.first_error.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  for (auto& c : conns_) EXPECT_FALSE(c->usable());
}

TEST_P(LoadgenAgainstRusd, NonZeroGrpcStatusIsAnError) {
  // etcd: a Range without a key is InvalidArgument ("etcdserver: key is not provided"),
  // reported in the trailers (or a trailers-only response).
  etcdserverpb::RangeRequest r;
  auto got = CallOnce(*conns_[0], Method::kRange, GrpcFrame(r));
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("grpc-status 3"), std::string::npos)
      << got.status().message();
  // The connection stays usable.
  EXPECT_TRUE(CallOnce(*conns_[0], Method::kRange, RangeFrame("probe", true)).ok());
}

TEST_P(LoadgenAgainstRusd, WatchModeDeliversEveryEventAndReportsLatency) {
  WatchBenchSpec spec = SmallWatchSpec();
  spec.cpu_pid = node_->pid();
  spec.watchers = 200;
  spec.fanout_prefix_watchers = 30;
  spec.streams = 20;
  spec.duration = 600ms;
  // Run returns an error unless every watcher was created and the delivery checks (after
  // max, before fanout, and at the end) found each watcher's events equal to the puts.
  auto rs = RunWatchBench(spec);
  ASSERT_TRUE(rs.ok()) << rs.status().ToString();
  ASSERT_EQ(rs.value().size(), 3u);
  const char* phases[] = {"steady", "max", "fanout"};
  for (size_t i = 0; i < 3; ++i) {
    const WatchPhaseResult& r = rs.value()[i];
    SCOPED_TRACE(r.phase);
    EXPECT_EQ(r.phase, phases[i]);
    EXPECT_EQ(r.watchers, i == 2 ? 230 : 210);
    EXPECT_GT(r.puts, 0);
    EXPECT_EQ(r.put_errors, 0);
    // Each put goes to its key's watcher and every prefix watcher; events still in flight
    // at the phase's end are not counted in it, so at most that many.
    const int64_t per_put = 1 + (i == 2 ? 30 : 10);
    EXPECT_LE(r.events, r.puts * per_put);
    EXPECT_GE(r.events, r.puts * per_put / 2);
    EXPECT_GT(r.latency_samples, r.puts / 2);  // the key watcher and one prefix watcher
    EXPECT_GT(r.lat_p50_us, 0);
    EXPECT_GE(r.lat_p99_us, r.lat_p50_us);
    EXPECT_GT(r.put_p50_us, 0);
    EXPECT_GE(r.events_per_response, 1.0);
    EXPECT_GT(r.server_cpu_us_per_event, 0);
    EXPECT_GT(r.loadgen_cpu_cores, 0);
  }
  // Steady is open loop at 200 puts/s: about 120 puts in 600 ms.
  EXPECT_GT(rs.value()[0].puts, 60);
  EXPECT_LT(rs.value()[0].puts, 200);
}

TEST_P(LoadgenAgainstRusd, WatchModeFailsWhenTheServerGoesAway) {
  WatchBenchSpec spec = SmallWatchSpec();
  spec.watchers = 100;
  spec.fanout_prefix_watchers = 0;
  spec.streams = 10;
  spec.duration = 1500ms;
  std::thread stopper([&] {
    std::this_thread::sleep_for(1500ms);  // in the steady phase
    node_.reset();
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = RunWatchBench(spec);
  stopper.join();
  ASSERT_FALSE(rs.ok());
  // A watch stream ended or a put connection was lost (GOAWAY), whichever it saw first.
  const std::string& why = rs.status().message();
  EXPECT_TRUE(why.find("stream") != std::string::npos ||
              why.find("connection") != std::string::npos)
      << why;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
}

INSTANTIATE_TEST_SUITE_P(Frontends, LoadgenAgainstRusd,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{"--experimental-native-grpc"}),
                         [](const auto& info) {
                           return info.param.empty() ? "GrpcCxx" : "NativeGrpc";
                         });

}  // namespace
}  // namespace rusd::loadgen
