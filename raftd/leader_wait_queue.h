// LeaderWaitQueue: requests raftd read from the proposals ring while no leader was known
// (proposals, member changes), kept in arrival order until a leader is known or they expire.
//
// Why: etcd 3.4's raft node does not read its proposal channel while it has no leader
// (raft/node.go run: propc = nil), so EtcdServer.processInternalRaftRequestOnce's Propose
// blocks until a leader appears or the request timeout (5 s + 2 x election timeout) passes,
// and then answers the context's error unmapped (gRPC Unknown "context deadline exceeded",
// checked against etcd 3.4.23). A proposal that waited is proposed as
// soon as a leader is known; one that expired was never proposed (the client may retry it
// safely). The frontend never re-sends a proposal (docs/architecture.md "Epochs and
// handshakes"), so the wait happens here, where the no-leader refusal used to be.
//
// What it promises: Add keeps a request unless the queue is over its byte bound (then the
// caller refuses it); TakeAll returns every request in arrival order; TakeExpired removes
// and returns those waiting `give_up_after` or longer, in arrival order.
//
// Thread safety: none; raftd's main loop owns it. Time is passed in (testable).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "ipc/message_type.h"

namespace rusd::raftd {

class LeaderWaitQueue {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::chrono::milliseconds give_up_after{7000};  // etcd's request timeout
    size_t max_bytes = 256u << 20;                  // payload bytes held at most
  };

  struct Request {
    ipc::MessageType type = ipc::MessageType::kPropose;
    uint64_t id = 0;
    std::string payload;
    Clock::time_point arrived;
  };

  explicit LeaderWaitQueue(Options options) : options_(options) {}

  // False (and `payload` untouched) when holding it would exceed max_bytes.
  bool Add(ipc::MessageType type, uint64_t id, std::string& payload, Clock::time_point now);
  std::vector<Request> TakeAll();
  std::vector<Request> TakeExpired(Clock::time_point now);

  bool empty() const { return waiting_.empty(); }
  size_t size() const { return waiting_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  const Options options_;
  std::deque<Request> waiting_;  // arrival order, so also expiry order
  size_t bytes_ = 0;
};

}  // namespace rusd::raftd
