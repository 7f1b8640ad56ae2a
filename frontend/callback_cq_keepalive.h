// CallbackCqKeepAlive: keeps gRPC C++'s callback completion-queue threads polling while the
// frontend is idle, so that the first callback after an idle second runs at once.
//
// Why: with this gRPC (1.51, epoll1: no background poller), every callback-API reaction
// (the Watch reactor's OnWriteDone, the native server's forwarded calls' OnReadDone, the
// KV reactors of the gRPC C++ server) is run by the "nexting" threads of gRPC's
// CallbackAlternativeCQ. Each polls that queue with a 1 s deadline and, when a poll times
// out, sleeps 100 ms WITHOUT polling (gpr_sleep_until; nobody can wake it). After one idle
// second all of them sleep at the same moment, and a completion that arrives then waits up
// to 100 ms: the first events after an idle gap reached watchers ~100 ms late (watch fan-out
// bench, steady-phase p99; bench/run-watch-vs-etcd.sh).
//
// What it does: every `interval` (< 1 s) it makes one in-process unary call to a method
// nobody serves (the server answers UNIMPLEMENTED through its callback path); its
// completions reach the nexting threads, so none polls a whole second without an event.
// That is enough: for every nexting thread to sleep at once, all would have had to poll
// the same ~900 ms without an event, and one call completes in any such window. Cost: an
// idle frontend measured ~1 ms of CPU a second more (30 s, noisy: 9 vs 6 ticks of 10 ms).
//
// Threads: Start and Stop from one thread; Stop before the server shuts down.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace grpc {
class Server;
}  // namespace grpc

namespace rusd::frontend {

// The method the keep-alive calls (served by nobody; the metrics interceptor skips it).
inline constexpr char kCallbackCqKeepAliveMethod[] = "/rusd.internal.CallbackCqKeepAlive/Ping";

class CallbackCqKeepAlive {
 public:
  explicit CallbackCqKeepAlive(grpc::Server& server,
                               std::chrono::milliseconds interval = std::chrono::milliseconds(250));
  ~CallbackCqKeepAlive();
  CallbackCqKeepAlive(const CallbackCqKeepAlive&) = delete;
  CallbackCqKeepAlive& operator=(const CallbackCqKeepAlive&) = delete;

  void Start();
  // Stops the calls and waits for the one in flight, if any.
  void Stop();

  // Calls completed so far (tests).
  uint64_t completed() const;

 private:
  void Run();

  grpc::Server& server_;
  const std::chrono::milliseconds interval_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool in_flight_ = false;
  uint64_t completed_ = 0;
};

}  // namespace rusd::frontend
