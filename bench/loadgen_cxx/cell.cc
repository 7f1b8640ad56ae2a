#include "bench/loadgen_cxx/cell.h"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

#include "bench/loadgen_cxx/event_loop.h"
#include "bench/loadgen_cxx/latency_histogram.h"
#include "bench/loadgen_cxx/proc_stats.h"

namespace rusd::loadgen {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What the cell's threads share: flags the main thread sets, and the ops counter of an
// ops-bounded cell.
struct CellControl {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> done{0};
  int64_t target_ops = 0;
};

// One thread's share of the cell; only that thread touches it until it is joined.
struct ThreadTally {
  LatencyHistogram hist;
  int64_t ops = 0;
  int64_t errors = 0;
  std::string first_error;
  int live = 0;  // clients that still have a request out or will send one

  void Error(const std::string& why) {
    ++errors;
    if (first_error.empty()) first_error = why;
  }
};

class MatrixClient final : public UnaryCall {
 public:
  MatrixClient(const CellSpec& spec, uint64_t seed, GrpcConnection* conn, ThreadTally* tally,
               CellControl* ctl)
      : rng_(seed),
        tmpl_(spec.kind, RandomValue(rng_)),
        conn_(conn),
        tally_(tally),
        ctl_(ctl),
        keyspace_(spec.keyspace) {
    method = tmpl_.method();
    // A range of 1000 keys answers ~290 KB: size the buffer now, not in the measured window.
    ReserveResponse(spec.kind == WorkloadKind::kRange1000 ? 512 << 10 : 4 << 10);
  }

  void Issue() {
    tmpl_.Fill(rng_, keyspace_, request_frame);
    t0_ = NowNs();
    if (conn_->Start(this)) {
      active_ = true;
      return;
    }
    // The connection is gone: this client cannot go on (counted even in the warm-up, or a
    // dead connection would silently shrink the cell).
    active_ = false;
    tally_->Error("connection unusable: " + conn_->dead_reason());
    --tally_->live;
  }

  void OnDone(bool ok) override {
    const int64_t d = NowNs() - t0_;
    active_ = false;
    if (ctl_->measuring.load(std::memory_order_relaxed)) {
      std::string bad = ok ? tmpl_.Check(message()) : error();
      if (!bad.empty()) {
        tally_->Error(bad);
      } else {
        tally_->hist.Record(static_cast<uint64_t>(d));
        ++tally_->ops;
        if (ctl_->target_ops > 0 &&
            ctl_->done.fetch_add(1, std::memory_order_relaxed) + 1 >= ctl_->target_ops) {
          ctl_->stop.store(true, std::memory_order_relaxed);
        }
      }
    }
    if (ctl_->stop.load(std::memory_order_relaxed)) {
      --tally_->live;
      return;
    }
    Issue();
  }

  bool Overdue(int64_t now, int64_t timeout) const { return active_ && now - t0_ > timeout; }
  GrpcConnection* conn() const { return conn_; }

 private:
  Rng rng_;
  RequestTemplate tmpl_;
  GrpcConnection* conn_;
  ThreadTally* tally_;
  CellControl* ctl_;
  uint64_t keyspace_;
  int64_t t0_ = 0;
  bool active_ = false;
};

void RunThread(std::vector<GrpcConnection*> conns,
               std::vector<std::unique_ptr<MatrixClient>>& clients, ThreadTally& tally,
               int64_t timeout_ns) {
  EventLoop loop(std::move(conns));
  tally.live = static_cast<int>(clients.size());
  for (auto& c : clients) c->Issue();
  loop.FlushAll();
  int64_t next_check = NowNs() + 100'000'000;
  while (tally.live > 0) {
    loop.Poll(20);
    const int64_t now = NowNs();
    if (now >= next_check) {
      next_check = now + 100'000'000;
      for (auto& c : clients) {
        if (c->Overdue(now, timeout_ns)) c->conn()->Cancel(c.get(), "deadline exceeded");
      }
      loop.FlushAll();
    }
  }
}

}  // namespace

CellResult RunCell(const std::vector<GrpcConnection*>& conns, const CellSpec& spec) {
  const int threads = std::max(1, std::min<int>(spec.threads, static_cast<int>(conns.size())));
  CellControl ctl;
  ctl.target_ops = spec.ops;
  std::vector<ThreadTally> tallies(static_cast<size_t>(threads));
  std::vector<std::vector<std::unique_ptr<MatrixClient>>> clients(static_cast<size_t>(threads));
  std::vector<std::vector<GrpcConnection*>> thread_conns(static_cast<size_t>(threads));
  for (size_t i = 0; i < conns.size(); ++i) thread_conns[i % threads].push_back(conns[i]);
  const uint64_t seed = static_cast<uint64_t>(NowNs());
  for (int g = 0; g < spec.clients; ++g) {
    const size_t ci = static_cast<size_t>(g) % conns.size();
    const size_t t = ci % static_cast<size_t>(threads);
    clients[t].push_back(std::make_unique<MatrixClient>(
        spec, seed + static_cast<uint64_t>(g) * 7919, conns[ci], &tallies[t], &ctl));
  }

  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back(RunThread, thread_conns[t], std::ref(clients[t]), std::ref(tallies[t]),
                         static_cast<int64_t>(spec.op_timeout.count()));
  }
  std::this_thread::sleep_for(spec.warmup);
  if (spec.at_start) spec.at_start();
  const double cpu0 = CpuSecondsOfSelf();
  const int64_t start = NowNs();
  ctl.measuring.store(true);
  if (spec.ops == 0) {
    std::this_thread::sleep_for(spec.duration);
    ctl.stop.store(true);
  }
  for (auto& w : workers) w.join();
  if (spec.at_end) spec.at_end();
  const double cpu1 = CpuSecondsOfSelf();
  // Requests in flight at the deadline complete after it and are counted; the elapsed time
  // includes their tail (as in cell.go).
  const int64_t elapsed = NowNs() - start;

  CellResult r;
  LatencyHistogram all;
  for (auto& t : tallies) {
    all.Merge(t.hist);
    r.ops += t.ops;
    r.errors += t.errors;
    if (r.first_error.empty()) r.first_error = t.first_error;
  }
  r.seconds = static_cast<double>(elapsed) / 1e9;
  r.p50_ns = all.Percentile(0.50);
  r.p99_ns = all.Percentile(0.99);
  r.loadgen_cpu_seconds = cpu1 - cpu0;
  return r;
}

namespace {

constexpr int kPrepareBatch = 100;

class PrepareClient final : public UnaryCall {
 public:
  PrepareClient(uint64_t seed, GrpcConnection* conn, uint64_t keyspace, uint64_t* next_batch,
                Status* failure, int* live)
      : rng_(seed),
        conn_(conn),
        keyspace_(keyspace),
        next_batch_(next_batch),
        failure_(failure),
        live_(live) {
    method = Method::kTxn;
  }

  void Issue() {
    const uint64_t first = *next_batch_ * kPrepareBatch;
    if (!failure_->ok() || first >= keyspace_) {
      active_ = false;
      --*live_;
      return;
    }
    ++*next_batch_;
    etcdserverpb::TxnRequest txn;
    for (uint64_t i = first; i < first + kPrepareBatch && i < keyspace_; ++i) {
      auto* put = txn.add_success()->mutable_request_put();
      put->set_key(MatrixKey(i));
      put->set_value(RandomValue(rng_));
    }
    request_frame = GrpcFrame(txn);
    t0_ = NowNs();
    if (!conn_->Start(this)) {
      *failure_ = Status::Unavailable("connection unusable: " + conn_->dead_reason());
      active_ = false;
      --*live_;
      return;
    }
    active_ = true;
  }

  void OnDone(bool ok) override {
    active_ = false;
    if (!ok && failure_->ok()) *failure_ = Status::Unavailable("prepare txn: " + error());
    Issue();
  }

  bool Overdue(int64_t now, int64_t timeout) const { return active_ && now - t0_ > timeout; }
  GrpcConnection* conn() const { return conn_; }

 private:
  Rng rng_;
  GrpcConnection* conn_;
  uint64_t keyspace_;
  uint64_t* next_batch_;
  Status* failure_;
  int* live_;
  int64_t t0_ = 0;
  bool active_ = false;
};

class OnceCall final : public UnaryCall {
 public:
  void OnDone(bool ok) override {
    done = true;
    if (ok) {
      result.assign(message());
    } else {
      failure = error();
    }
  }
  bool done = false;
  std::string result, failure;
};

}  // namespace

Status PrepareKeyspace(const std::vector<GrpcConnection*>& conns, uint64_t keyspace, int clients) {
  uint64_t next_batch = 0;
  Status failure;
  int live = clients;
  std::vector<std::unique_ptr<PrepareClient>> cs;
  for (int g = 0; g < clients; ++g) {
    cs.push_back(std::make_unique<PrepareClient>(
        static_cast<uint64_t>(NowNs()) + static_cast<uint64_t>(g) * 104729,
        conns[static_cast<size_t>(g) % conns.size()], keyspace, &next_batch, &failure, &live));
  }
  EventLoop loop(conns);
  for (auto& c : cs) c->Issue();
  loop.FlushAll();
  while (live > 0) {
    loop.Poll(20);
    const int64_t now = NowNs();
    for (auto& c : cs) {
      if (c->Overdue(now, 30'000'000'000)) c->conn()->Cancel(c.get(), "deadline exceeded");
    }
    loop.FlushAll();
  }
  return failure;
}

Result<std::string> CallOnce(GrpcConnection& conn, Method method, std::string request_frame,
                             std::chrono::nanoseconds timeout) {
  OnceCall call;
  call.method = method;
  call.request_frame = std::move(request_frame);
  if (!conn.Start(&call)) return Status::Unavailable("connection unusable: " + conn.dead_reason());
  EventLoop loop({&conn});
  loop.FlushAll();
  const int64_t deadline = NowNs() + timeout.count();
  bool cancelled = false;
  while (!call.done) {
    loop.Poll(20);
    if (!cancelled && !call.done && NowNs() > deadline) {
      conn.Cancel(&call, "deadline exceeded");
      loop.FlushAll();
      cancelled = true;
    }
  }
  if (!call.failure.empty()) return Status::Unavailable(call.failure);
  return std::move(call.result);
}

}  // namespace rusd::loadgen
