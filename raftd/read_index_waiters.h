// ReadIndexWaiters: the read-index requests raftd handed to its Raft core and has not
// answered yet (request id -> when it was asked), so that none waits forever.
//
// On a follower the core forwards a read to the leader and forgets it; the answer comes
// back as a ReadState. A forwarded request or its answer can be lost without any leader
// change (a dropped message, a peer stream that broke, a queue that was full), and nothing
// in Raft resends it. etcd 3.5 asks again every 500 ms (readIndexRetryTime) and gives up
// after its request timeout with "etcdserver: request timed out" (etcd 3.4 gives up at the
// timeout without asking again); rusd does both: Poll says which requests to ask the core
// again and which to fail. Answers to a request asked twice are harmless: the first one
// answers it, later ones find it gone (Answer returns false).
//
// Thread safety: none; raftd's main loop owns it. Time is passed in (testable).
#pragma once

#include <chrono>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace rusd::raftd {

class ReadIndexWaiters {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::chrono::milliseconds retry_after{500};  // ask again when unanswered this long
    std::chrono::milliseconds give_up_after{7000};  // etcd's request timeout
  };

  explicit ReadIndexWaiters(Options options) : options_(options) {}

  void Add(uint64_t request_id, Clock::time_point now);
  // True when `request_id` was waiting (it is answered now); false for a repeat answer.
  bool Answer(uint64_t request_id);
  // Every waiting request, removed (a leader change fails them all).
  std::vector<uint64_t> TakeAll();

  struct Due {
    std::vector<uint64_t> retry;    // still waiting: ask the core again
    std::vector<uint64_t> expired;  // removed: answer "request timed out"
  };
  // What is due at `now`; requests returned in `retry` count as asked again at `now`.
  Due Poll(Clock::time_point now);

  size_t size() const { return waiting_.size(); }
  bool empty() const { return waiting_.empty(); }

 private:
  struct Waiting {
    Clock::time_point first_asked;
    Clock::time_point last_asked;
  };
  const Options options_;
  std::unordered_map<uint64_t, Waiting> waiting_;
};

}  // namespace rusd::raftd
