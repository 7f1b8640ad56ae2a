#include "ipc/heartbeat.h"

#include <pthread.h>

namespace rusd::ipc {

HeartbeatThread::HeartbeatThread(Segment& segment, Component component,
                                 std::chrono::milliseconds interval)
    : beat_(segment.component(component).heartbeat), interval_(interval) {
  beat_.fetch_add(1, std::memory_order_relaxed);
  thread_ = std::thread([this] { Run(); });
  pthread_setname_np(thread_.native_handle(), "heartbeat");  // visible in top -H, gdb
}

HeartbeatThread::~HeartbeatThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void HeartbeatThread::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
    beat_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace rusd::ipc
