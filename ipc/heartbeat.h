// The heartbeat every component runs: a thread that increments the component's heartbeat
// counter in the segment every 100 ms. The supervisor restarts a component whose heartbeat
// stops moving, so this thread does nothing else: no I/O, no locks shared with the rest of
// the process. A slow fdatasync in raftd's main loop is therefore never taken for a hang;
// a process that is stopped, deadlocked in the allocator or swapped out to death is.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "ipc/segment.h"

namespace rusd::ipc {

class HeartbeatThread {
 public:
  static constexpr std::chrono::milliseconds kInterval{100};

  // Starts beating at once (the first increment happens before the constructor returns).
  // `segment` must outlive this object.
  HeartbeatThread(Segment& segment, Component component,
                  std::chrono::milliseconds interval = kInterval);
  // Stops and joins the thread.
  ~HeartbeatThread();

  HeartbeatThread(const HeartbeatThread&) = delete;
  HeartbeatThread& operator=(const HeartbeatThread&) = delete;

 private:
  void Run();

  std::atomic<uint64_t>& beat_;
  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace rusd::ipc
