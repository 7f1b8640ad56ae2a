#include "stored/lease/lessor.h"

#include <algorithm>

namespace rusd::stored {

namespace {

std::chrono::seconds Seconds(int64_t s) { return std::chrono::seconds(s); }

}  // namespace

void Lessor::SetExpiry(int64_t id, Lease& lease, TimePoint expiry) {
  // A renew moves the lease's queue entry (every keep-alive does): the node is re-keyed
  // rather than freed and allocated again, and inserted with the end as hint, which is
  // where a renewed lease usually goes (now + its TTL is at least as late as the others
  // when TTLs are alike); a wrong hint costs the usual search.
  decltype(queue_)::node_type node;
  if (lease.queued_at != TimePoint::max()) node = queue_.extract({lease.queued_at, id});
  lease.expiry = expiry;
  lease.queued_at = expiry;
  if (expiry == TimePoint::max()) return;
  if (node.empty()) {
    queue_.emplace_hint(queue_.end(), expiry, id);
    return;
  }
  node.value() = {expiry, id};
  queue_.insert(queue_.end(), std::move(node));
}

// etcd's refresh: now + extend + (remaining TTL if checkpointed, else the TTL).
void Lessor::Refresh(int64_t id, Lease& lease, Duration extend, TimePoint now) {
  const int64_t secs = lease.remaining_ttl > 0 ? lease.remaining_ttl : lease.ttl;
  // TTLs go up to etcd's 9e9 s (9e18 ns): after ~7 years of uptime `now + TTL` would
  // overflow the clock's int64 and land in the past (an instant revoke). Saturate instead.
  const Duration ttl = Seconds(secs) + extend;
  const TimePoint expiry =
      ttl >= TimePoint::max() - now ? TimePoint::max() - Duration(1) : now + ttl;
  SetExpiry(id, lease, expiry);
}

// etcd's scheduleCheckpointIfNeeded: only leases with more than one interval left.
void Lessor::ScheduleCheckpoint(int64_t id, const Lease& lease, TimePoint now) {
  if (options_.checkpoint_interval <= Duration::zero() || !primary_) return;
  const int64_t secs = lease.remaining_ttl > 0 ? lease.remaining_ttl : lease.ttl;
  if (Seconds(secs) > options_.checkpoint_interval) {
    checkpoints_.insert({now + options_.checkpoint_interval, id});
  }
}

void Lessor::Recover(const std::vector<LeaseInfo>& leases) {
  leases_.clear();
  queue_.clear();
  primary_ = false;
  for (const LeaseInfo& l : leases) {
    Lease& lease = leases_[l.id];
    lease.ttl = l.ttl;
    lease.remaining_ttl = l.remaining_ttl;
  }
}

void Lessor::Apply(const std::vector<LeaseChange>& changes, TimePoint now) {
  for (const LeaseChange& c : changes) {
    switch (c.kind) {
      case LeaseChange::Kind::kGranted: {
        Lease& lease = leases_[c.id];
        lease.ttl = c.ttl;
        lease.remaining_ttl = 0;
        if (primary_) {
          Refresh(c.id, lease, Duration::zero(), now);
          ScheduleCheckpoint(c.id, lease, now);
        } else {
          SetExpiry(c.id, lease, TimePoint::max());
        }
        break;
      }
      case LeaseChange::Kind::kRevoked: {
        auto it = leases_.find(c.id);
        if (it == leases_.end()) break;
        SetExpiry(c.id, it->second, TimePoint::max());
        leases_.erase(it);
        break;
      }
      case LeaseChange::Kind::kCheckpointed: {
        // etcd: a checkpoint only records the remaining TTL; Promote applies it.
        auto it = leases_.find(c.id);
        if (it != leases_.end()) {
          it->second.remaining_ttl = c.remaining_ttl;
          ScheduleCheckpoint(c.id, it->second, now);  // the next one
        }
        break;
      }
    }
  }
}

void Lessor::Promote(Duration extend, TimePoint now) {
  primary_ = true;
  checkpoints_.clear();
  cleared_.clear();
  for (auto& [id, lease] : leases_) {
    Refresh(id, lease, extend, now);
    ScheduleCheckpoint(id, lease, now);
  }
  SpreadPileUps(extend, now);
}

void Lessor::Extend(Duration extend, TimePoint now) {
  if (!primary_) return;
  for (auto& [id, lease] : leases_) {
    const TimePoint before = lease.expiry;
    Refresh(id, lease, extend, now);
    // A stale checkpoint could restart a clock below what a renew gave it: keep the later.
    if (lease.expiry < before) SetExpiry(id, lease, before);
  }
  SpreadPileUps(extend, now);
}

void Lessor::SpreadPileUps(Duration extend, TimePoint now) {
  if (leases_.size() < static_cast<size_t>(options_.revoke_rate)) return;

  // etcd's pile-up spreading: walk the leases by expiry and, where more than 3/4 of the
  // revoke rate would expire within one second, push the excess later.
  std::vector<std::pair<TimePoint, int64_t>> order(queue_.begin(), queue_.end());
  const double target = (3.0 * options_.revoke_rate) / 4.0;
  Duration base = order.front().first - now;
  Duration next_window = base + std::chrono::seconds(1);
  int64_t expires = 0;
  for (const auto& [expiry, id] : order) {
    const Duration remaining = expiry - now;
    if (remaining > next_window) {
      base = remaining;
      next_window = base + std::chrono::seconds(1);
      expires = 1;
      continue;
    }
    ++expires;
    if (expires <= target) continue;
    double delay_ns = 1e9 * (static_cast<double>(expires) / target);
    delay_ns -= static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        remaining - base)
                                        .count());
    const Duration delay = std::chrono::duration_cast<Duration>(
        std::chrono::nanoseconds(static_cast<int64_t>(delay_ns)));
    next_window = base + delay;
    Lease& lease = leases_[id];
    const TimePoint current = lease.expiry;
    Refresh(id, lease, delay + extend, now);
    if (lease.expiry < current) SetExpiry(id, lease, current);  // only ever later
  }
}

void Lessor::Demote() {
  primary_ = false;
  queue_.clear();
  checkpoints_.clear();
  cleared_.clear();
  for (auto& [id, lease] : leases_) {
    lease.expiry = TimePoint::max();
    lease.queued_at = TimePoint::max();
  }
}

Result<int64_t> Lessor::Renew(int64_t id, TimePoint now) {
  if (!primary_) return Status::FailedPrecondition("not a primary lessor");
  auto it = leases_.find(id);
  if (it == leases_.end()) return Status::NotFound("lease not found");
  Lease& lease = it->second;
  // Expired: its revocation is pending or in flight; etcd waits for it and then answers
  // "not found" (TTL 0), or "not primary" if leadership moves first (LeaseKeeper waits).
  if (lease.expiry <= now) return Status(StatusCode::kAborted, "lease expired, revocation pending");
  if (lease.remaining_ttl > 0) {
    // etcd clears the checkpoint on renew, through Raft, so that a new leader does not
    // restart the lease from the stale remaining TTL.
    lease.remaining_ttl = 0;
    cleared_.push_back(id);
  }
  Refresh(id, lease, Duration::zero(), now);
  return lease.ttl;
}

std::optional<Lessor::TimeToLive> Lessor::Lookup(int64_t id, TimePoint now) const {
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  const Lease& lease = it->second;
  TimeToLive out;
  out.granted_ttl = lease.ttl;
  if (lease.expiry == TimePoint::max()) {
    out.remaining_seconds = lease.remaining_ttl > 0 ? lease.remaining_ttl : lease.ttl;
  } else {
    out.remaining_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                std::max(lease.expiry - now, Duration::zero()))
                                .count();
  }
  return out;
}

std::vector<int64_t> Lessor::Leases() const {
  std::vector<std::pair<TimePoint, int64_t>> all;
  all.reserve(leases_.size());
  for (const auto& [id, lease] : leases_) all.push_back({lease.expiry, id});
  std::sort(all.begin(), all.end());
  std::vector<int64_t> ids;
  ids.reserve(all.size());
  for (const auto& p : all) ids.push_back(p.second);
  return ids;
}

std::vector<int64_t> Lessor::TakeExpired(TimePoint now, size_t limit) {
  std::vector<int64_t> out;
  while (out.size() < limit && !queue_.empty() && queue_.begin()->first <= now) {
    const int64_t id = queue_.begin()->second;
    queue_.erase(queue_.begin());
    Lease& lease = leases_[id];
    // Hand it out again only after the retry interval (its expiry stays in the past).
    lease.queued_at = now + options_.revoke_retry;
    queue_.insert({lease.queued_at, id});
    out.push_back(id);
  }
  return out;
}

std::vector<Lessor::Checkpoint> Lessor::TakeCheckpoints(TimePoint now, size_t limit) {
  std::vector<Checkpoint> out;
  while (out.size() < limit && !cleared_.empty()) {
    if (leases_.count(cleared_.back()) != 0) out.push_back({cleared_.back(), 0});
    cleared_.pop_back();
  }
  while (out.size() < limit && !checkpoints_.empty() && checkpoints_.begin()->first <= now) {
    const int64_t id = checkpoints_.begin()->second;
    checkpoints_.erase(checkpoints_.begin());
    auto it = leases_.find(id);
    if (it == leases_.end() || it->second.expiry <= now) continue;
    const Lease& lease = it->second;
    // etcd: math.Ceil of the seconds left; nothing to record if the full TTL is left.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(lease.expiry - now);
    const int64_t remaining = (left.count() + 999) / 1000;
    if (remaining >= lease.ttl) continue;
    out.push_back({id, remaining});
  }
  return out;
}

void Lessor::RequeueCheckpoints(const std::vector<Checkpoint>& checkpoints, TimePoint now) {
  if (!primary_) return;
  for (const Checkpoint& cp : checkpoints) {
    auto it = leases_.find(cp.id);
    if (it == leases_.end()) continue;
    if (cp.remaining_ttl == 0) {
      // Still needed only while no later checkpoint was recorded (a renew sets 0 again and
      // queues its own clearing, so a duplicate here is harmless but avoided).
      if (std::find(cleared_.begin(), cleared_.end(), cp.id) == cleared_.end()) {
        cleared_.push_back(cp.id);
      }
    } else {
      checkpoints_.insert({now, cp.id});
    }
  }
}

}  // namespace rusd::stored
