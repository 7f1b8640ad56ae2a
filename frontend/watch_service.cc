#include "frontend/watch_service.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <unordered_set>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "common/go_duration.h"
#include "frontend/forwarded_framing.h"
#include "frontend/learner_gate.h"
#include "frontend/ring_client.h"
#include "frontend/watch_byte_buffer.h"
#include "frontend/watch_response.h"
#include "frontend/watch_send_queue.h"
#include "ipc/ring.h"
#include "ipc/metrics_area.h"
#include "ipc/segment.h"
#include "rusd/internal.pb.h"

namespace rusd::frontend {
namespace {

bool ParseRequest(const grpc::ByteBuffer& buf, etcdserverpb::WatchRequest* req) {
  grpc::Slice single;
  if (buf.TrySingleSlice(&single).ok()) {
    return req->ParseFromArray(single.begin(), static_cast<int>(single.size()));
  }
  std::vector<grpc::Slice> slices;
  if (!buf.Dump(&slices).ok()) return false;
  std::string flat;
  for (const grpc::Slice& s : slices) {
    flat.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return req->ParseFromString(flat);
}

class WatchReactor;

// etcd's WithRequireLeader (client metadata "hasleader" = "true"; etcd's stream interceptor
// and monitorLeader): such a stream opened while the node knows no leader is refused, and
// open ones end once the node has known none at 3 checks in a row, one per election
// timeout (maxNoLeaderCnt), both with Unavailable "etcdserver: no leader".
class LeaderWatch {
 public:
  LeaderWatch(std::function<bool()> has_leader, std::chrono::milliseconds election_timeout)
      : has_leader_(std::move(has_leader)), interval_(election_timeout) {
    if (has_leader_) thread_ = std::thread([this] { Run(); });
  }
  ~LeaderWatch() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool HasLeader() const { return !has_leader_ || has_leader_(); }
  void Register(WatchReactor* r) {
    std::lock_guard lock(mu_);
    streams_.insert(r);
  }
  void Unregister(WatchReactor* r) {
    std::lock_guard lock(mu_);
    streams_.erase(r);
  }

 private:
  void Run();

  const std::function<bool()> has_leader_;
  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                        // guarded by mu_
  std::unordered_set<WatchReactor*> streams_;  // guarded by mu_
  std::thread thread_;
};

constexpr int kMaxNoLeaderChecks = 3;  // etcd's maxNoLeaderCnt
constexpr char kNoLeader[] = "etcdserver: no leader";

// One Watch stream: reads requests and hands them to the hub; writes the hub's responses
// in order. Deletes itself when OnDone ran and nobody else holds a reference (LeaderWatch
// takes one while it closes the stream from its own thread).
class WatchReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                           public WatchSink {
 public:
  // `prefixed`: the caller is the native server's forwarding (forwarded_framing.h).
  WatchReactor(WatchHub& hub, size_t drained_below, LeaderWatch* leader_watch, bool prefixed)
      : hub_(hub), drained_below_(drained_below), leader_watch_(leader_watch),
        prefixed_(prefixed) {
    stream_ = hub_.OpenStream(this);
    if (leader_watch_ != nullptr) leader_watch_->Register(this);
    StartRead(&in_);
  }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void CloseNoLeader() { Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, kNoLeader)); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // half-close or cancel; etcd keeps the stream until the client leaves
    etcdserverpb::WatchRequest req;
    if (!ParseRequest(in_, &req)) {
      Close(grpc::Status(grpc::StatusCode::INTERNAL, "grpc: error unmarshalling request"));
      return;
    }
    in_.Clear();
    switch (req.request_union_case()) {
      case etcdserverpb::WatchRequest::kCreateRequest:
        hub_.Create(stream_, req.create_request());
        break;
      case etcdserverpb::WatchRequest::kCancelRequest:
        hub_.Cancel(stream_, req.cancel_request().watch_id());
        break;
      case etcdserverpb::WatchRequest::kProgressRequest:
        hub_.RequestProgress(stream_);
        break;
      default:
        break;  // etcd ignores an empty request
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    bool drained = false;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      queue_.WriteDone();
      if (!ok) {
        failed_ = true;
        queue_.Clear();
      }
      Published();
      if (queue_.queued_bytes() < drained_below_ && was_above_) {
        was_above_ = false;
        drained = true;
      }
      if (!failed_ && !finishing_) WriteNextLocked();
      if (finishing_ && !writing_ && !finished_) {
        finished_ = true;
        Finish(finish_status_);
      }
    }
    if (drained) hub_.OnSinkDrained(stream_);
    if (!ok) Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch stream write failed"));
  }

  void OnCancel() override { Close(grpc::Status(grpc::StatusCode::CANCELLED, "context canceled")); }

  void OnDone() override {
    if (leader_watch_ != nullptr) leader_watch_->Unregister(this);
    hub_.CloseStream(stream_);
    Unref();
  }

  // WatchSink (called under the hub's lock).
  size_t Send(std::string response) override {
    std::lock_guard lock(mu_);
    if (failed_ || finishing_) return Published();
    queue_.PushRaw(std::move(response));
    return Accounted();
  }
  size_t SendEvents(int64_t watch_id, std::string_view header, std::string&& events,
                    size_t max_body) override {
    std::lock_guard lock(mu_);
    if (failed_ || finishing_) return Published();
    queue_.PushEvents(watch_id, header, std::move(events), max_body);
    return Accounted();
  }
  void Flush() override {
    std::lock_guard lock(mu_);
    if (!failed_ && !finishing_) WriteNextLocked();
  }
  // Read for every watcher at every revision it takes (WatchHub's "stream full" check):
  // a copy kept beside the queue, so that the check takes no lock. Why a relaxed read
  // loses no wake-up:
  // - Increases happen only in Send/SendEvents, which run under the hub's lock, and store
  //   the new value before returning; the hub reads under that same lock, so it never sees
  //   a value older than its own last push.
  // - Decreases (OnWriteDone) happen without the hub's lock: a read may miss one and see a
  //   stale, too-high value. The worst case is that the hub pauses a watcher it need not
  //   have paused (Full).
  // - A paused watcher is resumed only by Tick, after the stream drained: OnWriteDone
  //   stores the value below drained_below_ (max / 4) here under mu_ before it sets the
  //   hub's `drained` flag with release (OnSinkDrained); Tick exchanges that flag with
  //   acquire before HasCredit reads this value, so it sees the drained value or a later
  //   one, and it consumes the flag only while the stream has paused watchers.
  size_t QueuedBytes() const override { return queued_bytes_.load(std::memory_order_relaxed); }

 private:
  size_t Accounted() {
    if (queue_.queued_bytes() >= drained_below_) was_above_ = true;
    return Published();
  }
  // Call after every change to queue_ (under mu_).
  size_t Published() {
    queued_bytes_.store(queue_.queued_bytes(), std::memory_order_relaxed);
    return queue_.queued_bytes();
  }

  void WriteNextLocked() {
    if (writing_ || queue_.empty()) return;
    if (prefixed_) {
      // Everything queued (up to the batch limit) in one in-process round trip.
      WatchSendQueue::Parts parts;
      parts.body = queue_.PopPrefixedForWrite(kForwardedFramingBatchBytes);
      out_ = ToByteBuffer(std::move(parts));
      writing_ = true;
      StartWrite(&out_);
      return;
    }
    out_ = ToByteBuffer(queue_.PopForWriteParts());
    writing_ = true;
    // More responses queued behind this one: let gRPC buffer it and send them together
    // (one syscall for a burst instead of one per response); the last one flushes.
    grpc::WriteOptions options;
    if (!queue_.empty()) options.set_buffer_hint();
    StartWrite(&out_, options);
  }

  // Stops the hub from sending, then finishes once no write is outstanding.
  void Close(grpc::Status status) {
    hub_.CloseStream(stream_);
    std::lock_guard lock(mu_);
    if (finishing_) return;
    finishing_ = true;
    finish_status_ = std::move(status);
    queue_.Clear();
    Published();
    if (!writing_ && !finished_) {
      finished_ = true;
      Finish(finish_status_);
    }
  }

  WatchHub& hub_;
  const size_t drained_below_;
  LeaderWatch* const leader_watch_;  // null unless the client requires a leader
  const bool prefixed_;              // messages hold prefixed responses (forwarded_framing.h)
  std::atomic<int> refs_{1};         // gRPC's, released in OnDone
  std::shared_ptr<WatchHub::Stream> stream_;
  grpc::ByteBuffer in_;

  mutable std::mutex mu_;
  WatchSendQueue queue_;           // guarded by mu_
  std::atomic<size_t> queued_bytes_{0};  // queue_.queued_bytes(), written under mu_
  grpc::ByteBuffer out_;           // the write in flight
  bool writing_ = false;
  bool was_above_ = false;
  bool failed_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  grpc::Status finish_status_;
};

void LeaderWatch::Run() {
  int without_leader = 0;
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, interval_, [&] { return stop_; })) {
    without_leader = has_leader_() ? 0 : without_leader + 1;
    if (without_leader < kMaxNoLeaderChecks || streams_.empty()) continue;
    std::vector<WatchReactor*> closing(streams_.begin(), streams_.end());
    streams_.clear();
    for (WatchReactor* r : closing) r->Ref();  // OnDone may run meanwhile: keep them alive
    lock.unlock();
    for (WatchReactor* r : closing) {
      r->CloseNoLeader();
      r->Unref();
    }
    lock.lock();
  }
}

// A stream refused before it started (WithRequireLeader on a node with no leader).
class RefusedReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RefusedReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

bool RequiresLeader(const grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("hasleader");
  return it != md.end() && it->second == "true";
}

// The native server's forwarding asked for prefixed messages (forwarded_framing.h).
bool Prefixed(const grpc::CallbackServerContext* ctx) {
  return AsksForPrefixedMessages(ctx->client_metadata());
}

class WatchService final
    : public etcdserverpb::Watch::WithRawCallbackMethod_Watch<etcdserverpb::Watch::Service> {
 public:
  WatchService(WatchHub& hub, size_t drained_below, const RingClient* ring,
               std::function<bool()> has_leader, std::chrono::milliseconds election_timeout)
      : hub_(hub),
        drained_below_(drained_below),
        ring_(ring),
        leader_watch_(std::move(has_leader), election_timeout) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Watch(
      grpc::CallbackServerContext* ctx) override {
    if (ring_ != nullptr && ring_->is_learner()) {
      return new LearnerRefusedStream<grpc::ByteBuffer, grpc::ByteBuffer>();
    }
    const bool prefixed = Prefixed(ctx);
    if (!RequiresLeader(ctx)) return new WatchReactor(hub_, drained_below_, nullptr, prefixed);
    if (!leader_watch_.HasLeader()) {
      return new RefusedReactor(grpc::Status(grpc::StatusCode::UNAVAILABLE, kNoLeader));
    }
    return new WatchReactor(hub_, drained_below_, &leader_watch_, prefixed);
  }

 private:
  WatchHub& hub_;
  const size_t drained_below_;
  const RingClient* const ring_;
  LeaderWatch leader_watch_;
};

class RingWatchStore final : public WatchStore {
 public:
  explicit RingWatchStore(RingClient& ring) : ring_(ring) {
    etcdserverpb::RangeRequest probe;
    probe.set_key(std::string(1, '\0'));
    probe.set_keys_only(true);
    probe.set_limit(1);
    probe.set_serializable(true);
    probe_ = probe.SerializeAsString();
  }

  void CurrentRevision(std::function<void(const Status&, int64_t, uint64_t)> done) override {
    ring_.Read(probe_, false, [done = std::move(done)](const Status& st, std::string&& payload) {
      if (!st.ok()) {
        done(st, 0, 0);
        return;
      }
      etcdserverpb::RangeResponse resp;
      if (!resp.ParseFromString(payload)) {
        done(Status::Internal("rusd: malformed range response"), 0, 0);
        return;
      }
      done(Status::Ok(), resp.header().revision(), resp.header().raft_term());
    });
  }

  void ReadHistory(std::string request,
                   std::function<void(const Status&, std::string&&)> done) override {
    ring_.ReadStore(ipc::MessageType::kWatchHistoryRead, std::move(request), std::move(done));
  }

  uint64_t Term() const override { return ring_.leader().term; }

 private:
  RingClient& ring_;
  std::string probe_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeWatchService(WatchHub& hub, size_t max_queued_bytes,
                                                const RingClient* ring,
                                                std::function<bool()> has_leader,
                                                std::chrono::milliseconds election_timeout) {
  // Below a quarter of the limit, a stream's paused watchers may resume (WatchHub).
  return std::make_unique<WatchService>(hub, max_queued_bytes / 4, ring, std::move(has_leader),
                                        election_timeout);
}

std::unique_ptr<WatchStore> MakeRingWatchStore(RingClient& ring) {
  return std::make_unique<RingWatchStore>(ring);
}

WatchEventsPump::WatchEventsPump(ipc::Segment& segment, WatchHub& hub)
    : segment_(segment),
      hub_(hub),
      events_(std::make_unique<ipc::RingReader>(segment, ipc::RingId::kEvents)) {
  events_->SkipToHead();
  // A new frontend has no watcher yet: stored may skip building events until a Watch stream
  // opens (WatchHub::OpenStream sets it back to 1 before the hub's first probe).
  segment_.counter(ipc::Counter::kWatchEventsWanted).store(0, std::memory_order_release);
}

WatchEventsPump::~WatchEventsPump() { Stop(); }

void WatchEventsPump::Start() {
  thread_ = std::thread([this] { Run(); });
}

void WatchEventsPump::Stop() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

void WatchEventsPump::Run() {
  using Clock = std::chrono::steady_clock;
  uint64_t stored_epoch =
      segment_.component(ipc::Component::kStored).epoch.load(std::memory_order_acquire);
  std::array<ipc::RingReader*, 1> readers = {events_.get()};
  ipc::Message m;
  Clock::time_point next_tick = Clock::now();
  uint64_t events_sent_counted = 0;
  while (!stop_.load(std::memory_order_acquire)) {
    int handled = 0;
    for (; handled < 64 && events_->TryRead(&m); ++handled) {
      if (m.type != ipc::MessageType::kEvents || !hub_.active()) continue;
      auto batch = std::make_shared<internal::EventBatch>();
      if (!batch->ParseFromString(m.payload)) {
        spdlog::warn("watch: unparsable event batch {}; treating it as a gap", m.id);
        hub_.OnStoredRestart();
        continue;
      }
      hub_.OnEventBatch(std::move(batch));
    }
    if (handled > 0) hub_.Flush();
    uint64_t e = segment_.component(ipc::Component::kStored).epoch.load(std::memory_order_acquire);
    if (e != stored_epoch) {
      stored_epoch = e;
      hub_.OnStoredRestart();
    }
    Clock::time_point now = Clock::now();
    if (now >= next_tick) {
      hub_.Tick();
      next_tick = now + std::chrono::milliseconds(100);
      PublishMetrics(&events_sent_counted);
    }
    if (handled == 0) ipc::WaitForMessages(segment_, readers, std::chrono::milliseconds(100));
  }
}

void WatchEventsPump::PublishMetrics(uint64_t* events_sent_counted) {
  const WatchHub::Stats st = hub_.stats();
  ipc::MetricsArea& metrics = segment_.metrics();
  metrics.Set(ipc::Metric::kWatchStreams, st.streams);
  metrics.Set(ipc::Metric::kWatchers, st.watchers);
  metrics.Set(ipc::Metric::kSlowWatchers, st.watchers - st.synced);
  // The segment's counter outlives this frontend; the hub's count starts at 0 with it.
  metrics.Add(ipc::Metric::kWatchEventsSent, st.events_sent - *events_sent_counted);
  *events_sent_counted = st.events_sent;
}

Result<std::chrono::milliseconds> ParseProgressNotifyInterval(std::string_view text) {
  auto d = ParseGoDuration(text);
  if (!d.ok()) return d.status();
  // etcd: a positive interval below the minimum is raised to it; zero or negative keep the
  // default (progress notifications every 10 minutes).
  if (d->count() <= 0) return std::chrono::milliseconds(10 * 60 * 1000);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  if (ms < std::chrono::milliseconds(100)) ms = std::chrono::milliseconds(100);
  return ms;
}

}  // namespace rusd::frontend
