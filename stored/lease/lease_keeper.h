// LeaseKeeper: the lease side of rusd-stored. It owns the Lessor (the in-memory lease
// clocks) and connects it to the process:
//
// - apply thread: OnLeaderState (committed ring kLeaderState: promotion / demotion, with the
//   Raft term) and OnApplied (the lease changes of each applied batch; releases parked
//   lease reads whose min_applied_index is now applied).
// - reads thread: Submit (reads ring kLeaseKeepAlive / kLeaseTimeToLive / kLeaseLeases).
//   A query is served once the applied index reaches its min_applied_index (for a
//   keep-alive, the ReadIndex the frontend obtained: only a confirmed leader renews, as
//   etcd 3.5). Replies (kResult = the etcd response, or kError) go through the read workers;
//   a TimeToLive with keys also scans the lease's keys there (never on the reads or apply
//   thread, which serve the cheap in-memory part).
// - its own expiry thread (RunExpiry): while this node leads, it takes expired leases and
//   proposes their revocations to raftd on store-control (kLeaseProposals, stamped with the
//   term it leads in; raftd drops them under any other term). Rate-limited: at most
//   `max_revokes_per_tick` per tick and `max_revokes_in_flight` proposed but not yet applied,
//   so a mass expiry becomes a steady trickle of small entries interleaved with other
//   writes instead of one huge apply batch.
//
// A stored restart on the leader starts non-primary; raftd re-sends kLeaderState after our
// kResumeFrom, which promotes (extends every TTL), as the brief's contract asks. A raftd
// restart always ends in a new term (a new promotion, or a demotion first). A frontend
// restart extends every lease the same way (OnFrontendRestarted).
//
// Threads: as listed; every method is thread-safe (one mutex around the lessor, never held
// across a ring write or a RocksDB call).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "ipc/message_type.h"
#include "stored/lease/lessor.h"
#include "stored/mvcc/kv_store.h"

namespace etcdserverpb {
class ResponseHeader;
}
namespace rusd::ipc {
class MetricsArea;
}

namespace rusd::ipc {
class RingWriter;
}

namespace rusd::stored {

class ReadWorkerPool;

struct LeaseKeeperOptions {
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  // Added to every TTL on promotion (etcd: the election timeout).
  std::chrono::milliseconds promote_extend{1000};
  std::chrono::milliseconds expiry_tick{2};
  // The longest the expiry thread sleeps when nothing is due soon (a lease granted meanwhile
  // expires at most this late; etcd checks every 500 ms).
  std::chrono::milliseconds idle_tick{50};
  size_t max_revokes_per_tick = 4;
  size_t max_revokes_in_flight = 16;
  Lessor::Options lessor;
  // etcd_debugging_lease_{granted,revoked,renewed}_total and
  // etcd_debugging_server_lease_expired_total go here (the segment's; null in unit tests).
  ipc::MetricsArea* metrics = nullptr;
};

// True for the reads-ring frame types LeaseKeeper serves.
bool IsLeaseRead(ipc::MessageType type);

class LeaseKeeper {
 public:
  // `store`, `workers` and `control` (the store-control writer) must outlive the keeper.
  LeaseKeeper(KvStore& store, ReadWorkerPool& workers, ipc::RingWriter& control,
              const LeaseKeeperOptions& options);
  ~LeaseKeeper();

  // Loads the persisted leases (non-primary until raftd says otherwise).
  Status Recover();

  // Apply thread.
  void OnLeaderState(std::string_view payload);
  void OnApplied(uint64_t applied, const std::vector<LeaseChange>& changes);
  // This node's frontend restarted (its epoch changed): every keep-alive stream through it
  // was cut and its clients must reconnect. A leader restarts every lease's clock with
  // promote_extend (Lessor::Extend), as an etcd member restart would, so that no kept-alive
  // lease expires while they do. No-op when not leading.
  void OnFrontendRestarted();

  // Reads thread: a lease query frame.
  void Submit(ipc::MessageType type, uint64_t request_id, std::string payload);

  // The expiry thread's body: runs until Stop().
  void RunExpiry();
  void Stop();

  // For tests and logs.
  bool primary() const;
  uint64_t term() const;

 private:
  struct Query {
    ipc::MessageType type;
    uint64_t request_id;
    std::string request;  // the etcd request bytes
  };
  void Serve(const Query& q);
  // Any thread (a read worker builds TimeToLive-with-keys replies).
  void FillHeader(etcdserverpb::ResponseHeader* h) const;
  // Proposes what is due; returns how long the expiry thread may sleep.
  std::chrono::milliseconds ExpireOnce(Lessor::TimePoint now);
  void CountRenewals(uint64_t n);

  KvStore& store_;
  ReadWorkerPool& workers_;
  ipc::RingWriter& control_;
  const LeaseKeeperOptions options_;

  mutable std::mutex mu_;
  Lessor lessor_;                 // guarded by mu_
  uint64_t term_ = 0;             // the term this node leads in (0: not leader); mu_
  uint64_t applied_ = 0;          // mu_
  // No kLeaderState seen yet (this stored just started): lease queries wait for it rather
  // than fail with "not leader" on the leader. mu_
  bool leadership_known_ = false;
  std::vector<Query> awaiting_leadership_;  // mu_
  std::multimap<uint64_t, Query> parked_;  // by min_applied_index; mu_
  // Keep-alives of an expired lease whose revocation is pending (etcd's Renew waits on
  // revokec): served again after the next applied revocation or leader state. mu_
  std::vector<Query> awaiting_revoke_;
  // Revocations proposed and not yet applied, by lease id -> when proposed; mu_.
  std::unordered_map<int64_t, Lessor::TimePoint> in_flight_;
  // The last proposal write found store-control full (logged once per streak). Expiry
  // thread only.
  bool control_full_ = false;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by stop_mu_
};

}  // namespace rusd::stored
