// LeaseForwarder: gets the leader's answer to the lease operations only the leader can give
// (keep-alives and TimeToLive: only the leader's stored runs the lease clocks), wherever the
// client connected. etcd forwards them from a follower to the leader's peer port
// (/leases, /leases/internal); no ring leaves a node, so a follower's frontend calls the
// leader's frontend over gRPC (rusd.internal.LeaseForward on the leader's advertised client
// URL, from the member list raftd reports).
//
// What it promises:
// - `done` runs exactly once: with the leader's answer (a serialized KeepAliveBatchReply or
//   LeaseTimeToLiveResponse), or with an error once the request's deadline (etcd's request
//   timeout: 5 s + 2 x election timeout) has passed.
// - On this node's leader: the node's own rings (ReadIndex first), as before.
// - Elsewhere: the leader's frontend. Leader changes are retried, as etcd's forward loop
//   does: "not leader" from either side, an unreachable leader (killed, restarting) or no
//   leader known are re-resolved every `retry_interval` (a forwarded attempt unanswered
//   for `attempt_timeout` too) until the deadline; then the client
//   gets etcd's "etcdserver: no leader" (none was ever known) or "etcdserver: request timed
//   out".
// - A forwarded answer's header names this member (etcd's v3rpc fills the header of a
//   keep-alive or TimeToLive answer from the server the client talks to); revision and
//   term are the leader's, at least this member's.
//
// Threads: any thread may call. `done` runs on the ring client's reply thread, a gRPC
// client thread or the forwarder's timer thread; it must be short and must not block.
// Stop() (or the destructor) cancels forwarded calls and waits for them; requests after
// Stop fail at once with "etcdserver: server stopped".
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "frontend/ring_client.h"

namespace grpc {
class Service;
}

namespace rusd::frontend {

struct LeaseForwarderOptions {
  uint64_t member_id = 0;
  // etcd's ReqTimeout(): 5 s + 2 x election timeout.
  std::chrono::milliseconds request_timeout{7000};
  // Between two attempts while the leader is unknown, unreachable or moved.
  std::chrono::milliseconds retry_interval{50};
  // One forwarded attempt is abandoned (and the leader re-resolved) after this: a leader
  // cut off by a partition never answers, and its successor is known within about an
  // election timeout. Keep-alives and TimeToLive are idempotent, so a retry is harmless.
  std::chrono::milliseconds attempt_timeout{1000};
};

class LeaseForwarder {
 public:
  LeaseForwarder(RingClient& ring, const LeaseForwarderOptions& options);
  ~LeaseForwarder();
  LeaseForwarder(const LeaseForwarder&) = delete;
  LeaseForwarder& operator=(const LeaseForwarder&) = delete;

  // `batch` is a serialized rusd.internal.KeepAliveBatch; `done` gets a KeepAliveBatchReply.
  void KeepAliveBatch(std::string batch, RequestCallback done);
  // `request` is a serialized etcdserverpb.LeaseTimeToLiveRequest; `done` gets the response.
  void TimeToLive(std::string request, RequestCallback done);

  // Cancels what is forwarded, waits for it, fails later requests. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The leader's side: rusd.internal.LeaseForward on this node's rings. Answers only while
// this node's raftd reports it leads (else Unavailable "etcdserver: not leader"), never
// forwards. Must outlive the grpc::Server it is registered with.
std::unique_ptr<grpc::Service> MakeLeaseForwardService(RingClient& ring);

}  // namespace rusd::frontend
