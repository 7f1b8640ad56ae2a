#include "stored/lease/lease_keeper.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "ipc/metrics_area.h"
#include "ipc/ring.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"
#include "stored/error_reply.h"
#include "stored/mvcc/kv_errors.h"
#include "stored/read_worker_pool.h"

namespace rusd::stored {

namespace {

// etcd's ErrGRPCNotLeader: a keep-alive reached a stored whose node does not lead.
Status NotLeader() { return Status::Unavailable("etcdserver: not leader"); }

}  // namespace

bool IsLeaseRead(ipc::MessageType type) {
  return type == ipc::MessageType::kLeaseKeepAlive ||
         type == ipc::MessageType::kLeaseKeepAliveBatch ||
         type == ipc::MessageType::kLeaseTimeToLive || type == ipc::MessageType::kLeaseLeases;
}

LeaseKeeper::LeaseKeeper(KvStore& store, ReadWorkerPool& workers, ipc::RingWriter& control,
                         const LeaseKeeperOptions& options)
    : store_(store),
      workers_(workers),
      control_(control),
      options_(options),
      lessor_(options.lessor) {}

LeaseKeeper::~LeaseKeeper() { Stop(); }

Status LeaseKeeper::Recover() {
  Result<std::vector<LeaseInfo>> leases = store_.Leases();
  if (!leases.ok()) return leases.status();
  std::lock_guard lock(mu_);
  lessor_.Recover(*leases);
  applied_ = store_.applied_index();
  spdlog::info("leases: recovered {} leases", leases->size());
  return Status::Ok();
}

void LeaseKeeper::OnLeaderState(std::string_view payload) {
  internal::LeaderState state;
  if (!state.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    spdlog::warn("committed ring: unparsable LeaderState");
    return;
  }
  std::vector<Query> ready;
  {
    std::lock_guard lock(mu_);
    if (!leadership_known_) {
      leadership_known_ = true;
      ready.swap(awaiting_leadership_);
    }
    // Keep-alives waiting for a revocation: a demotion answers them "not leader" (the
    // frontend retries on the new leader, where the lease may live on), a new term renews.
    for (Query& q : awaiting_revoke_) ready.push_back(std::move(q));
    awaiting_revoke_.clear();
    if (state.is_leader()) {
      if (term_ != state.term() || !lessor_.primary()) {
        term_ = state.term();
        in_flight_.clear();
        lessor_.Promote(options_.promote_extend, Lessor::Clock::now());
        spdlog::info("leases: leader at term {}: {} lease clocks (re)started with +{} ms",
                     term_, lessor_.size(), options_.promote_extend.count());
      }
    } else if (lessor_.primary() || term_ != 0) {
      spdlog::info("leases: not leader (term {}): lease clocks stopped", state.term());
      term_ = 0;
      in_flight_.clear();
      lessor_.Demote();
    }
  }
  // Queries that waited for the first leader state, now that it took effect.
  for (const Query& q : ready) Serve(q);
}

void LeaseKeeper::OnApplied(uint64_t applied, const std::vector<LeaseChange>& changes) {
  std::vector<Query> ready;
  {
    std::lock_guard lock(mu_);
    applied_ = applied;
    if (!changes.empty()) {
      lessor_.Apply(changes, Lessor::Clock::now());
      for (const LeaseChange& c : changes) {
        if (c.kind == LeaseChange::Kind::kRevoked) in_flight_.erase(c.id);
        if (options_.metrics == nullptr) continue;
        if (c.kind == LeaseChange::Kind::kGranted) {
          options_.metrics->Add(ipc::Metric::kLeaseGranted);
        } else if (c.kind == LeaseChange::Kind::kRevoked) {
          options_.metrics->Add(ipc::Metric::kLeaseRevoked);
        }
      }
    }
    if (!awaiting_revoke_.empty()) {
      const bool revoked = std::any_of(changes.begin(), changes.end(), [](const LeaseChange& c) {
        return c.kind == LeaseChange::Kind::kRevoked;
      });
      if (revoked) {
        for (Query& q : awaiting_revoke_) ready.push_back(std::move(q));
        awaiting_revoke_.clear();
      }
    }
    auto end = parked_.upper_bound(applied);
    std::vector<Query>& to = leadership_known_ ? ready : awaiting_leadership_;
    for (auto it = parked_.begin(); it != end; ++it) to.push_back(std::move(it->second));
    parked_.erase(parked_.begin(), end);
  }
  for (const Query& q : ready) Serve(q);
}

void LeaseKeeper::OnFrontendRestarted() {
  std::lock_guard lock(mu_);
  if (!lessor_.primary()) return;
  lessor_.Extend(options_.promote_extend, Lessor::Clock::now());
  spdlog::info("leases: frontend restarted: {} lease clocks restarted with +{} ms",
               lessor_.size(), options_.promote_extend.count());
}

void LeaseKeeper::Submit(ipc::MessageType type, uint64_t request_id, std::string payload) {
  internal::LeaseRead read;
  if (!read.ParseFromString(payload)) {
    workers_.SendReply(
        ipc::MessageType::kError, request_id,
        EncodeErrorReply(Status::InvalidArgument("rusd-stored: malformed lease read")));
    return;
  }
  Query q{type, request_id, std::move(*read.mutable_request())};
  {
    std::lock_guard lock(mu_);
    if (read.min_applied_index() > applied_) {
      parked_.emplace(read.min_applied_index(), std::move(q));
      return;
    }
    if (!leadership_known_) {
      awaiting_leadership_.push_back(std::move(q));
      return;
    }
  }
  Serve(q);
}

void LeaseKeeper::FillHeader(etcdserverpb::ResponseHeader* h) const {
  h->set_cluster_id(options_.cluster_id);
  h->set_member_id(options_.member_id);
  h->set_revision(store_.current_revision());
  h->set_raft_term(store_.raft_term());
}

void LeaseKeeper::Serve(const Query& q) {
  auto fill = [&](etcdserverpb::ResponseHeader* h) { FillHeader(h); };
  auto reply_error = [&](const Status& st) {
    workers_.SendReply(ipc::MessageType::kError, q.request_id, EncodeErrorReply(st));
  };
  const Lessor::TimePoint now = Lessor::Clock::now();
  switch (q.type) {
    case ipc::MessageType::kLeaseKeepAlive: {
      etcdserverpb::LeaseKeepAliveRequest req;
      if (!req.ParseFromString(q.request)) return reply_error(Status::InvalidArgument("malformed"));
      etcdserverpb::LeaseKeepAliveResponse resp;
      // etcd fills the header before renewing (a revoke it races with is never "after").
      fill(resp.mutable_header());
      resp.set_id(req.id());
      Result<int64_t> ttl = Status::Ok();
      {
        std::lock_guard lock(mu_);
        ttl = lessor_.Renew(req.id(), now);
        // Expired, revocation pending: answer once it is applied or leadership moves, as
        // etcd's Renew waits on the lease's revokec (OnApplied / OnLeaderState serve it again).
        if (ttl.status().code() == StatusCode::kAborted) {
          awaiting_revoke_.push_back(q);
          return;
        }
      }
      if (ttl.ok()) CountRenewals(1);
      if (!ttl.ok()) {
        if (ttl.status().code() == StatusCode::kFailedPrecondition) return reply_error(NotLeader());
        resp.set_ttl(0);  // etcd: an unknown lease answers TTL 0, not an error
      } else {
        resp.set_ttl(*ttl);
      }
      workers_.SendReply(ipc::MessageType::kResult, q.request_id, resp.SerializeAsString());
      return;
    }
    case ipc::MessageType::kLeaseKeepAliveBatch: {
      internal::KeepAliveBatch req;
      if (!req.ParseFromString(q.request)) return reply_error(Status::InvalidArgument("malformed"));
      internal::KeepAliveBatchReply resp;
      fill(resp.mutable_header());
      resp.mutable_ttls()->Reserve(req.ids_size());
      uint64_t renewed = 0;
      {
        std::lock_guard lock(mu_);
        if (!lessor_.primary()) return reply_error(NotLeader());
        bool pending_revoke = false;
        for (int64_t id : req.ids()) {
          Result<int64_t> ttl = lessor_.Renew(id, now);
          if (ttl.ok()) {
            ++renewed;
            resp.add_ttls(*ttl);
          } else if (ttl.status().code() == StatusCode::kAborted) {
            pending_revoke = true;
            resp.add_ttls(-1);  // expired, revocation pending: the frontend asks again
          } else {
            resp.add_ttls(0);
          }
        }
        if (pending_revoke && req.wait_revoked()) {
          // Served again when a revocation applies or leadership moves. What it renewed
          // meanwhile is renewed again then (harmless: the clock restarts a bit later).
          awaiting_revoke_.push_back(q);
          if (renewed > 0) CountRenewals(renewed);
          return;
        }
      }
      CountRenewals(renewed);
      workers_.SendReply(ipc::MessageType::kResult, q.request_id, resp.SerializeAsString());
      return;
    }
    case ipc::MessageType::kLeaseTimeToLive: {
      etcdserverpb::LeaseTimeToLiveRequest req;
      if (!req.ParseFromString(q.request)) return reply_error(Status::InvalidArgument("malformed"));
      std::optional<Lessor::TimeToLive> ttl;
      {
        std::lock_guard lock(mu_);
        // Only the leader's clocks run: elsewhere the remaining TTL would be made up (etcd
        // answers TimeToLive on the leader only; follower frontends forward it there).
        if (!lessor_.primary()) return reply_error(NotLeader());
        ttl = lessor_.Lookup(req.id(), now);
      }
      etcdserverpb::LeaseTimeToLiveResponse resp;
      resp.set_id(req.id());
      if (!ttl) {
        // etcd's v3rpc turns "lease not found" into TTL -1 (etcdctl: "already expired").
        fill(resp.mutable_header());
        resp.set_ttl(-1);
        workers_.SendReply(ipc::MessageType::kResult, q.request_id, resp.SerializeAsString());
        return;
      }
      resp.set_ttl(ttl->remaining_seconds);
      resp.set_grantedttl(ttl->granted_ttl);
      if (!req.keys()) {
        fill(resp.mutable_header());
        workers_.SendReply(ipc::MessageType::kResult, q.request_id, resp.SerializeAsString());
        return;
      }
      // The keys are a RocksDB scan that grows with the lease: run it on a read worker, as
      // ranges are, so that neither the reads thread nor the apply thread (which releases
      // parked queries) stalls behind it. The header is taken with the scan.
      workers_.ServeTask(q.request_id, [this, resp = std::move(resp), id = req.id()]() mutable {
        ReadWorkerPool::Reply reply;
        FillHeader(resp.mutable_header());
        Result<std::vector<std::string>> keys = store_.LeaseKeys(id);
        if (!keys.ok()) {
          reply.type = ipc::MessageType::kError;
          reply.payload = EncodeErrorReply(keys.status());
          return reply;
        }
        resp.mutable_keys()->Reserve(static_cast<int>(keys->size()));
        for (std::string& k : *keys) resp.add_keys(std::move(k));
        reply.type = ipc::MessageType::kResult;
        reply.payload = resp.SerializeAsString();
        return reply;
      });
      return;
    }
    case ipc::MessageType::kLeaseLeases: {
      etcdserverpb::LeaseLeasesResponse resp;
      fill(resp.mutable_header());
      std::vector<int64_t> ids;
      {
        std::lock_guard lock(mu_);
        ids = lessor_.Leases();
      }
      for (int64_t id : ids) resp.add_leases()->set_id(id);
      workers_.SendReply(ipc::MessageType::kResult, q.request_id, resp.SerializeAsString());
      return;
    }
    default:
      return reply_error(Status::Unimplemented("rusd-stored: not a lease read"));
  }
}

std::chrono::milliseconds LeaseKeeper::ExpireOnce(Lessor::TimePoint now) {
  internal::LeaseProposals proposals;
  uint64_t expired_count = 0;
  std::vector<Lessor::Checkpoint> checkpoints;
  {
    std::lock_guard lock(mu_);
    if (!lessor_.primary() || term_ == 0) return options_.idle_tick;
    // Proposals lost on the way (a full ring, a deposed raftd) come back through the
    // lessor's retry interval; forget them here after the same interval.
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      if (now - it->second > options_.lessor.revoke_retry) {
        it = in_flight_.erase(it);
      } else {
        ++it;
      }
    }
    if (in_flight_.size() >= options_.max_revokes_in_flight) return options_.expiry_tick;
    const size_t room = std::min(options_.max_revokes_per_tick,
                                 options_.max_revokes_in_flight - in_flight_.size());
    std::vector<int64_t> expired = lessor_.TakeExpired(now, room);
    // etcd's maxLeaseCheckpointBatchSize: one checkpoint command carries up to 1000.
    checkpoints = lessor_.TakeCheckpoints(now, 1000);
    if (expired.empty() && checkpoints.empty()) {
      const Lessor::TimePoint next = lessor_.NextExpiry();
      if (next - now >= options_.idle_tick) return options_.idle_tick;
      return std::max(options_.expiry_tick / 5,
                      std::chrono::ceil<std::chrono::milliseconds>(next - now));
    }
    proposals.set_term(term_);
    if (!checkpoints.empty()) {
      internal::Command cmd;
      for (const Lessor::Checkpoint& cp : checkpoints) {
        auto* c = cmd.mutable_lease_checkpoint()->add_checkpoints();
        c->set_id(cp.id);
        c->set_remaining_ttl(cp.remaining_ttl);
      }
      proposals.add_commands(cmd.SerializeAsString());
    }
    expired_count = expired.size();
    for (int64_t id : expired) {
      in_flight_[id] = now;
      internal::Command cmd;  // request_id 0: nobody waits for an expiry
      cmd.mutable_lease_revoke()->set_id(id);
      proposals.add_commands(cmd.SerializeAsString());
    }
  }
  Status st = control_.TryWrite(ipc::MessageType::kLeaseProposals, proposals.term(),
                                proposals.SerializeAsString());
  if (st.ok() && options_.metrics != nullptr && expired_count > 0) {
    options_.metrics->Add(ipc::Metric::kLeaseExpired, expired_count);
  }
  if (!st.ok()) {
    // Revocations come back through the lessor's retry interval. Checkpoints go back to the
    // lessor now: a lost one would let a new leader restart its lease from a stale (or a
    // renew-cleared) remaining TTL. Under a new term Promote has rescheduled them all.
    if (!checkpoints.empty()) {
      std::lock_guard lock(mu_);
      if (term_ == proposals.term()) lessor_.RequeueCheckpoints(checkpoints, now);
    }
    if (!control_full_) {
      spdlog::warn("leases: store-control full, {} lease proposals wait for the retry",
                   proposals.commands_size());
    }
    control_full_ = true;
  } else {
    control_full_ = false;
  }
  return options_.expiry_tick;
}

void LeaseKeeper::CountRenewals(uint64_t n) {
  if (options_.metrics != nullptr && n > 0) options_.metrics->Add(ipc::Metric::kLeaseRenewed, n);
}

void LeaseKeeper::RunExpiry() {
  std::unique_lock lock(stop_mu_);
  while (!stop_) {
    lock.unlock();
    const std::chrono::milliseconds wait = ExpireOnce(Lessor::Clock::now());
    lock.lock();
    stop_cv_.wait_for(lock, wait, [&] { return stop_; });
  }
}

void LeaseKeeper::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
}

bool LeaseKeeper::primary() const {
  std::lock_guard lock(mu_);
  return lessor_.primary();
}

uint64_t LeaseKeeper::term() const {
  std::lock_guard lock(mu_);
  return term_;
}

}  // namespace rusd::stored
