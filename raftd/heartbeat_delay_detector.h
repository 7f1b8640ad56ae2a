// HeartbeatDelayDetector: tells a leader that its heartbeat to a peer left late, which is
// what etcd counts as etcd_server_heartbeat_send_failures_total (etcd's
// contention.TimeoutDetector with 2 heartbeat intervals, observed for every MsgHeartbeat
// the leader hands to its transport, reset whenever the leader or role changes). A late
// heartbeat means the leader's loop was held up (a slow WAL sync, an overloaded machine):
// followers may be about to start an election.
//
// Thread safety: none; raftd's main loop owns it. Time is passed in (testable).
#pragma once

#include <chrono>
#include <cstdint>
#include <unordered_map>

namespace rusd::raftd {

class HeartbeatDelayDetector {
 public:
  using Clock = std::chrono::steady_clock;

  // A heartbeat to a peer more than `max_interval` after the previous one is late.
  explicit HeartbeatDelayDetector(Clock::duration max_interval) : max_interval_(max_interval) {}

  // Forgets every peer's last heartbeat (the leader or our role changed).
  void Reset() { last_.clear(); }

  // Records a heartbeat to `peer` sent at `now`. Returns by how much it is late: zero when
  // on time or the first one to that peer since the last Reset.
  Clock::duration Observe(uint64_t peer, Clock::time_point now) {
    auto [it, first] = last_.try_emplace(peer, now);
    if (first) return Clock::duration::zero();
    const Clock::duration late = (now - it->second) - max_interval_;
    it->second = now;
    return late > Clock::duration::zero() ? late : Clock::duration::zero();
  }

 private:
  const Clock::duration max_interval_;
  std::unordered_map<uint64_t, Clock::time_point> last_;
};

}  // namespace rusd::raftd
