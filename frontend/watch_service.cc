#include "frontend/watch_service.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <array>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "frontend/ring_client.h"
#include "ipc/ring.h"
#include "ipc/metrics_area.h"
#include "ipc/segment.h"
#include "rusd/internal.pb.h"

namespace rusd::frontend {
namespace {

grpc::ByteBuffer ToByteBuffer(std::string&& bytes) {
  if (bytes.size() <= 1024) {
    grpc::Slice slice(bytes.data(), bytes.size());
    return grpc::ByteBuffer(&slice, 1);
  }
  auto* owned = new std::string(std::move(bytes));  // freed by gRPC through the slice
  grpc::Slice slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  return grpc::ByteBuffer(&slice, 1);
}

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

// One Watch stream: reads requests and hands them to the hub; writes the hub's responses
// in order. Deletes itself in OnDone.
class WatchReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                           public WatchSink {
 public:
  WatchReactor(WatchHub& hub, size_t drained_below, std::atomic<uint64_t>* events_wanted)
      : hub_(hub), drained_below_(drained_below) {
    // Before the stream opens, so before the hub's probes of stored's revision: stored
    // publishes every batch it applies after a probe read its revision (the probe reads the
    // revision under the store's publish lock, and the apply thread looks at the flag after
    // releasing that lock), so no revision a watcher starts after is ever skipped.
    if (events_wanted != nullptr && events_wanted->load(std::memory_order_acquire) == 0) {
      events_wanted->store(1, std::memory_order_release);
    }
    stream_ = hub_.OpenStream(this);
    StartRead(&in_);
  }

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
      queued_bytes_ -= in_flight_bytes_;
      in_flight_bytes_ = 0;
      if (!ok) {
        failed_ = true;
        queue_.clear();
        queued_bytes_ = 0;
      }
      if (queued_bytes_ < drained_below_ && was_above_) {
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
    hub_.CloseStream(stream_);
    delete this;
  }

  // WatchSink (called under the hub's lock).
  size_t Send(std::string response) override {
    std::lock_guard lock(mu_);
    if (failed_ || finishing_) return queued_bytes_;
    queued_bytes_ += response.size();
    if (queued_bytes_ >= drained_below_) was_above_ = true;
    queue_.push_back(std::move(response));
    return queued_bytes_;
  }
  void Flush() override {
    std::lock_guard lock(mu_);
    if (!failed_ && !finishing_) WriteNextLocked();
  }
  size_t QueuedBytes() const override {
    std::lock_guard lock(mu_);
    return queued_bytes_;
  }

 private:
  void WriteNextLocked() {
    if (writing_ || queue_.empty()) return;
    std::string next = std::move(queue_.front());
    queue_.pop_front();
    in_flight_bytes_ = next.size();
    out_ = ToByteBuffer(std::move(next));
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
    queue_.clear();
    if (!writing_ && !finished_) {
      finished_ = true;
      Finish(finish_status_);
    }
  }

  WatchHub& hub_;
  const size_t drained_below_;
  std::shared_ptr<WatchHub::Stream> stream_;
  grpc::ByteBuffer in_;

  mutable std::mutex mu_;
  std::deque<std::string> queue_;  // guarded by mu_
  grpc::ByteBuffer out_;           // the write in flight
  size_t queued_bytes_ = 0;        // queue + the write in flight
  size_t in_flight_bytes_ = 0;
  bool writing_ = false;
  bool was_above_ = false;
  bool failed_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  grpc::Status finish_status_;
};

class WatchService final
    : public etcdserverpb::Watch::WithRawCallbackMethod_Watch<etcdserverpb::Watch::Service> {
 public:
  WatchService(WatchHub& hub, size_t drained_below, std::atomic<uint64_t>* events_wanted)
      : hub_(hub), drained_below_(drained_below), events_wanted_(events_wanted) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Watch(
      grpc::CallbackServerContext*) override {
    return new WatchReactor(hub_, drained_below_, events_wanted_);
  }

 private:
  WatchHub& hub_;
  const size_t drained_below_;
  std::atomic<uint64_t>* const events_wanted_;
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
                                               std::atomic<uint64_t>* events_wanted) {
  // Below a quarter of the limit, a stream's paused watchers may resume (WatchHub).
  return std::make_unique<WatchService>(hub, max_queued_bytes / 4, events_wanted);
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
  // opens (WatchReactor sets it back to 1 before the hub's first probe).
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
  // Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ or "0".
  const std::string original(text);
  auto bad = [&] {
    std::string msg = "time: invalid duration ";
    msg.append("\"").append(original).append("\"");
    return Status::InvalidArgument(msg);
  };
  if (text == "0") return std::chrono::milliseconds(10 * 60 * 1000);
  if (text.empty()) return bad();
  bool negative = false;
  if (text[0] == '-' || text[0] == '+') {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  double total_ns = 0;
  if (text.empty()) return bad();
  while (!text.empty()) {
    size_t i = 0;
    double value = 0;
    bool digits = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + (text[i] - '0');
      ++i;
      digits = true;
    }
    if (i < text.size() && text[i] == '.') {
      ++i;
      double scale = 0.1;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        value += (text[i] - '0') * scale;
        scale /= 10;
        ++i;
        digits = true;
      }
    }
    if (!digits) return bad();
    size_t u = i;
    while (u < text.size() && !(text[u] >= '0' && text[u] <= '9') && text[u] != '.') ++u;
    std::string_view unit = text.substr(i, u - i);
    double ns = 0;
    if (unit == "ns") ns = 1;
    else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs") ns = 1e3;
    else if (unit == "ms") ns = 1e6;
    else if (unit == "s") ns = 1e9;
    else if (unit == "m") ns = 60e9;
    else if (unit == "h") ns = 3600e9;
    else return bad();
    total_ns += value * ns;
    text.remove_prefix(u);
  }
  if (negative) total_ns = -total_ns;
  auto ms = std::chrono::milliseconds(static_cast<int64_t>(total_ns / 1e6));
  // etcd: a positive interval below the minimum is raised to it; zero or negative keep the
  // default (progress notifications every 10 minutes).
  if (total_ns <= 0) return std::chrono::milliseconds(10 * 60 * 1000);
  if (ms < std::chrono::milliseconds(100)) ms = std::chrono::milliseconds(100);
  return ms;
}

}  // namespace rusd::frontend
