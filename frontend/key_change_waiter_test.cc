// KeyChangeWaiter over a real WatchHub and a fake store: wakes on a matching event (also one
// that happened between the caller's read and the Watch), not on filtered or unrelated ones.
#include "frontend/key_change_waiter.h"

#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "rusd/internal.pb.h"
#include "rusd/watch.pb.h"

namespace rusd::frontend {
namespace {

using namespace std::chrono_literals;

// Every event applied, served as history; probes answer the current revision.
class LogStore final : public WatchStore {
 public:
  void CurrentRevision(std::function<void(const Status&, int64_t, uint64_t)> done) override {
    int64_t r;
    {
      std::lock_guard l(mu_);
      r = rev_;
    }
    done(Status::Ok(), r, 2);
  }
  void ReadHistory(std::string request,
                   std::function<void(const Status&, std::string&&)> done) override {
    internal::WatchHistoryRead q;
    q.ParseFromString(request);
    internal::WatchHistoryChunk c;
    {
      std::lock_guard l(mu_);
      c.set_current_revision(rev_);
      c.set_next_revision(rev_ + 1);
      for (const auto& ev : log_) {
        const std::string& k = ev.kv().key();
        const bool in = q.range_end().empty() ? k == q.key()
                                              : k >= q.key() && k < q.range_end();
        if (ev.kv().mod_revision() >= q.start_revision() && in) *c.add_events() = ev;
      }
    }
    done(Status::Ok(), c.SerializeAsString());
  }
  uint64_t Term() const override { return 2; }

  // Applies one event; returns the batch stored would publish.
  std::shared_ptr<internal::EventBatch> Apply(const std::string& key, bool del) {
    std::lock_guard l(mu_);
    auto b = std::make_shared<internal::EventBatch>();
    mvccpb::Event ev;
    ev.set_type(del ? mvccpb::Event::DELETE : mvccpb::Event::PUT);
    ev.mutable_kv()->set_key(key);
    ev.mutable_kv()->set_mod_revision(++rev_);
    log_.push_back(ev);
    *b->add_events() = ev;
    b->set_revision(rev_);
    return b;
  }
  int64_t rev() {
    std::lock_guard l(mu_);
    return rev_;
  }

 private:
  std::mutex mu_;
  int64_t rev_ = 1;
  std::vector<mvccpb::Event> log_;
};

TEST(KeyChangeWaiterTest, WakesOnTheWatchedKeysDeletionOnly) {
  LogStore store;
  WatchHub hub(store, WatchHubOptions{});
  hub.Start();
  KeyChangeWaiter waiter(hub);
  waiter.Watch("lock/a", "", store.rev() + 1, /*deletes_only=*/true);
  EXPECT_FALSE(waiter.Wait(50ms));
  hub.OnEventBatch(store.Apply("lock/a", /*del=*/false));  // a put: filtered
  hub.OnEventBatch(store.Apply("lock/b", /*del=*/true));   // another key
  EXPECT_FALSE(waiter.Wait(100ms));
  hub.OnEventBatch(store.Apply("lock/a", /*del=*/true));
  EXPECT_TRUE(waiter.Wait(2s));
  EXPECT_FALSE(waiter.Wait(20ms)) << "one event wakes once";
}

TEST(KeyChangeWaiterTest, ADeletionBeforeTheWatchStartedIsNotMissed) {
  LogStore store;
  WatchHub hub(store, WatchHubOptions{});
  hub.Start();
  {
    KeyChangeWaiter warm(hub);  // the hub learns the revision once someone watches
    warm.Watch("x", "", 0, false);
    (void)warm.Wait(50ms);
  }
  const int64_t read_at = store.rev();  // the caller read the predecessor here...
  hub.OnEventBatch(store.Apply("lock/a", /*del=*/true));  // ...it went away at once...
  KeyChangeWaiter waiter(hub);
  waiter.Watch("lock/a", "", read_at + 1, /*deletes_only=*/true);  // ...then it watches
  EXPECT_TRUE(waiter.Wait(2s));
}

TEST(KeyChangeWaiterTest, PrefixWatchSeesPutsAndDeletes) {
  LogStore store;
  WatchHub hub(store, WatchHubOptions{});
  hub.Start();
  KeyChangeWaiter waiter(hub);
  waiter.Watch("elect/", "elect0", store.rev() + 1, /*deletes_only=*/false);
  EXPECT_FALSE(waiter.Wait(50ms));
  hub.OnEventBatch(store.Apply("other", /*del=*/false));
  EXPECT_FALSE(waiter.Wait(50ms));
  hub.OnEventBatch(store.Apply("elect/1", /*del=*/false));
  EXPECT_TRUE(waiter.Wait(2s));
  hub.OnEventBatch(store.Apply("elect/1", /*del=*/true));
  EXPECT_TRUE(waiter.Wait(2s));
}

}  // namespace
}  // namespace rusd::frontend
