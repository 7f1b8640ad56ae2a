// Lessor: stored's in-memory view of the leases for their clocks — etcd's lessor minus the
// persistence (the MVCC store keeps the records; see stored/mvcc/lease_records.h).
//
// What it promises:
// - It mirrors the applied lease set: Recover() at start, Apply() after every applied batch.
// - Only a primary lessor (this node's raftd leads; Promote/Demote) has finite expiries;
//   elsewhere leases never expire here (etcd's "forever"), so a follower or a deposed leader
//   never proposes a revocation.
// - Promote(extend) restarts every lease's clock from its remaining (checkpointed) TTL plus
//   `extend` and spreads pile-ups as etcd's Promote does, so no live lease expires because
//   of a leader change or a stored restart on the leader.
// - TakeExpired hands out each expired lease once per retry interval (the revocation it
//   triggers may be lost: a deposed leader, a full ring), at most `limit` at a time.
//
// Pure: time is passed in, nothing blocks. Not thread-safe: LeaseKeeper serialises calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "stored/mvcc/kv_store.h"

namespace rusd::stored {

class Lessor {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  struct Options {
    // etcd's expiredLeaseRetryInterval: an expired lease is handed out again after this if
    // its revocation has not been applied meanwhile.
    Duration revoke_retry = std::chrono::seconds(3);
    // etcd's leaseRevokeRate: Promote spreads expiries so that at most 3/4 of this many
    // fall in any one second.
    int revoke_rate = 1000;
    // etcd's lease checkpointing (3.5's --experimental-enable-lease-checkpoint, on here):
    // a lease with more than this left has its remaining TTL checkpointed through Raft
    // every interval, so a new leader restarts it from what was left, not from its full
    // TTL. Zero disables.
    Duration checkpoint_interval = std::chrono::minutes(5);
  };

  explicit Lessor(Options options) : options_(options) {}
  Lessor() : Lessor(Options{}) {}

  // Replaces the lease set with the persisted one (non-primary: no clocks run).
  void Recover(const std::vector<LeaseInfo>& leases);
  // Applies the changes of one applied batch, in order.
  void Apply(const std::vector<LeaseChange>& changes, TimePoint now);

  // This node now leads: every lease's clock restarts with `extend` added.
  void Promote(Duration extend, TimePoint now);
  // Primary only (no-op elsewhere): restarts every lease's clock as Promote does (never
  // shortening one, keeping the checkpoint schedule) for a restart that cut every client's
  // keep-alive stream while this node kept leading (the frontend's): an etcd member restart
  // gives each lease its full TTL again, so no lease expires while its clients reconnect.
  void Extend(Duration extend, TimePoint now);
  // This node no longer leads: clocks stop (leases never expire here).
  void Demote();
  bool primary() const { return primary_; }

  // etcd's Renew: the lease's TTL, its clock restarted. NotFound for an unknown lease,
  // Aborted for an expired one whose revocation is on its way (etcd's Renew waits for that
  // revocation, then answers "not found"), FailedPrecondition when not primary.
  Result<int64_t> Renew(int64_t id, TimePoint now);

  struct TimeToLive {
    int64_t remaining_seconds = 0;  // truncated, as etcd's int64(Remaining().Seconds())
    int64_t granted_ttl = 0;
  };
  std::optional<TimeToLive> Lookup(int64_t id, TimePoint now) const;

  // Every lease id, soonest expiry first (etcd's Leases()).
  std::vector<int64_t> Leases() const;
  size_t size() const { return leases_.size(); }

  // Up to `limit` leases whose expiry has passed; each is not handed out again before
  // revoke_retry unless renewed (which fails for it) or re-granted.
  std::vector<int64_t> TakeExpired(TimePoint now, size_t limit);
  // When the next lease expires (or its expiry is handed out again); max() if never.
  TimePoint NextExpiry() const {
    return queue_.empty() ? TimePoint::max() : queue_.begin()->first;
  }

  struct Checkpoint {
    int64_t id = 0;
    int64_t remaining_ttl = 0;  // seconds, rounded up; 0 clears a checkpoint
  };
  // Up to `limit` checkpoints to propose: those due (etcd's findDueScheduledCheckpoints)
  // and the clearing of a checkpoint a renew made stale (etcd's Renew proposes it).
  std::vector<Checkpoint> TakeCheckpoints(TimePoint now, size_t limit);
  // Gives back checkpoints TakeCheckpoints handed out that could not be proposed (a full
  // store-control ring): the next TakeCheckpoints hands them out again. A scheduled one is
  // due at once and its remaining TTL is recomputed then (the taken value is stale by the
  // time it is retried); a clearing one is proposed again unless the lease is gone. No-op
  // when not primary (a new leader schedules its own).
  void RequeueCheckpoints(const std::vector<Checkpoint>& checkpoints, TimePoint now);

 private:
  struct Lease {
    int64_t ttl = 0;
    int64_t remaining_ttl = 0;  // last checkpoint; 0 = none
    TimePoint expiry = TimePoint::max();
    TimePoint queued_at = TimePoint::max();  // its key in `queue_`
  };

  void SetExpiry(int64_t id, Lease& lease, TimePoint expiry);
  void Refresh(int64_t id, Lease& lease, Duration extend, TimePoint now);
  void ScheduleCheckpoint(int64_t id, const Lease& lease, TimePoint now);
  // etcd's Promote pile-up spreading over the whole queue.
  void SpreadPileUps(Duration extend, TimePoint now);

  Options options_;
  bool primary_ = false;
  std::unordered_map<int64_t, Lease> leases_;
  // (expiry or retry time, id) of every lease with a finite expiry; primary only.
  std::set<std::pair<TimePoint, int64_t>> queue_;
  // (when, id) of scheduled checkpoints, and ids whose checkpoint a renew cleared; primary.
  std::set<std::pair<TimePoint, int64_t>> checkpoints_;
  std::vector<int64_t> cleared_;
};

}  // namespace rusd::stored
