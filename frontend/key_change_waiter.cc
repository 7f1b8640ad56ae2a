#include "frontend/key_change_waiter.h"

#include "etcd/etcdserverpb/rpc.pb.h"

namespace rusd::frontend {

// Counts the hub's responses that carry events or end the watch; wakes the owner.
class KeyChangeWaiter::Sink final : public WatchSink {
 public:
  size_t Send(std::string response) override {
    etcdserverpb::WatchResponse r;
    // An unparsable response cannot be judged: count it (the owner re-reads, harmless).
    const bool wake = !r.ParseFromString(response) || r.events_size() > 0 || r.canceled();
    if (wake) {
      {
        std::lock_guard lock(mu_);
        ++changes_;
      }
      cv_.notify_all();
    }
    return 0;  // consumed at once
  }
  size_t QueuedBytes() const override { return 0; }

  void Reset() {
    std::lock_guard lock(mu_);
    changes_ = 0;
  }
  bool Wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    const bool changed = cv_.wait_for(lock, timeout, [&] { return changes_ > 0; });
    changes_ = 0;
    return changed;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t changes_ = 0;  // mu_
};

KeyChangeWaiter::KeyChangeWaiter(WatchHub& hub) : hub_(hub), sink_(std::make_unique<Sink>()) {}

KeyChangeWaiter::~KeyChangeWaiter() {
  if (stream_) hub_.CloseStream(stream_);
}

void KeyChangeWaiter::Watch(const std::string& key, const std::string& range_end,
                            int64_t start_revision, bool deletes_only) {
  // A fresh stream per watch: closing the old one guarantees none of its events reach the
  // sink afterwards, so the counter reflects the new watch alone.
  if (stream_) hub_.CloseStream(stream_);
  sink_->Reset();
  stream_ = hub_.OpenStream(sink_.get());
  etcdserverpb::WatchCreateRequest req;
  req.set_key(key);
  req.set_range_end(range_end);
  req.set_start_revision(start_revision);
  if (deletes_only) req.add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
  hub_.Create(stream_, req);
}

bool KeyChangeWaiter::Wait(std::chrono::milliseconds timeout) { return sink_->Wait(timeout); }

}  // namespace rusd::frontend
