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
#include "bench/loadgen_cxx/proc_stats.h"
#include "bench/loadgen_cxx/watch_bench.h"
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


// rusd-loadgen watch: loadgen watch's flags, records and table (watch.go), from
// RunWatchBench; the table adds the loadgen's own CPU per phase.
Status Watch(int argc, char** argv) {
  Flags f(argc, argv);
  auto targets = ParseTargets(f.Get("targets", "127.0.0.1:2379"));
  const std::string pids = f.Get("pids", ""), cpu_pids = f.Get("cpu-pids", "");
  WatchBenchSpec base;
  base.watchers = std::stoi(f.Get("watchers", "10000"));
  base.prefix_watchers = std::stoi(f.Get("prefix-watchers", "100"));
  base.fanout_prefix_watchers = std::stoi(f.Get("fanout-prefix-watchers", "1000"));
  base.streams = std::stoi(f.Get("streams", "100"));
  base.conns = std::stoi(f.Get("conns", "10"));
  auto duration = Duration(f, "duration", "5s");
  base.rate = std::stoi(f.Get("rate", "500"));
  base.putters = std::stoi(f.Get("putters", "16"));
  const std::string out = f.Get("out", "");
  if (Status s = f.Check(); !s.ok()) return s;
  if (!targets.ok()) return targets.status();
  if (!duration.ok()) return duration.status();
  base.duration = duration.value();
  if (base.watchers < 1 || base.streams < 1 || base.conns < 1 || base.rate < 1 ||
      base.putters < 1 || base.prefix_watchers < 0) {
    return Status::InvalidArgument("-watchers, -streams, -conns, -rate, -putters must be >= 1");
  }
  auto pid_map = [](const std::string& s) -> Result<std::map<std::string, int>> {
    std::map<std::string, int> m;
    for (const std::string& part : Split(s, ',')) {
      auto eq = part.find('=');
      if (eq == std::string::npos) return Status::InvalidArgument("bad pid entry " + part);
      m[part.substr(0, eq)] = std::atoi(part.c_str() + eq + 1);
    }
    return m;
  };
  auto mem_of = pid_map(pids);
  auto cpu_of = pid_map(cpu_pids);
  if (!mem_of.ok()) return mem_of.status();
  if (!cpu_of.ok()) return cpu_of.status();

  std::vector<WatchPhaseResult> all;
  for (const Target& t : targets.value()) {
    WatchBenchSpec spec = base;
    spec.name = t.name;
    spec.host = t.host;
    spec.port = t.port;
    spec.mem_pid = mem_of.value()[t.name];
    spec.cpu_pid = cpu_of.value()[t.name];
    auto rs = RunWatchBench(spec);
    if (!rs.ok()) return Status::Internal(t.name + ": " + rs.status().message());
    all.insert(all.end(), rs.value().begin(), rs.value().end());
    if (!out.empty()) {
      std::FILE* fo = std::fopen(out.c_str(), "a");
      if (fo == nullptr) return Status::IoError("open " + out + ": " + std::strerror(errno));
      for (const WatchPhaseResult& r : rs.value()) {
        char nums[1024];
        std::snprintf(nums, sizeof nums,
                      ",\"watchers\":%d,\"puts\":%lld,\"put_errors\":%lld,\"events\":%lld,"
                      "\"events_per_s\":%.3f,\"lat_p50_us\":%.0f,\"lat_p99_us\":%.0f,"
                      "\"put_p50_us\":%.0f,\"put_p99_us\":%.0f,\"events_per_response\":%.4f,"
                      "\"server_cpu_us_per_event\":%.4f,\"mem_per_10k_watchers_kib\":%lld,"
                      "\"create_s\":%.3f,\"latency_samples\":%lld,"
                      "\"loadgen_cpu_us_per_event\":%.4f,\"loadgen_cpu_cores\":%.3f}\n",
                      r.watchers, static_cast<long long>(r.puts),
                      static_cast<long long>(r.put_errors), static_cast<long long>(r.events),
                      r.events_per_s, r.lat_p50_us, r.lat_p99_us, r.put_p50_us, r.put_p99_us,
                      r.events_per_response, r.server_cpu_us_per_event,
                      static_cast<long long>(r.mem_per_10k_kib), r.create_s,
                      static_cast<long long>(r.latency_samples), r.loadgen_cpu_us_per_event,
                      r.loadgen_cpu_cores);
        std::string rec = "{\"kind\":\"watch\",\"loadgen\":\"cxx\",\"system\":" +
                          JsonString(r.system) + ",\"phase\":" + JsonString(r.phase) + nums;
        std::fputs(rec.c_str(), fo);
      }
      if (std::fclose(fo) != 0) return Status::IoError("write " + out + ": " + std::strerror(errno));
    }
  }

  // The table of watch.go's printWatchTable, plus the loadgen's own CPU.
  std::map<std::string, std::map<std::string, WatchPhaseResult>> by;
  for (const WatchPhaseResult& r : all) by[r.phase][r.system] = r;
  const std::string base_name = targets.value().front().name, cand = targets.value().back().name;
  std::printf("%-34s %14s %14s %10s\n", "watch fan-out", base_name.c_str(), cand.c_str(),
              (cand + "/" + base_name).c_str());
  auto ratio = [](double a, double b) {
    if (a == 0) return std::string("-");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", b / a);
    return std::string(buf);
  };
  auto row = [&](const std::string& label, const char* fmt, double a, double b) {
    char line[256];
    std::string f2 = std::string("%-34s ") + fmt + " " + fmt + " %10s\n";
    std::snprintf(line, sizeof line, f2.c_str(), label.c_str(), a, b, ratio(a, b).c_str());
    std::fputs(line, stdout);
  };
  for (const char* ph : {"steady", "max", "fanout"}) {
    if (by.find(ph) == by.end()) continue;
    const WatchPhaseResult b = by[ph][base_name], c = by[ph][cand];
    const std::string p = ph;
    if (p == "fanout") std::printf("%-34s %14d %14d\n", "fanout: watchers", b.watchers, c.watchers);
    row(p + ": events delivered/s", "%14.0f", b.events_per_s, c.events_per_s);
    std::printf("%-34s %14lld %14lld %10s\n", (p + ": puts").c_str(),
                static_cast<long long>(b.puts), static_cast<long long>(c.puts),
                ratio(static_cast<double>(b.puts), static_cast<double>(c.puts)).c_str());
    row(p + ": put-to-event p50 µs", "%14.0f", b.lat_p50_us, c.lat_p50_us);
    row(p + ": put-to-event p99 µs", "%14.0f", b.lat_p99_us, c.lat_p99_us);
    row(p + ": put RPC p50 µs", "%14.0f", b.put_p50_us, c.put_p50_us);
    row(p + ": put RPC p99 µs", "%14.0f", b.put_p99_us, c.put_p99_us);
    row(p + ": events per response", "%14.2f", b.events_per_response, c.events_per_response);
    row(p + ": server CPU µs/event", "%14.2f", b.server_cpu_us_per_event,
        c.server_cpu_us_per_event);
    row(p + ": loadgen CPU µs/event", "%14.2f", b.loadgen_cpu_us_per_event,
        c.loadgen_cpu_us_per_event);
    row(p + ": loadgen CPU cores", "%14.2f", b.loadgen_cpu_cores, c.loadgen_cpu_cores);
    if (b.put_errors + c.put_errors > 0) {
      std::printf("%-34s %14lld %14lld\n", (p + ": put errors").c_str(),
                  static_cast<long long>(b.put_errors), static_cast<long long>(c.put_errors));
    }
  }
  const WatchPhaseResult b = by["max"][base_name], c = by["max"][cand];
  std::printf("%-34s %14lld %14lld %10s\n", "memory per 10,000 watchers KiB",
              static_cast<long long>(b.mem_per_10k_kib), static_cast<long long>(c.mem_per_10k_kib),
              ratio(static_cast<double>(b.mem_per_10k_kib), static_cast<double>(c.mem_per_10k_kib)).c_str());
  row("creating the watchers s", "%14.1f", b.create_s, c.create_s);
  std::fflush(stdout);
  return Status::Ok();
}

}  // namespace
}  // namespace rusd::loadgen

int main(int argc, char** argv) {
  const std::string cmd = argc >= 2 ? argv[1] : "";
  if (cmd != "matrix" && cmd != "watch") {
    std::fprintf(stderr,
                 "usage: rusd-loadgen matrix|watch -targets name=host:port[,...] [flags]  "
                 "(bench/README.md)\n");
    return 2;
  }
  rusd::Status s = cmd == "matrix" ? rusd::loadgen::Matrix(argc - 2, argv + 2)
                                   : rusd::loadgen::Watch(argc - 2, argv + 2);
  if (!s.ok()) {
    std::fprintf(stderr, "rusd-loadgen %s: %s\n", cmd.c_str(), s.message().c_str());
    return 1;
  }
  return 0;
}
