// KeyChangeWaiter: lets a blocking v3lock / v3election call sleep until a key range changes,
// through the frontend's own WatchHub (in-process: no gRPC stream, no polling). etcd's
// servers wait the same way, with a clientv3 watch (concurrency.waitDelete, Election.observe).
//
// Promises: after Watch(key, end, rev, ...), Wait() returns true as soon as an event at a
// revision >= rev on [key, end) has reached the hub (the hub catches a watch that starts in
// the past up from history, so nothing between the caller's read and the Watch is missed),
// or when the watch is cancelled (e.g. rev was compacted: the caller must re-read anyway).
// Wait() returns false after `timeout` with nothing new; callers re-read then too, so a
// lost wake-up costs at most one timeout, never correctness.
//
// Threads: one owner thread calls Watch/Wait; the hub calls the sink (under its lock) from
// its threads. The destructor closes the stream (the hub never calls the sink afterwards).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "frontend/watch_hub.h"

namespace rusd::frontend {

class KeyChangeWaiter {
 public:
  explicit KeyChangeWaiter(WatchHub& hub);
  ~KeyChangeWaiter();
  KeyChangeWaiter(const KeyChangeWaiter&) = delete;
  KeyChangeWaiter& operator=(const KeyChangeWaiter&) = delete;

  // Watches [key, range_end) (range_end "" = the key alone) from `start_revision`, replacing
  // the previous watch; `deletes_only` ignores puts (etcd's WithFilterPut).
  void Watch(const std::string& key, const std::string& range_end, int64_t start_revision,
             bool deletes_only);
  // True once something arrived since the last Watch or Wait; false after `timeout`.
  bool Wait(std::chrono::milliseconds timeout);

 private:
  class Sink;
  WatchHub& hub_;
  std::unique_ptr<Sink> sink_;
  std::shared_ptr<WatchHub::Stream> stream_;
};

}  // namespace rusd::frontend
