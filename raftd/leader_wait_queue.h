// LeaderWaitQueue: requests raftd read from the proposals ring while no leader was known
// (proposals, member changes), kept in arrival order until a leader is known, their time to
// give up comes, or the frontend that sent them is gone.
//
// Why: etcd 3.4's raft node does not read its proposal channel while it has no leader
// (raft/node.go run: propc = nil), so EtcdServer.processInternalRaftRequestOnce's Propose
// blocks until a leader appears or the request timeout (5 s + 2 x election timeout) passes,
// and then answers the context's error unmapped (gRPC Unknown "context deadline exceeded",
// checked against etcd 3.4.23). A proposal that waited is proposed as soon as a leader is
// known; one that gave up was never proposed (the client may retry it safely). The
// frontend never re-sends a proposal (docs/architecture.md "Epochs and handshakes"), so the
// wait happens here, where the no-leader refusal used to be. Each request gives up at a
// time the caller derives from the deadline the frontend wrote into the frame
// (ipc/request_trailer.h), so time spent in the ring (a raftd restart) counts.
//
// What it promises: Add keeps a request unless the queue is over its byte bound (then the
// caller refuses it); the bound counts each request's bookkeeping (kEntryOverhead) as well
// as its payload, so a flood of tiny requests is bounded too. TakeAll returns every request
// in arrival order; TakeExpired removes those whose give_up_at has come and TakeOrphaned
// those of a frontend epoch older than the live one, each in arrival order (give-up times
// need not follow arrival order: the caller's clocks start before the ring write). Each
// request keeps the deadline its frame carried, so that one handed back to a caller that
// must wait again (a member change whose leader vanished) keeps its client's deadline.
// Cost: raftd calls TakeExpired and TakeOrphaned every tick; the queue keeps the earliest
// give_up_at and the lowest frontend epoch it holds, so a call that can match nothing
// returns without looking at the requests (a scan happens only when one will be taken).
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
#include "ipc/request_trailer.h"

namespace rusd::raftd {

class LeaderWaitQueue {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    size_t max_bytes = 256u << 20;  // payload + kEntryOverhead per request, held at most
  };

  struct Request {
    ipc::MessageType type = ipc::MessageType::kPropose;
    uint64_t id = 0;
    std::string payload;
    uint64_t frontend_epoch = 0;  // the epoch stamped on its frame
    Clock::time_point give_up_at;
    Clock::time_point deadline = ipc::kNoDeadline;  // its frame's (ipc/request_trailer.h)
  };

  // What one waiting request costs beyond its payload: the Request itself and the deque's
  // share of a block (a rough but honest figure; the bound is against floods).
  static constexpr size_t kEntryOverhead = sizeof(Request) + 16;

  explicit LeaderWaitQueue(Options options) : options_(options) {}

  // False (and `payload` untouched) when holding it would exceed max_bytes.
  bool Add(ipc::MessageType type, uint64_t id, std::string& payload, uint64_t frontend_epoch,
           Clock::time_point give_up_at, Clock::time_point deadline = ipc::kNoDeadline);
  std::vector<Request> TakeAll();
  std::vector<Request> TakeExpired(Clock::time_point now);
  // Removes the requests of frontend epochs below `live_epoch` (nobody waits for them).
  std::vector<Request> TakeOrphaned(uint64_t live_epoch);

  // The earliest give_up_at and the lowest frontend epoch held (max() when empty).
  Clock::time_point earliest_give_up() const { return earliest_give_up_; }
  uint64_t lowest_epoch() const { return lowest_epoch_; }
  // How many times a Take* looked at the requests (tests: the cost bound above).
  size_t scans() const { return scans_; }

  bool empty() const { return waiting_.empty(); }
  size_t size() const { return waiting_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  // Removes the requests matching pred in one pass and recomputes the bounds below.
  template <typename Pred>
  std::vector<Request> TakeIf(Pred pred);

  const Options options_;
  std::deque<Request> waiting_;  // arrival order
  size_t bytes_ = 0;
  // Exact over waiting_: Add lowers them, TakeIf recomputes them from what it keeps.
  Clock::time_point earliest_give_up_ = Clock::time_point::max();
  uint64_t lowest_epoch_ = UINT64_MAX;
  size_t scans_ = 0;
};

}  // namespace rusd::raftd
