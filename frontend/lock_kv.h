// BlockingKv: the KV and lease calls that etcd's v3lock and v3election servers make through
// their in-process clientv3 (concurrency.Session / Mutex / Election), as blocking calls on
// the node's own request paths (KvDispatcher, RingClient). Only for those services' worker
// threads: each call waits for its reply.
//
// WaitDeletes is etcd's waitDeletes (concurrency/key.go): until no key under the prefix has
// a create revision <= max, it reads the newest such key (the predecessor) and waits for its
// deletion. With a WatchHub it waits on an in-process watch of that key (KeyChangeWaiter),
// as etcd's waitDelete watches it: the hand-over costs one event delivery and one read, and
// it re-reads every kWatchRecheck regardless (a lost wake-up costs latency, never a missed
// hand-over). Without a hub (unit tests) it polls every `poll`, backing off to 5 x `poll`
// while the predecessor stays the same.
//
// CallThreads runs each long call (a Lock or Campaign may wait for minutes) on its own
// thread, at most `max_threads` at once, and joins them all on destruction.
//
// Thread safety: any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"
#include "etcd/etcdserverpb/rpc.pb.h"

namespace rusd::frontend {

class KvDispatcher;
class WatchHub;

// etcd's clientv3.GetPrefixRangeEnd.
std::string PrefixRangeEnd(const std::string& prefix);

class BlockingKv {
 public:
  // `hub` (may be null: poll instead) must outlive the BlockingKv.
  explicit BlockingKv(KvDispatcher& kv, WatchHub* hub = nullptr) : kv_(kv), hub_(hub) {}
  WatchHub* hub() const { return hub_; }

  Result<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& req);
  Result<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& req);
  Result<etcdserverpb::DeleteRangeResponse> Delete(const std::string& key);
  // A lease of `ttl` seconds with a server-chosen id (concurrency.NewSession without a lease).
  Result<int64_t> GrantLease(int64_t ttl);

  // The first-created key under `prefix` (etcd's WithFirstCreate): an empty kvs when none.
  Result<etcdserverpb::RangeResponse> FirstCreated(const std::string& prefix);
  // Returns once no key under `prefix` has create_revision <= max_create_rev, with the
  // header of the last read. `cancelled` is polled between reads (-> Cancelled).
  Result<etcdserverpb::ResponseHeader> WaitDeletes(const std::string& prefix,
                                                   int64_t max_create_rev,
                                                   const std::function<bool()>& cancelled,
                                                   std::chrono::milliseconds poll);

 private:
  KvDispatcher& kv_;
  WatchHub* hub_;
};

// How often a waiter on the hub re-reads with no event, and how often it checks its
// `cancelled` while it waits.
inline constexpr std::chrono::milliseconds kWatchRecheck{1000};
inline constexpr std::chrono::milliseconds kCancelCheck{100};

class CallThreads {
 public:
  explicit CallThreads(size_t max_threads = 256) : max_threads_(max_threads) {}
  ~CallThreads();
  CallThreads(const CallThreads&) = delete;
  CallThreads& operator=(const CallThreads&) = delete;

  // False (and `fn` not run) when max_threads calls are running: the caller answers
  // "etcdserver: too many requests".
  [[nodiscard]] bool Run(std::function<void()> fn);

 private:
  void Reap();
  const size_t max_threads_;
  std::mutex mu_;
  std::list<std::thread> running_;
  std::list<std::thread::id> finished_;
};

}  // namespace rusd::frontend
