#include "bench/loadgen_cxx/watch_bench.h"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>

#include "bench/loadgen_cxx/cell.h"
#include "bench/loadgen_cxx/event_loop.h"
#include "bench/loadgen_cxx/grpc_connection.h"
#include "bench/loadgen_cxx/proc_stats.h"
#include "bench/loadgen_cxx/watch_wire.h"
#include "bench/loadgen_cxx/workload.h"

namespace rusd::loadgen {
namespace {

using std::chrono::nanoseconds;

constexpr int kPutConns = 4;
constexpr int kSteadyPutters = 8;
constexpr int kPrefixPerStream = 10;
constexpr int64_t kCreateTimeoutNs = 30'000'000'000;
constexpr int64_t kPutTimeoutNs = 10'000'000'000;

int64_t MonoNs() {
  return std::chrono::duration_cast<nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The put's send time in its value and the receive time: wall clock, as the Go loadgen's
// time.Now().UnixNano().
int64_t WallNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string KeyOf(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "wb/%05d", i);
  return buf;
}

bool ParseSendTime(std::string_view v, int64_t* out) {
  if (v.empty() || v.size() > 19) return false;
  int64_t x = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + (c - '0');
  }
  *out = x;
  return true;
}

struct WatchSpec {
  std::string key, range_end;
  bool sample = false;
  int64_t* got = nullptr;  // events received (the delivery ledger)
};

// What changed in the ledger since the last delivery check (watchdelivery.go).
struct DeliveryWindow {
  std::vector<int64_t> done, tried, key_got, prefix_got;

  static int64_t Sum(const std::vector<int64_t>& v) {
    int64_t s = 0;
    for (int64_t x : v) s += x;
    return s;
  }
  int64_t Received() const { return Sum(key_got) + Sum(prefix_got); }
  int64_t Missing() const {
    int64_t m = 0;
    for (size_t i = 0; i < done.size(); ++i) m += std::max<int64_t>(done[i] - key_got[i], 0);
    const int64_t d = Sum(done);
    for (int64_t g : prefix_got) m += std::max<int64_t>(d - g, 0);
    return m;
  }
  Status Verify() const {
    int bad = 0;
    std::string first;
    auto check = [&](const std::string& what, int64_t got, int64_t d, int64_t t) {
      if (got >= d && got <= t) return;
      if (bad == 0) {
        first = what + " received " + std::to_string(got) + " events for " + std::to_string(d) +
                " acknowledged puts (" + std::to_string(t) + " tried)";
      }
      ++bad;
    };
    for (size_t i = 0; i < done.size(); ++i)
      check("the watcher of key " + std::to_string(i), key_got[i], done[i], tried[i]);
    const int64_t d = Sum(done), t = Sum(tried);
    for (size_t i = 0; i < prefix_got.size(); ++i)
      check("prefix watcher " + std::to_string(i), prefix_got[i], d, t);
    if (bad > 0) {
      return Status::Internal("delivery check: " + first + "; " + std::to_string(bad) +
                              " watchers out of range");
    }
    return Status::Ok();
  }
};

// Per key: puts tried and acknowledged, events received by its watcher; per prefix watcher:
// events received. Single-threaded (the event loop's thread), so plain counters.
struct DeliveryLedger {
  explicit DeliveryLedger(int keys)
      : tried(keys), done(keys), key_got(keys), last_tried(keys), last_done(keys),
        last_key_got(keys) {}

  int64_t* AddPrefixWatcher() {
    prefix_got.push_back(0);
    last_prefix_got.push_back(0);
    return &prefix_got.back();
  }
  DeliveryWindow Window() const {
    DeliveryWindow w;
    auto delta = [](const std::vector<int64_t>& cur, const std::vector<int64_t>& last) {
      std::vector<int64_t> out(cur.size());
      for (size_t i = 0; i < cur.size(); ++i) out[i] = cur[i] - last[i];
      return out;
    };
    w.done = delta(done, last_done);
    w.tried = delta(tried, last_tried);
    w.key_got = delta(key_got, last_key_got);
    w.prefix_got.resize(prefix_got.size());
    for (size_t i = 0; i < prefix_got.size(); ++i) w.prefix_got[i] = prefix_got[i] - last_prefix_got[i];
    return w;
  }
  void Commit(const DeliveryWindow& w) {
    for (size_t i = 0; i < w.done.size(); ++i) {
      last_done[i] += w.done[i];
      last_tried[i] += w.tried[i];
      last_key_got[i] += w.key_got[i];
    }
    for (size_t i = 0; i < w.prefix_got.size(); ++i) last_prefix_got[i] += w.prefix_got[i];
  }

  std::vector<int64_t> tried, done, key_got;
  std::deque<int64_t> prefix_got;  // a deque: the watchers keep pointers into it
  std::vector<int64_t> last_tried, last_done, last_key_got, last_prefix_got;
};

class WatchBench;

// One Watch stream: creates its watchers one after the other, then counts their events.
class WatchStreamClient final : public StreamCall {
 public:
  WatchStreamClient(WatchBench* bench, int index, GrpcConnection* conn,
                    std::vector<WatchSpec> specs)
      : bench_(bench), index_(index), conn_(conn), specs_(std::move(specs)) {}

  bool Start();
  bool created_all() const { return !awaiting_ && next_ >= specs_.size(); }
  bool CreateOverdue(int64_t now) const {
    return awaiting_ && now - create_sent_ns_ > kCreateTimeoutNs;
  }
  const std::string& awaited_key() const { return specs_[next_ - 1].key; }

  void OnMessage(std::string_view message) override;
  void OnClose(bool ok, const std::string& why) override;

 private:
  struct LiveWatch {
    const WatchSpec* spec;
    int64_t last_rev = 0;
  };
  void SendNextCreate();
  void Handle(const ScannedWatchResponse& r, std::string_view message);
  void Fail(const std::string& why);

  WatchBench* bench_;
  int index_;
  GrpcConnection* conn_;
  std::vector<WatchSpec> specs_;
  size_t next_ = 0;  // specs_[next_ - 1] is the one awaited while awaiting_
  bool awaiting_ = false;
  int64_t create_sent_ns_ = 0;
  std::unordered_map<int64_t, LiveWatch> live_;
  std::vector<WatchEventKv> decoded_;
};

// One put client: closed loop (next put when the last is answered) or open loop (one put
// every `interval`, from `next`; late puts go at once, as the Go loadgen's timer loop does).
class Putter final : public UnaryCall {
 public:
  Putter(WatchBench* bench, GrpcConnection* conn, uint64_t seed, bool open_loop, int64_t next,
         int64_t interval)
      : bench_(bench), conn_(conn), rng_(seed), open_loop_(open_loop), next_(next),
        interval_(interval) {
    method = Method::kPut;
  }
  void Issue();
  void OnDone(bool ok) override;
  // Open loop: issues the put that is due; returns when the next one is due (ns, mono).
  int64_t Tick(int64_t now);
  bool active() const { return active_; }
  bool Overdue(int64_t now) const { return active_ && now - t0_ > kPutTimeoutNs; }
  GrpcConnection* conn() const { return conn_; }

 private:
  WatchBench* bench_;
  GrpcConnection* conn_;
  Rng rng_;
  bool open_loop_;
  int64_t next_, interval_;
  int key_ = 0;
  int64_t t0_ = 0;
  bool active_ = false;
};

class WatchBench {
 public:
  explicit WatchBench(const WatchBenchSpec& spec) : spec_(spec), ledger_(spec.watchers) {}
  ~WatchBench() { stopping_ = true; }

  Result<std::vector<WatchPhaseResult>> Run();

  // For the streams and putters.
  void Report(const std::string& why) {
    if (first_error_.empty()) first_error_ = why;
  }
  bool stopping() const { return stopping_; }
  void CountEvents(int n) {
    events_[phase_] += n;
    ++responses_[phase_];
  }
  bool sampling() const { return phase_ != 0; }
  void Sample(int64_t latency_ns) { lat_[phase_].push_back(latency_ns); }
  int watchers() const { return spec_.watchers; }
  DeliveryLedger& ledger() { return ledger_; }
  bool putting() const { return !stop_puts_; }
  void PutDone(bool ok, int key, int64_t d, const std::string& error) {
    put_lat_.push_back(d);
    if (ok) {
      ++ledger_.done[static_cast<size_t>(key)];
      ++puts_;
    } else {
      ++put_errors_;
      if (first_put_error_.empty()) first_put_error_ = error;
    }
  }

 private:
  Status Connect();
  Status OpenStreams(std::vector<std::vector<WatchSpec>> specs);
  std::vector<std::vector<WatchSpec>> PrefixSpecs(int n, bool sample_first);
  Status CheckDelivery();
  // Serves the connections (and the putters' timers) for one poll.
  void Step(int64_t wait_ns);
  void RunFor(int64_t ns);
  void RunUntil(const std::function<bool()>& done, int64_t deadline);
  Status Failed() const {
    return first_error_.empty() ? Status::Ok() : Status::Internal(first_error_);
  }

  WatchBenchSpec spec_;
  DeliveryLedger ledger_;
  std::vector<std::unique_ptr<WatchStreamClient>> streams_;
  std::vector<std::unique_ptr<Putter>> putters_;
  // Declared after the streams and putters: destroyed before them.
  std::vector<std::unique_ptr<GrpcConnection>> wconns_, pconns_;
  std::unique_ptr<EventLoop> loop_;
  std::string first_error_;
  bool stopping_ = false;
  int phase_ = 0;  // 0 idle, 1 steady, 2 max, 3 fanout
  int64_t events_[4] = {}, responses_[4] = {};
  std::vector<int64_t> lat_[4];
  std::vector<int64_t> put_lat_;
  int64_t puts_ = 0, put_errors_ = 0;
  std::string first_put_error_;
  bool stop_puts_ = false;
};

// ---- WatchStreamClient ----------------------------------------------------------------

bool WatchStreamClient::Start() {
  if (!conn_->StartStream(this, Method::kWatch)) {
    Fail("cannot open a Watch stream: " + conn_->dead_reason());
    return false;
  }
  SendNextCreate();
  return true;
}

void WatchStreamClient::SendNextCreate() {
  if (next_ >= specs_.size()) {
    awaiting_ = false;
    return;
  }
  const WatchSpec& s = specs_[next_++];
  awaiting_ = true;
  create_sent_ns_ = MonoNs();
  if (!conn_->Send(this, WatchCreateFrame(s.key, s.range_end))) {
    Fail("watch \"" + s.key + "\": send create: stream not open");
  }
}

void WatchStreamClient::Fail(const std::string& why) {
  bench_->Report("stream " + std::to_string(index_) + ": " + why);
}

void WatchStreamClient::OnMessage(std::string_view message) {
  ScannedWatchResponse r;
  const char* why = nullptr;
  if (!ScanWatchResponse(message, &r, &why)) {
    Fail(why);
    return;
  }
  if (!r.created) {
    Handle(r, message);
    return;
  }
  if (!awaiting_) {
    Fail("unexpected created response for watch id " + std::to_string(r.watch_id));
    return;
  }
  const WatchSpec& s = specs_[next_ - 1];
  if (r.canceled) {
    Fail("watch \"" + s.key + "\" refused: " + std::string(r.cancel_reason));
    return;
  }
  if (!live_.emplace(r.watch_id, LiveWatch{&s}).second) {
    Fail("watch \"" + s.key + "\": created with id " + std::to_string(r.watch_id) +
         ", already live on the stream");
    return;
  }
  SendNextCreate();
}

void WatchStreamClient::Handle(const ScannedWatchResponse& r, std::string_view message) {
  if (r.canceled) {
    Fail("watch id " + std::to_string(r.watch_id) + " canceled: \"" +
         std::string(r.cancel_reason) + "\" (compact revision " +
         std::to_string(r.compact_revision) + ")");
    return;
  }
  if (r.events == 0) return;  // a progress notification
  auto it = live_.find(r.watch_id);
  if (it == live_.end()) {
    Fail(std::to_string(r.events) + " events for watch id " + std::to_string(r.watch_id) +
         ", not live on this stream");
    return;
  }
  LiveWatch& lw = it->second;
  if (lw.spec->got != nullptr) *lw.spec->got += r.events;
  bench_->CountEvents(r.events);
  if (!lw.spec->sample) return;
  const char* why = nullptr;
  if (!DecodeWatchEvents(message, &decoded_, &why)) {
    Fail("watch id " + std::to_string(r.watch_id) + ": " + why);
    return;
  }
  if (static_cast<int>(decoded_.size()) != r.events) {
    Fail("watch id " + std::to_string(r.watch_id) + ": the scan found " +
         std::to_string(r.events) + " events, the decoder " + std::to_string(decoded_.size()));
    return;
  }
  const WatchSpec& s = *lw.spec;
  const bool sampling = bench_->sampling();
  const int64_t now = sampling ? WallNs() : 0;
  for (const WatchEventKv& e : decoded_) {
    if (!e.has_kv) {
      Fail("watch id " + std::to_string(r.watch_id) + ": an event without a key-value");
      return;
    }
    const bool in = s.range_end.empty() ? e.key == s.key
                                        : (e.key >= s.key && e.key < std::string_view(s.range_end));
    if (!in) {
      Fail("watch id " + std::to_string(r.watch_id) + " on \"" + s.key + "\" (range end \"" +
           s.range_end + "\"): an event for key \"" + std::string(e.key) + "\"");
      return;
    }
    if (e.mod_revision <= lw.last_rev) {
      Fail("watch id " + std::to_string(r.watch_id) + " on \"" + s.key + "\": mod revision " +
           std::to_string(e.mod_revision) + " after " + std::to_string(lw.last_rev));
      return;
    }
    lw.last_rev = e.mod_revision;
    int64_t sent = 0;
    if (sampling && ParseSendTime(e.value, &sent)) bench_->Sample(now - sent);
  }
}

void WatchStreamClient::OnClose(bool ok, const std::string& why) {
  if (bench_->stopping()) return;
  Fail(ok ? std::string("the server ended the stream") : why);
}

// ---- Putter ---------------------------------------------------------------------------

void Putter::Issue() {
  key_ = static_cast<int>(rng_.Below(static_cast<uint64_t>(bench_->watchers())));
  ++bench_->ledger().tried[static_cast<size_t>(key_)];
  const int64_t sent = WallNs();
  request_frame = PutFrame(KeyOf(key_), std::to_string(sent));
  t0_ = MonoNs();
  if (!conn_->Start(this)) {
    // The connection is gone: fatal for the run (as a put error, it would stall the phase).
    bench_->PutDone(false, key_, 0, "connection unusable: " + conn_->dead_reason());
    bench_->Report("put connection unusable: " + conn_->dead_reason());
    return;
  }
  active_ = true;
}

void Putter::OnDone(bool ok) {
  active_ = false;
  bench_->PutDone(ok, key_, MonoNs() - t0_, ok ? std::string() : error());
  if (!open_loop_ && bench_->putting()) Issue();
}

int64_t Putter::Tick(int64_t now) {
  if (!open_loop_) return INT64_MAX;
  if (!active_ && bench_->putting() && now >= next_) {
    next_ += interval_;
    Issue();
  }
  return active_ ? INT64_MAX : next_;
}

// ---- WatchBench -----------------------------------------------------------------------

Status WatchBench::Connect() {
  auto open = [&](int n, std::vector<std::unique_ptr<GrpcConnection>>& out) -> Status {
    for (int i = 0; i < n; ++i) {
      auto c = GrpcConnection::Connect(spec_.host, spec_.port);
      if (!c.ok()) return c.status();
      // One cheap request per connection first (conns.go's openPool).
      etcdserverpb::RangeRequest warm;
      warm.set_key("bench/warmup");
      warm.set_serializable(true);
      auto r = CallOnce(*c.value(), Method::kRange, GrpcFrame(warm));
      if (!r.ok()) return Status::Unavailable("first request: " + r.status().message());
      out.push_back(std::move(c.value()));
    }
    return Status::Ok();
  };
  if (Status s = open(spec_.conns, wconns_); !s.ok()) return s;
  if (Status s = open(kPutConns, pconns_); !s.ok()) return s;
  std::vector<GrpcConnection*> all;
  for (auto& c : wconns_) all.push_back(c.get());
  for (auto& c : pconns_) all.push_back(c.get());
  loop_ = std::make_unique<EventLoop>(all);
  return Status::Ok();
}

void WatchBench::Step(int64_t wait_ns) {
  const int64_t now = MonoNs();
  int64_t due = now + wait_ns;
  for (auto& p : putters_) {
    if (p->Overdue(now)) p->conn()->Cancel(p.get(), "deadline exceeded");
    due = std::min(due, p->Tick(now));
  }
  loop_->FlushAll();
  const int64_t wait = std::max<int64_t>(due - now, 0);
  // Round up: epoll's timeout is in ms, and a due putter must not spin the loop.
  loop_->Poll(static_cast<int>((wait + 999'999) / 1'000'000));
  const int64_t after = MonoNs();
  for (auto& p : putters_) p->Tick(after);
  loop_->FlushAll();
}

void WatchBench::RunFor(int64_t ns) {
  const int64_t end = MonoNs() + ns;
  for (int64_t now = MonoNs(); now < end; now = MonoNs()) Step(std::min<int64_t>(end - now, 20'000'000));
}

void WatchBench::RunUntil(const std::function<bool()>& done, int64_t deadline) {
  while (!done() && MonoNs() < deadline) Step(20'000'000);
}

std::vector<std::vector<WatchSpec>> WatchBench::PrefixSpecs(int n, bool sample_first) {
  std::vector<std::vector<WatchSpec>> out;
  for (int p = 0; p < n; ++p) {
    if (p % kPrefixPerStream == 0) out.emplace_back();
    out.back().push_back(
        WatchSpec{"wb/", "wb0", sample_first && p == 0, ledger_.AddPrefixWatcher()});
  }
  return out;
}

Status WatchBench::OpenStreams(std::vector<std::vector<WatchSpec>> specs) {
  const size_t first = streams_.size();
  for (auto& ws : specs) {
    const int s = static_cast<int>(streams_.size());
    streams_.push_back(std::make_unique<WatchStreamClient>(
        this, s, wconns_[static_cast<size_t>(s) % wconns_.size()].get(), std::move(ws)));
    streams_.back()->Start();
  }
  auto all_created = [&] {
    if (!first_error_.empty()) return true;
    const int64_t now = MonoNs();
    bool all = true;
    for (size_t i = first; i < streams_.size(); ++i) {
      if (streams_[i]->CreateOverdue(now)) {
        Report("stream " + std::to_string(i) + ": watch \"" + streams_[i]->awaited_key() +
               "\" not created within 30s");
        return true;
      }
      all = all && streams_[i]->created_all();
    }
    return all;
  };
  RunUntil(all_created, INT64_MAX);
  return Failed();
}

Status WatchBench::CheckDelivery() {
  // Wait for the events in flight while they keep coming (3 s without a new one, 120 s in
  // all), then 200 ms more: duplicates, if any, would come now.
  const int64_t start = MonoNs();
  DeliveryWindow w = ledger_.Window();
  int64_t last = w.Received(), last_rise = start;
  while (w.Missing() > 0 && first_error_.empty()) {
    const int64_t now = MonoNs();
    if (now - last_rise > 3'000'000'000 || now - start > 120'000'000'000) break;
    RunFor(50'000'000);
    w = ledger_.Window();
    if (int64_t r = w.Received(); r > last) {
      last = r;
      last_rise = MonoNs();
    }
  }
  RunFor(200'000'000);
  w = ledger_.Window();
  if (Status s = Failed(); !s.ok()) return s;
  if (Status s = w.Verify(); !s.ok()) return s;
  std::fprintf(stderr,
               "  delivery check: %" PRId64 " events for %" PRId64
               " puts, %zu key + %zu prefix watchers each in range\n",
               w.Received(), DeliveryWindow::Sum(w.done), w.key_got.size(), w.prefix_got.size());
  ledger_.Commit(w);
  return Status::Ok();
}

Result<std::vector<WatchPhaseResult>> WatchBench::Run() {
  std::fprintf(stderr, "watch bench: %s at %s:%d (rusd-loadgen)\n", spec_.name.c_str(),
               spec_.host.c_str(), spec_.port);
  if (Status s = Connect(); !s.ok()) return s;
  int64_t mem_before = 0;
  if (spec_.mem_pid > 0) {
    auto m = RssKiBOf(spec_.mem_pid);
    if (!m.ok()) return m.status();
    mem_before = m.value();
  }

  std::vector<std::vector<WatchSpec>> specs;
  for (int s = 0; s < spec_.streams; ++s) {
    std::vector<WatchSpec> ws;
    for (int i = s; i < spec_.watchers; i += spec_.streams)
      ws.push_back(WatchSpec{KeyOf(i), "", true, &ledger_.key_got[static_cast<size_t>(i)]});
    specs.push_back(std::move(ws));
  }
  for (auto& ws : PrefixSpecs(spec_.prefix_watchers, true)) specs.push_back(std::move(ws));

  const int64_t created = MonoNs();
  if (Status s = OpenStreams(std::move(specs)); !s.ok()) return s;
  const double create_secs = static_cast<double>(MonoNs() - created) / 1e9;
  RunFor(1'000'000'000);
  int64_t mem_per_10k = 0;
  if (spec_.mem_pid > 0) {
    auto m = RssKiBOf(spec_.mem_pid);
    if (!m.ok()) return m.status();
    mem_per_10k = (m.value() - mem_before) * 10000 / (spec_.watchers + spec_.prefix_watchers);
  }
  std::fprintf(stderr, "  %d + %d watchers created in %.1f s\n", spec_.watchers,
               spec_.prefix_watchers, create_secs);

  struct PhaseDef {
    int id;
    const char* name;
  };
  std::vector<PhaseDef> phases = {{1, "steady"}, {2, "max"}};
  if (spec_.fanout_prefix_watchers > spec_.prefix_watchers) phases.push_back({3, "fanout"});
  const long hz = sysconf(_SC_CLK_TCK);
  std::vector<WatchPhaseResult> results;
  for (const PhaseDef& ph : phases) {
    if (ph.id == 3) {
      // More prefix watchers on new streams: every put is delivered 1 + fanout times.
      if (Status s = CheckDelivery(); !s.ok()) return s;
      const int64_t t0 = MonoNs();
      const int more = spec_.fanout_prefix_watchers - spec_.prefix_watchers;
      if (Status s = OpenStreams(PrefixSpecs(more, false)); !s.ok()) return s;
      std::fprintf(stderr, "  %d more prefix watchers created in %.1f s\n", more,
                   static_cast<double>(MonoNs() - t0) / 1e9);
      RunFor(500'000'000);
    }
    puts_ = 0;
    put_errors_ = 0;
    first_put_error_.clear();
    put_lat_.clear();
    stop_puts_ = false;
    putters_.clear();
    const bool open_loop = ph.id == 1;
    const int n = open_loop ? kSteadyPutters : spec_.putters;
    const int64_t interval = 1'000'000'000LL * n / spec_.rate;
    int64_t cpu0 = 0;
    if (spec_.cpu_pid > 0) {
      auto t = CpuTicksOf(spec_.cpu_pid);
      if (!t.ok()) return t.status();
      cpu0 = t.value();
    }
    const double lg0 = CpuSecondsOfSelf();
    phase_ = ph.id;
    const int64_t start = MonoNs();
    for (int g = 0; g < n; ++g) {
      putters_.push_back(std::make_unique<Putter>(
          this, pconns_[static_cast<size_t>(g) % pconns_.size()].get(), static_cast<uint64_t>(g) + 1,
          open_loop, start + g * interval / n, interval));
      if (!open_loop) putters_.back()->Issue();
    }
    RunFor(spec_.duration.count());
    stop_puts_ = true;
    const int64_t elapsed = MonoNs() - start;
    const int64_t got = events_[ph.id], got_responses = responses_[ph.id];
    const double lg1 = CpuSecondsOfSelf();
    double cpu_per_event = 0;
    if (spec_.cpu_pid > 0 && got > 0) {
      auto t = CpuTicksOf(spec_.cpu_pid);
      if (!t.ok()) return t.status();
      cpu_per_event =
          static_cast<double>(t.value() - cpu0) * 1e6 / static_cast<double>(hz) / static_cast<double>(got);
    }
    RunUntil(
        [&] {
          return std::none_of(putters_.begin(), putters_.end(),
                              [](const auto& p) { return p->active(); });
        },
        INT64_MAX);
    // Events still in flight when the phase ended are not counted as delivered in it.
    phase_ = 0;
    RunFor(500'000'000);
    if (Status s = Failed(); !s.ok()) return s;

    std::vector<int64_t>& l = lat_[ph.id];
    std::sort(l.begin(), l.end());
    auto q = [&](double f) {
      if (l.empty()) return 0.0;
      return static_cast<double>(l[static_cast<size_t>(f * static_cast<double>(l.size() - 1))] / 1000);
    };
    std::sort(put_lat_.begin(), put_lat_.end());
    WatchPhaseResult r;
    r.system = spec_.name;
    r.phase = ph.name;
    r.watchers = spec_.watchers + (ph.id == 3 ? spec_.fanout_prefix_watchers : spec_.prefix_watchers);
    r.puts = puts_;
    r.put_errors = put_errors_;
    r.events = got;
    r.responses = got_responses;
    r.latency_samples = static_cast<int64_t>(l.size());
    r.seconds = static_cast<double>(elapsed) / 1e9;
    r.events_per_s = static_cast<double>(got) / r.seconds;
    r.lat_p50_us = q(0.5);
    r.lat_p99_us = q(0.99);
    if (!put_lat_.empty()) {
      r.put_p50_us = static_cast<double>(put_lat_[put_lat_.size() / 2] / 1000);
      r.put_p99_us = static_cast<double>(
          put_lat_[static_cast<size_t>(0.99 * static_cast<double>(put_lat_.size() - 1))] / 1000);
    }
    r.events_per_response =
        static_cast<double>(got) / static_cast<double>(std::max<int64_t>(got_responses, 1));
    r.server_cpu_us_per_event = cpu_per_event;
    r.loadgen_cpu_cores = (lg1 - lg0) / r.seconds;
    r.loadgen_cpu_us_per_event = got > 0 ? (lg1 - lg0) * 1e6 / static_cast<double>(got) : 0;
    r.mem_per_10k_kib = mem_per_10k;
    r.create_s = create_secs;
    std::fprintf(stderr,
                 "  %s: %" PRId64 " puts (p50 %.0f µs, %" PRId64
                 " errors), %.0f events/s, latency p50 %.0f µs p99 %.0f µs, loadgen %.2f cores\n",
                 ph.name, r.puts, r.put_p50_us, r.put_errors, r.events_per_s, r.lat_p50_us,
                 r.lat_p99_us, r.loadgen_cpu_cores);
    if (r.put_errors > 0)
      std::fprintf(stderr, "  %s: first put error: %s\n", ph.name, first_put_error_.c_str());
    results.push_back(r);
  }
  if (Status s = CheckDelivery(); !s.ok()) return s;
  stopping_ = true;
  return results;
}

}  // namespace

Result<std::vector<WatchPhaseResult>> RunWatchBench(const WatchBenchSpec& spec) {
  WatchBench bench(spec);
  return bench.Run();
}

}  // namespace rusd::loadgen
