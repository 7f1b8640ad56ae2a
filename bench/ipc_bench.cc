// ipc_bench: the rings between two real processes (Google Benchmark).
//
//   BM_Throughput/<bytes>  the benchmark process writes batches of records on the committed
//                          ring (8 MiB); a forked consumer process reads them and acknowledges
//                          each batch on store-control. Time covers write + drain + ack.
//                          4 MiB records travel in chunks (the large-range path).
//   BM_PingPong/<bytes>    one record each way (proposals → raft-replies); the time per
//                          iteration is one round trip.
//
// Both sides use the production wait path (WaitForMessages: brief spin, then futex), so the
// numbers include wake-ups when a side falls asleep.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "ipc/ring.h"
#include "ipc/segment.h"

namespace {

using namespace rusd::ipc;
using namespace std::chrono_literals;

constexpr MessageType kData = MessageType::kCommittedEntries;
constexpr MessageType kBatchEnd = MessageType::kLeaderInfo;
constexpr MessageType kStop = MessageType::kError;

std::string SegmentName() { return "rusd-bench-" + std::to_string(getpid()); }

// The other process: echoes (ping-pong) or counts and acknowledges (throughput) until kStop.
[[noreturn]] void RunPeer(const std::string& name, RingId in, RingId out, bool echo) {
  auto seg = Segment::Open(name);
  if (!seg.ok()) _exit(2);
  RingReader r(**seg, in);
  RingWriter w(**seg, out, 1);
  RingReader* readers[] = {&r};
  Message m;
  uint64_t received = 0;
  for (;;) {
    if (!r.TryRead(&m)) {
      WaitForMessages(**seg, readers, 1000ms);
      continue;
    }
    if (m.type == kStop) _exit(0);
    if (echo) {
      if (!w.Write(m.type, m.id, m.payload, 10s).ok()) _exit(3);
    } else if (m.type == kBatchEnd) {
      if (!w.Write(kBatchEnd, received, "", 10s).ok()) _exit(3);
    } else {
      ++received;
    }
  }
}

// Creates the segment and forks the peer; stops and reaps it on destruction.
class PeerProcess {
 public:
  PeerProcess(RingId in, RingId out, bool echo) : name_(SegmentName()) {
    auto seg = Segment::Create(name_);
    if (!seg.ok()) {
      std::fprintf(stderr, "%s\n", seg.status().ToString().c_str());
      return;
    }
    seg_ = std::move(seg).value();
    pid_ = fork();
    if (pid_ == 0) RunPeer(name_, in, out, echo);
    to_peer_ = std::make_unique<RingWriter>(*seg_, in, 1);
    from_peer_ = std::make_unique<RingReader>(*seg_, out);
  }
  ~PeerProcess() {
    if (pid_ > 0) {
      (void)to_peer_->Write(kStop, 0, "", 10s);
      waitpid(pid_, nullptr, 0);
    }
    Segment::Remove(name_);
  }
  bool ok() const { return pid_ > 0; }
  Segment& segment() { return *seg_; }
  RingWriter& to_peer() { return *to_peer_; }
  RingReader& from_peer() { return *from_peer_; }

  void Receive(Message* m) {
    RingReader* readers[] = {from_peer_.get()};
    while (!from_peer_->TryRead(m)) WaitForMessages(*seg_, readers, 1000ms);
  }

 private:
  std::string name_;
  std::unique_ptr<Segment> seg_;
  pid_t pid_ = -1;
  std::unique_ptr<RingWriter> to_peer_;
  std::unique_ptr<RingReader> from_peer_;
};

void BM_Throughput(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0));
  const uint64_t batch = bytes <= 256 ? 100000 : bytes <= 65536 ? 20000 : 25;
  PeerProcess peer(RingId::kCommitted, RingId::kStoreControl, /*echo=*/false);
  if (!peer.ok()) {
    state.SkipWithError("cannot start the peer process");
    return;
  }
  const std::string payload(bytes, 'x');
  Message ack;
  uint64_t id = 0;
  for (auto _ : state) {
    for (uint64_t i = 0; i < batch; ++i) {
      if (!peer.to_peer().Write(kData, ++id, payload, 10s).ok()) {
        state.SkipWithError("write timed out");
        return;
      }
    }
    (void)peer.to_peer().Write(kBatchEnd, 0, "", 10s);
    peer.Receive(&ack);
  }
  if (ack.id != id) state.SkipWithError("the peer did not receive every record");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch * bytes));
  state.counters["wakes"] = static_cast<double>(
      peer.segment().doorbell(DoorbellOf(RingId::kCommitted)).wakes.load());
}
BENCHMARK(BM_Throughput)->Arg(64)->Arg(4096)->Arg(4 << 20)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PingPong(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0));
  PeerProcess peer(RingId::kProposals, RingId::kRaftReplies, /*echo=*/true);
  if (!peer.ok()) {
    state.SkipWithError("cannot start the peer process");
    return;
  }
  const std::string payload(bytes, 'p');
  Message m;
  m.payload.reserve(bytes);
  uint64_t id = 0;
  for (auto _ : state) {
    if (!peer.to_peer().TryWrite(kData, ++id, payload).ok()) {
      state.SkipWithError("ring full in a ping-pong");
      return;
    }
    peer.Receive(&m);
    if (m.id != id) {
      state.SkipWithError("wrong reply");
      return;
    }
  }
  state.counters["wakes"] = static_cast<double>(
      peer.segment().doorbell(DoorbellOf(RingId::kProposals)).wakes.load() +
      peer.segment().doorbell(DoorbellOf(RingId::kRaftReplies)).wakes.load());
}
BENCHMARK(BM_PingPong)->Arg(64)->Arg(4096)->Unit(benchmark::kNanosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
