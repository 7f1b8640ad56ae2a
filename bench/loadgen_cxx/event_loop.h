// EventLoop: the epoll set of one thread's GrpcConnections. Connections are always watched
// for input; for output only while a Flush left bytes behind. Owned and used by one thread
// (the connections' thread); it does not own the connections.
#pragma once

#include <vector>

#include "bench/loadgen_cxx/grpc_connection.h"

namespace rusd::loadgen {

class EventLoop {
 public:
  explicit EventLoop(std::vector<GrpcConnection*> conns);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Flushes every connection (requests started or messages sent since the last poll).
  void FlushAll();
  // Waits up to timeout_ms for readiness and serves what is ready (reads, callbacks, writes).
  void Poll(int timeout_ms);

 private:
  void Watch(size_t i, bool out);

  int epfd_;
  std::vector<GrpcConnection*> conns_;
  std::vector<bool> want_out_;
};

}  // namespace rusd::loadgen
