// WAL throughput: entries per second for group sizes 1..1024 (one fdatasync per group),
// and the cost of encoding alone. Run: build/bin/raftd_wal_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "raftd/wal/wal_reader.h"
#include "raftd/wal/wal_writer.h"

namespace rusd::wal {
namespace {

namespace fs = std::filesystem;

void BM_WalAppendGroup(benchmark::State& state) {
  const size_t group = static_cast<size_t>(state.range(0));
  const bool sync = state.range(1) != 0;
  const fs::path dir = fs::temp_directory_path() / ("rusd_wal_bench_" + std::to_string(getpid()));
  fs::remove_all(dir);
  auto rec = ReadWal(dir.string());
  auto w = WalWriter::Open(dir.string(), *rec);
  if (!w.ok()) {
    state.SkipWithError(w.status().ToString().c_str());
    return;
  }
  std::vector<raft::Entry> batch(group);
  uint64_t index = 0;
  for (auto _ : state) {
    for (auto& e : batch) {
      e.index = ++index;
      e.term = 1;
      e.data.assign(256, 'x');  // a typical small Put command
    }
    (*w)->AddEntries(batch);
    (*w)->AddHardState(raft::HardState{1, 1, index});
    if (!(*w)->Flush(sync).ok()) state.SkipWithError("flush failed");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * group));
  w->reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_WalAppendGroup)
    ->ArgsProduct({{1, 16, 128, 1024}, {1}})
    ->ArgsProduct({{128}, {0}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.5);

}  // namespace
}  // namespace rusd::wal

BENCHMARK_MAIN();
