// Benchmarks of rusd_mvcc's KvStore on real RocksDB (a temp dir under $TMPDIR):
// put (one entry per ApplyEntries call, and batches of 64), get, range of 1000 keys, txn.
//
//   stored_bench                      Google Benchmark runs
//   stored_bench --open_keys=1000000  loads N keys, reopens, prints open time and RSS
//   stored_bench --crash_open_keys=N  the same, but the loader dies without closing
//   stored_bench --sustained_puts=N   N puts as the loadgen's put cell sends them (10000
//                                     keys, 256 B values, 64 entries per call, a SyncWal
//                                     every 100 ms): CPU per put of the whole process
//                                     (apply + RocksDB's flushes and compactions);
//                                     --per_call=M: M entries per call instead (the
//                                     process sees ~5-20 per batch at 64 clients);
//                                     --keyspace=K: K keys instead (the loadgen's
//                                     matrix default is 100000)
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "rusd/internal.pb.h"
#include "stored/mvcc/kv_store.h"

namespace rusd::stored {
namespace {

std::string KeyOf(uint64_t i) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "/registry/pods/k%09llu", static_cast<unsigned long long>(i));
  return buf;
}

// A store in a fresh directory, removed on destruction.
class BenchStore {
 public:
  BenchStore() {
    static int counter = 0;
    dir_ = std::filesystem::temp_directory_path() /
           ("stored_bench_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    Open();
  }
  ~BenchStore() {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    store_.reset();
    auto r = KvStore::Open(dir_.string(), KvStoreOptions{});
    if (!r.ok()) {
      std::fprintf(stderr, "open: %s\n", r.status().ToString().c_str());
      std::abort();
    }
    store_ = std::move(r).value();
    index_ = store_->applied_index();
  }
  void Close() { store_.reset(); }

  void Apply(const std::vector<internal::Command>& cmds) {
    entries_.clear();
    for (const auto& c : cmds) {
      internal::Entry& e = entries_.emplace_back();
      e.set_index(++index_);
      e.set_term(1);
      e.set_data(c.SerializeAsString());
    }
    auto out = store_->ApplyEntries(entries_);
    if (!out.ok()) {
      std::fprintf(stderr, "apply: %s\n", out.status().ToString().c_str());
      std::abort();
    }
  }

  // Loads keys [0, n) with 100-byte values, 1000 per batch.
  void Load(uint64_t n) {
    std::vector<internal::Command> cmds;
    const std::string value(100, 'v');
    for (uint64_t i = 0; i < n; ++i) {
      internal::Command& c = cmds.emplace_back();
      c.set_request_id(i + 1);
      c.mutable_put()->set_key(KeyOf(i));
      c.mutable_put()->set_value(value);
      if (cmds.size() == 1000 || i + 1 == n) {
        Apply(cmds);
        cmds.clear();
      }
    }
  }

  KvStore& store() { return *store_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<KvStore> store_;
  std::vector<internal::Entry> entries_;
  uint64_t index_ = 0;
};

constexpr uint64_t kKeys = 100000;

void BM_Put(benchmark::State& state) {
  BenchStore s;
  const int batch = static_cast<int>(state.range(0));
  std::mt19937_64 rng(1);
  const std::string value(100, 'v');
  std::vector<internal::Command> cmds(static_cast<size_t>(batch));
  uint64_t id = 0;
  for (auto _ : state) {
    for (auto& c : cmds) {
      c.set_request_id(++id);
      c.mutable_put()->set_key(KeyOf(rng() % kKeys));
      c.mutable_put()->set_value(value);
    }
    s.Apply(cmds);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_Put)->Arg(1)->Arg(64);

void BM_Get(benchmark::State& state) {
  BenchStore s;
  s.Load(kKeys);
  std::mt19937_64 rng(2);
  etcdserverpb::RangeRequest r;
  for (auto _ : state) {
    r.set_key(KeyOf(rng() % kKeys));
    auto out = s.store().Range(r);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Get);

void BM_Range1000(benchmark::State& state) {
  BenchStore s;
  s.Load(kKeys);
  std::mt19937_64 rng(3);
  etcdserverpb::RangeRequest r;
  for (auto _ : state) {
    const uint64_t start = rng() % (kKeys - 1000);
    r.set_key(KeyOf(start));
    r.set_range_end(KeyOf(start + 1000));
    auto out = s.store().Range(r);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Range1000);

// kube-apiserver's paginated list: limit 500 over a 100k-key prefix (etcd counts all).
void BM_RangeLimit500Of100k(benchmark::State& state) {
  BenchStore s;
  s.Load(kKeys);
  etcdserverpb::RangeRequest r;
  r.set_key("/registry/pods/");
  r.set_range_end("/registry/pods0");
  r.set_limit(500);
  for (auto _ : state) {
    auto out = s.store().Range(r);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * 500);
}
BENCHMARK(BM_RangeLimit500Of100k);

// Historical range of 1000 keys (history family), one revision back.
void BM_Range1000AtRevision(benchmark::State& state) {
  BenchStore s;
  s.Load(kKeys);
  s.Load(10);  // move the revision on
  std::mt19937_64 rng(4);
  etcdserverpb::RangeRequest r;
  r.set_revision(s.store().current_revision() - 1);
  for (auto _ : state) {
    const uint64_t start = rng() % (kKeys - 1000);
    r.set_key(KeyOf(start));
    r.set_range_end(KeyOf(start + 1000));
    auto out = s.store().Range(r);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Range1000AtRevision);

// kube-apiserver's update: compare mod_revision, put on success, get on failure.
void BM_Txn(benchmark::State& state) {
  BenchStore s;
  s.Load(kKeys);
  std::mt19937_64 rng(5);
  const std::string value(100, 'w');
  std::vector<internal::Command> cmds(1);
  uint64_t id = 0;
  for (auto _ : state) {
    const std::string key = KeyOf(rng() % kKeys);
    internal::Command& c = cmds[0];
    c.Clear();
    c.set_request_id(++id);
    auto* t = c.mutable_txn();
    auto* cmp = t->add_compare();
    cmp->set_key(key);
    cmp->set_target(etcdserverpb::Compare::MOD);
    cmp->set_result(etcdserverpb::Compare::GREATER);
    cmp->set_mod_revision(0);
    auto* put = t->add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    t->add_failure()->mutable_request_range()->set_key(key);
    s.Apply(cmds);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Txn);

long RssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// CPU seconds of the calling thread: wall time is meaningless on a loaded 2-core box.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

int OpenWithKeys(uint64_t n) {
  BenchStore s;
  auto t0 = std::chrono::steady_clock::now();
  s.Load(n);
  auto t1 = std::chrono::steady_clock::now();
  std::printf("loaded %llu keys in %.2f s, RSS %ld kB, size %.1f MB\n",
              static_cast<unsigned long long>(n), std::chrono::duration<double>(t1 - t0).count(),
              RssKb(), s.store().ApproximateSizeBytes() / 1e6);
  s.Close();
  auto t2 = std::chrono::steady_clock::now();
  const double cpu0 = ThreadCpuSeconds();
  s.Open();
  const double cpu_open = ThreadCpuSeconds() - cpu0;
  auto t3 = std::chrono::steady_clock::now();
  etcdserverpb::RangeRequest r;
  r.set_key(KeyOf(n / 2));
  auto got = s.store().Range(r);
  auto t4 = std::chrono::steady_clock::now();
  std::printf("reopen used %.3f s of CPU\n", cpu_open);
  std::printf("close %.3f s, reopen %.3f s, first get %.3f ms (%s), RSS after reopen %ld kB\n",
              std::chrono::duration<double>(t2 - t1).count(),
              std::chrono::duration<double>(t3 - t2).count(),
              std::chrono::duration<double, std::milli>(t4 - t3).count(),
              got.ok() ? "ok" : got.status().ToString().c_str(), RssKb());
  // A full count touches every key once: RSS stays bounded by the cache.
  etcdserverpb::RangeRequest all;
  all.set_key(std::string(1, '\0'));
  all.set_range_end(std::string(1, '\0'));
  all.set_count_only(true);
  auto t5 = std::chrono::steady_clock::now();
  const double cpu1 = ThreadCpuSeconds();
  auto counted = s.store().Range(all);
  const double cpu_count = ThreadCpuSeconds() - cpu1;
  auto t6 = std::chrono::steady_clock::now();
  etcdserverpb::RangeResponse resp;
  if (counted.ok()) resp.ParseFromString(*counted);
  std::printf("count all: %lld keys in %.3f s (%.3f s CPU), RSS %ld kB\n",
              static_cast<long long>(resp.count()), std::chrono::duration<double>(t6 - t5).count(),
              cpu_count, RssKb());
  return 0;
}

// Like OpenWithKeys, but the loading process dies without closing the store (as kill -9
// would), so the reopen replays RocksDB's WAL.
int CrashThenOpen(uint64_t n) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("stored_bench_crash_" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  const pid_t child = fork();
  if (child == 0) {
    auto store = KvStore::Open(dir, KvStoreOptions{});
    if (!store.ok()) _exit(1);
    const std::string value(100, 'v');
    std::vector<internal::Entry> entries;
    uint64_t index = 0;
    for (uint64_t i = 0; i < n; ++i) {
      internal::Command c;
      c.mutable_put()->set_key(KeyOf(i));
      c.mutable_put()->set_value(value);
      internal::Entry& e = entries.emplace_back();
      e.set_index(++index);
      e.set_data(c.SerializeAsString());
      if (entries.size() == 1000 || i + 1 == n) {
        if (!(*store)->ApplyEntries(entries).ok()) _exit(1);
        entries.clear();
      }
    }
    _exit(0);  // no destructor: memtables are lost, the WAL is not
  }
  int status = 0;
  waitpid(child, &status, 0);
  auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = ThreadCpuSeconds();
  auto store = KvStore::Open(dir, KvStoreOptions{});
  const double cpu = ThreadCpuSeconds() - cpu0;
  auto t1 = std::chrono::steady_clock::now();
  if (!store.ok()) {
    std::printf("reopen failed: %s\n", store.status().ToString().c_str());
    return 1;
  }
  std::printf("after crash: reopen %.3f s (%.3f s CPU), applied index %llu, RSS %ld kB\n",
              std::chrono::duration<double>(t1 - t0).count(), cpu,
              static_cast<unsigned long long>((*store)->applied_index()), RssKb());
  store = Status::Internal("closed");
  std::filesystem::remove_all(dir);
  return 0;
}

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// The put cell of bench/loadgen against one node: 64 clients, each with its own random
// 256 B value, overwriting 10000 keys; stored applies what 64 clients have in flight as one
// batch and makes the store durable every 100 ms. The store is closed (memtables flushed)
// inside the measurement, so a change cannot hide work in what is left unflushed.
int SustainedPuts(uint64_t n, int per_call, uint64_t keyspace) {
  constexpr int kClients = 64;
  std::mt19937_64 rng(7);
  std::vector<std::string> values;
  for (int c = 0; c < kClients; ++c) {
    std::string v(256, ' ');
    for (char& ch : v) ch = static_cast<char>('!' + rng() % 94);
    values.push_back(std::move(v));
  }
  auto s = std::make_unique<BenchStore>();
  const double cpu0 = ProcessCpuSeconds();
  const double apply0 = ThreadCpuSeconds();
  auto t0 = std::chrono::steady_clock::now();
  auto next_sync = t0 + std::chrono::milliseconds(100);
  std::vector<internal::Command> cmds(per_call);
  uint64_t id = 0;
  for (uint64_t done = 0; done < n; done += per_call) {
    for (int c = 0; c < per_call; ++c) {
      char key[32];
      std::snprintf(key, sizeof(key), "/bench/key-%05llu",
                    static_cast<unsigned long long>(rng() % keyspace));
      cmds[c].set_request_id(++id);
      cmds[c].mutable_put()->set_key(key);
      cmds[c].mutable_put()->set_value(values[id % kClients]);
    }
    s->Apply(cmds);
    if (std::chrono::steady_clock::now() >= next_sync) {
      next_sync += std::chrono::milliseconds(100);
      if (!s->store().SyncWal().ok()) return 1;
    }
  }
  const double apply_cpu = ThreadCpuSeconds() - apply0;
  const double size_mb = s->store().ApproximateSizeBytes() / 1e6;
  s.reset();
  const double cpu = ProcessCpuSeconds() - cpu0;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%llu puts in %.1f s: %.2f us CPU per put (apply thread %.2f, other %.2f), "
              "%.0f MB\n",
              static_cast<unsigned long long>(n), secs, cpu * 1e6 / n, apply_cpu * 1e6 / n,
              (cpu - apply_cpu) * 1e6 / n, size_mb);
  return 0;
}

}  // namespace
}  // namespace rusd::stored

int main(int argc, char** argv) {
  int per_call = 64;
  uint64_t keyspace = 10000;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--per_call=", 11) == 0) per_call = std::max(1, std::stoi(argv[i] + 11));
    if (std::strncmp(argv[i], "--keyspace=", 11) == 0) {
      keyspace = std::max<uint64_t>(1, std::stoull(argv[i] + 11));
    }
  }
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--crash_open_keys=", 18) == 0) {
      return rusd::stored::CrashThenOpen(std::stoull(argv[i] + 18));
    }
    if (std::strncmp(argv[i], "--sustained_puts=", 17) == 0) {
      return rusd::stored::SustainedPuts(std::stoull(argv[i] + 17), per_call, keyspace);
    }
    if (std::strncmp(argv[i], "--open_keys=", 12) == 0) {
      return rusd::stored::OpenWithKeys(std::stoull(argv[i] + 12));
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
