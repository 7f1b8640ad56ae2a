// rusd-loadgen: the request matrix of bench/loadgen (Go, clientv3), from a lean C++ client
// (GrpcConnection: nghttp2 over one epoll thread), so that on a small machine the benchmark
// measures the servers rather than the client. Same command line and the same JSON-line
// records as `loadgen matrix`, so bench/run-*-vs-etcd.sh --loadgen cxx can swap it in and
// `loadgen report` prints the table:
//
//   rusd-loadgen matrix -targets etcd=127.0.0.1:2379,rusd=127.0.0.1:12379 -duration 3s
//       [-workloads LIST] [-shapes 1x1,64x8] [-warmup 300ms] [-keyspace 100000]
//       [-prepare=false] [-op-timeout 10s] [-pids NAME=PID[+PID],...] [-rounds N]
//       [-ops N] [-threads N] [-stream-window BYTES] [-conn-window BYTES] [-out FILE]
//
// Each record also carries the loadgen's own CPU time per op (getrusage over the measured
// window), which on a 2-core machine is the client's share of the cell.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/loadgen_cxx/cell.h"
#include "common/go_duration.h"

namespace rusd::loadgen {
namespace {

void Logf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void Logf(const char* fmt, ...) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  localtime_r(&ts.tv_sec, &t);
  std::fprintf(stderr, "%02d:%02d:%02d.%03ld loadgen-cxx: ", t.tm_hour, t.tm_min, t.tm_sec,
               ts.tv_nsec / 1000000);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

struct Target {
  std::string name, host;
  int port = 0;
};
struct Shape {
  int clients = 0, conns = 0;
};

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, sep);) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

Result<std::vector<Target>> ParseTargets(const std::string& s) {
  std::vector<Target> out;
  for (const std::string& part : Split(s, ',')) {
    Target t;
    std::string ep = part;
    if (auto eq = part.find('='); eq != std::string::npos) {
      t.name = part.substr(0, eq);
      ep = part.substr(eq + 1);
    } else {
      t.name = "server";
    }
    auto colon = ep.rfind(':');
    if (colon == std::string::npos)
      return Status::InvalidArgument("bad target " + part + " (want name=host:port)");
    t.host = ep.substr(0, colon);
    if (t.host.size() > 2 && t.host.front() == '[' && t.host.back() == ']') {
      t.host = t.host.substr(1, t.host.size() - 2);  // [::1]:2379
    }
    t.port = std::atoi(ep.c_str() + colon + 1);
    out.push_back(t);
  }
  if (out.empty()) return Status::InvalidArgument("no -targets given");
  return out;
}

Result<std::vector<Shape>> ParseShapes(const std::string& s) {
  std::vector<Shape> out;
  for (const std::string& part : Split(s, ',')) {
    Shape sh;
    char x = 0;
    if (std::sscanf(part.c_str(), "%d%c%d", &sh.clients, &x, &sh.conns) != 3 || x != 'x' ||
        sh.clients < 1 || sh.conns < 1 || sh.conns > sh.clients) {
      return Status::InvalidArgument("bad shape \"" + part + "\": want CLIENTSxCONNS, e.g. 64x8");
    }
    out.push_back(sh);
  }
  return out;
}

// CPU ticks (user + system, all threads) of pid and its direct children, as the Go
// loadgen's cpuTicksOf (rss.go) counts them: rusd's supervisor and its three components.
Result<int64_t> CpuTicksOf(int pid) {
  auto stat_fields = [](int p, std::string* text) -> bool {
    std::ifstream f("/proc/" + std::to_string(p) + "/stat");
    if (!f) return false;
    std::getline(f, *text);
    auto close = text->rfind(')');
    if (close == std::string::npos) return false;
    *text = text->substr(close + 1);
    return true;
  };
  std::vector<int> pids{pid};
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      int p = std::atoi(e->d_name);
      if (p <= 0) continue;
      std::string rest;
      if (!stat_fields(p, &rest)) continue;
      std::istringstream in(rest);
      std::string state;
      int ppid = 0;
      in >> state >> ppid;
      if (ppid == pid) pids.push_back(p);
    }
    closedir(d);
  }
  int64_t total = 0;
  for (int p : pids) {
    std::string rest;
    if (!stat_fields(p, &rest))
      return Status::NotFound("/proc/" + std::to_string(p) + "/stat unreadable");
    std::istringstream in(rest);
    std::vector<std::string> f;
    for (std::string w; in >> w;) f.push_back(w);
    if (f.size() < 13) return Status::Internal("/proc/" + std::to_string(p) + "/stat: short");
    total += std::stoll(f[11]) + std::stoll(f[12]);  // utime, stime
  }
  return total;
}

Result<int64_t> CpuTicksOfAll(const std::vector<int>& pids) {
  int64_t total = 0;
  for (int p : pids) {
    auto t = CpuTicksOf(p);
    if (!t.ok()) return t.status();
    total += t.value();
  }
  return total;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Flags in Go's flag-package syntax: -name value, -name=value, --name value; bools as
// -name or -name=false.
class Flags {
 public:
  Flags(int argc, char** argv) {
    for (int i = 0; i < argc; ++i) {
      std::string a = argv[i];
      if (a.size() < 2 || a[0] != '-') {
        bad_ = "unexpected argument " + a;
        return;
      }
      a = a.substr(a[1] == '-' ? 2 : 1);
      if (auto eq = a.find('='); eq != std::string::npos) {
        values_[a.substr(0, eq)] = a.substr(eq + 1);
      } else if (a == "prepare") {
        values_[a] = "true";
      } else if (i + 1 < argc) {
        values_[a] = argv[++i];
      } else {
        bad_ = "flag -" + a + " needs a value";
      }
    }
  }
  std::string Get(const std::string& name, const std::string& def) {
    known_.push_back(name);
    auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
  }
  Status Check() const {
    if (!bad_.empty()) return Status::InvalidArgument(bad_);
    for (const auto& [k, v] : values_) {
      if (std::find(known_.begin(), known_.end(), k) == known_.end()) {
        return Status::InvalidArgument("unknown flag -" + k);
      }
    }
    return Status::Ok();
  }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> known_;
  std::string bad_;
};

Result<std::chrono::nanoseconds> Duration(Flags& f, const std::string& name,
                                          const std::string& def) {
  return ParseGoDuration(f.Get(name, def));
}

Status Matrix(int argc, char** argv) {
  Flags f(argc, argv);
  auto targets = ParseTargets(f.Get("targets", "127.0.0.1:2379"));
  auto workloads = SelectWorkloads(f.Get("workloads", "all"));
  auto shapes = ParseShapes(f.Get("shapes", "1x1,64x8"));
  auto duration = Duration(f, "duration", "3s");
  auto warmup = Duration(f, "warmup", "300ms");
  auto op_timeout = Duration(f, "op-timeout", "10s");
  const int64_t ops = std::stoll(f.Get("ops", "0"));
  const uint64_t keyspace = std::stoull(f.Get("keyspace", "100000"));
  const std::string prepare = f.Get("prepare", "true");
  const std::string pids = f.Get("pids", "");
  const int rounds = std::stoi(f.Get("rounds", "1"));
  const int threads = std::stoi(f.Get("threads", "1"));
  const std::string out = f.Get("out", "");
  FlowWindows windows;
  windows.stream = std::stoi(f.Get("stream-window", std::to_string(windows.stream)));
  windows.connection = std::stoi(f.Get("conn-window", std::to_string(windows.connection)));
  if (Status s = f.Check(); !s.ok()) return s;
  for (const Status* s : {&targets.status(), &workloads.status(), &shapes.status(),
                          &duration.status(), &warmup.status(), &op_timeout.status()}) {
    if (!s->ok()) return *s;
  }
  if (keyspace < kRangeKeys) return Status::InvalidArgument("-keyspace must be >= 1000");
  std::map<std::string, std::vector<int>> server_pids;
  for (const std::string& part : Split(pids, ',')) {
    auto eq = part.find('=');
    if (eq == std::string::npos) return Status::InvalidArgument("bad -pids entry " + part);
    for (const std::string& one : Split(part.substr(eq + 1), '+')) {
      server_pids[part.substr(0, eq)].push_back(std::atoi(one.c_str()));
    }
  }

  // One pool per (target, connection count), opened when first needed, reused by every cell.
  std::map<std::string, std::vector<std::unique_ptr<GrpcConnection>>> pools;
  auto pool_for = [&](const Target& t, int conns) -> Result<std::vector<GrpcConnection*>> {
    auto& pool = pools[t.name + "/" + std::to_string(conns)];
    if (pool.empty()) {
      for (int i = 0; i < conns; ++i) {
        auto c = GrpcConnection::Connect(t.host, t.port, windows);
        if (!c.ok()) return c.status();
        // One cheap request per connection, so that no measured op finishes the HTTP/2
        // settings exchange or lazy server-side setup.
        etcdserverpb::RangeRequest warm;
        warm.set_key("bench/warmup");
        warm.set_serializable(true);
        auto r = CallOnce(*c.value(), Method::kRange, GrpcFrame(warm));
        if (!r.ok())
          return Status::Unavailable("first request to " + t.name + ": " + r.status().message());
        pool.push_back(std::move(c.value()));
      }
    }
    std::vector<GrpcConnection*> raw;
    for (auto& c : pool) raw.push_back(c.get());
    return raw;
  };

  std::FILE* outf = nullptr;
  if (!out.empty()) {
    outf = std::fopen(out.c_str(), "a");
    if (outf == nullptr) return Status::IoError("open " + out + ": " + std::strerror(errno));
  }
  struct Closer {
    std::FILE* f;
    ~Closer() {
      if (f) std::fclose(f);
    }
  } closer{outf};

  if (prepare != "false" && prepare != "0") {
    for (const Target& t : targets.value()) {
      auto p = pool_for(t, 8);
      if (!p.ok()) return p.status();
      Logf("%s: writing the %llu-key matrix keyspace", t.name.c_str(),
           static_cast<unsigned long long>(keyspace));
      auto t0 = std::chrono::steady_clock::now();
      if (Status s = PrepareKeyspace(p.value(), keyspace, 32); !s.ok()) {
        return Status::Unavailable(t.name + ": prepare: " + s.message());
      }
      Logf("%s: keyspace written in %.1fs", t.name.c_str(),
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }

  const long hz = sysconf(_SC_CLK_TCK);
  for (int round = 1; round <= rounds; ++round) {
    int cell = 0;
    if (rounds > 1) Logf("matrix round %d of %d", round, rounds);
    for (const WorkloadInfo& w : workloads.value()) {
      for (const Shape& sh : shapes.value()) {
        // Alternate which target goes first, cell by cell and round by round (cell.go).
        std::vector<Target> order = targets.value();
        if ((cell + round) % 2 == 0) std::reverse(order.begin(), order.end());
        ++cell;
        for (const Target& t : order) {
          auto p = pool_for(t, sh.conns);
          if (!p.ok()) return p.status();
          auto sp = server_pids.find(t.name);
          const bool charged = sp != server_pids.end();
          int64_t before = 0, after = 0;
          Status cpu_err;
          CellSpec spec;
          spec.kind = w.kind;
          spec.clients = sh.clients;
          spec.keyspace = keyspace;
          spec.duration = duration.value();
          spec.ops = ops;
          spec.warmup = warmup.value();
          spec.op_timeout = op_timeout.value();
          spec.threads = threads;
          if (charged) {
            spec.at_start = [&] {
              auto r = CpuTicksOfAll(sp->second);
              if (r.ok())
                before = r.value();
              else
                cpu_err = r.status();
            };
            spec.at_end = [&] {
              auto r = CpuTicksOfAll(sp->second);
              if (r.ok())
                after = r.value();
              else if (cpu_err.ok())
                cpu_err = r.status();
            };
          }
          CellResult res = RunCell(p.value(), spec);
          if (!cpu_err.ok()) return Status::Internal(t.name + ": cpu: " + cpu_err.message());
          double cpu_us = 0, lg_us = 0;
          if (res.ops > 0) {
            if (charged)
              cpu_us =
                  static_cast<double>(after - before) * 1e6 / static_cast<double>(hz) / res.ops;
            lg_us = res.loadgen_cpu_seconds * 1e6 / static_cast<double>(res.ops);
          }
          const double p50 = static_cast<double>(res.p50_ns) / 1e6,
                       p99 = static_cast<double>(res.p99_ns) / 1e6;
          Logf(
              "%-6s %-17s %2d/%d  %9.0f ops/s  p50 %7.2fms  p99 %7.2fms  cpu %6.0fus/op  loadgen "
              "%5.1fus/op  errors %lld %s",
              t.name.c_str(), w.name, sh.clients, sh.conns, res.OpsPerSec(), p50, p99, cpu_us,
              lg_us, static_cast<long long>(res.errors), res.first_error.c_str());
          if (outf != nullptr) {
            std::string rec = "{\"system\":" + JsonString(t.name) +
                              ",\"kind\":\"cell\",\"name\":" + JsonString(w.name) +
                              ",\"loadgen\":\"cxx\",\"clients\":" + std::to_string(sh.clients) +
                              ",\"conns\":" + std::to_string(sh.conns);
            char nums[512];
            std::snprintf(
                nums, sizeof nums,
                ",\"ops\":%lld,\"errors\":%lld,\"seconds\":%.6f,\"ops_per_s\":%.3f,\"p50_ms\":%.4f,"
                "\"p99_ms\":%.4f,\"cpu_us_per_op\":%.3f,\"loadgen_cpu_us_per_op\":%.3f",
                static_cast<long long>(res.ops), static_cast<long long>(res.errors), res.seconds,
                res.OpsPerSec(), p50, p99, cpu_us, lg_us);
            rec += nums;
            if (!res.first_error.empty()) rec += ",\"first_error\":" + JsonString(res.first_error);
            rec += "}\n";
            if (std::fputs(rec.c_str(), outf) < 0 || std::fflush(outf) != 0) {
              return Status::IoError("write " + out + ": " + std::strerror(errno));
            }
          }
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace
}  // namespace rusd::loadgen

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "matrix") {
    std::fprintf(
        stderr,
        "usage: rusd-loadgen matrix -targets name=host:port[,...] [flags]  (bench/README.md)\n");
    return 2;
  }
  rusd::Status s = rusd::loadgen::Matrix(argc - 2, argv + 2);
  if (!s.ok()) {
    std::fprintf(stderr, "rusd-loadgen matrix: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}
