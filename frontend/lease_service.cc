#include "frontend/lease_service.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <vector>
#include <mutex>
#include <optional>
#include <string>

#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "frontend/connection_cork.h"
#include "frontend/grpc_call_metrics.h"
#include "frontend/grpc_status.h"
#include "frontend/learner_gate.h"
#include "frontend/lease_forwarder.h"
#include "frontend/ring_client.h"
#include "ipc/message_type.h"
#include "ipc/metrics_area.h"
#include "ipc/metrics_grpc_methods.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"

namespace rusd::frontend {
namespace {

using etcdserverpb::LeaseKeepAliveRequest;
using etcdserverpb::LeaseKeepAliveResponse;

constexpr uint16_t Type(ipc::MessageType t) { return static_cast<uint16_t>(t); }

// Completes a unary call by parsing stored's response bytes into `resp`.
template <typename Response>
RequestCallback Complete(grpc::ServerUnaryReactor* reactor, Response* resp) {
  return [reactor, resp](const Status& st, std::string&& payload) {
    if (!st.ok()) {
      reactor->Finish(ToGrpcStatus(st));
      return;
    }
    if (!resp->ParseFromString(payload)) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "rusd: malformed lease reply"));
      return;
    }
    reactor->Finish(grpc::Status::OK);
  };
}

// Gathers keep-alives from every stream of this frontend: while one batch is in flight
// (ReadIndex, then stored renews them all), new keep-alives wait and leave together as the
// next batch. One ring round trip per batch instead of per keep-alive; under light load a
// batch is a single keep-alive sent at once.
//
// The answers of a batch go out from the thread that got stored's reply (the ring client's
// reply thread on the leader), one gRPC write per stream, with the client connections corked
// (RingClient::CorkConnections, connection_cork.h) and flushed every kAnswersPerFlush
// answers, so that a connection gets its answers in a few TCP segments rather than one per
// keep-alive (each segment costs both ends a wake-up and the loopback path), while the
// first answers do not wait for the batch's last. The batch reply is often the only reply
// the reply thread has at hand, which alone it would not cork.
class KeepAliveBatcher {
 public:
  using Done = std::function<void(const Status&, const LeaseKeepAliveResponse&)>;
  KeepAliveBatcher(LeaseForwarder& leader, RingClient& ring) : leader_(leader), ring_(ring) {}

  void Add(int64_t id, Done done) {
    {
      std::lock_guard lock(mu_);
      waiting_.push_back({id, std::move(done)});
      if (in_flight_ >= kMaxInFlight) return;
      ++in_flight_;
    }
    SendNext();
  }

 private:
  static constexpr int kMaxInFlight = 2;
  // Measured (A/B under load, 1,000 streams over 8 connections): flushing every 64 answers
  // cost ~6 % more CPU per keep-alive on both ends than every 256 or only at the end, with
  // the same throughput and p99; 256 bounds how long a very large batch holds its first
  // answers.
  static constexpr size_t kAnswersPerFlush = 256;
  struct Item {
    int64_t id;
    Done done;
  };

  // Sends everything waiting as one batch; called with one in-flight slot taken.
  void SendNext() {
    auto batch = std::make_shared<std::vector<Item>>();
    {
      std::lock_guard lock(mu_);
      if (waiting_.empty()) {
        --in_flight_;
        return;
      }
      batch->swap(waiting_);
    }
    internal::KeepAliveBatch req;
    req.mutable_ids()->Reserve(static_cast<int>(batch->size()));
    for (const Item& it : *batch) req.add_ids(it.id);
    // To this node's stored if it leads, else to the leader's frontend (lease_forwarder.h).
    leader_.KeepAliveBatch(req.SerializeAsString(),
                           [this, batch](const Status& st, std::string&& payload) {
                             Complete(*batch, st, payload);
                             SendNext();  // the slot passes to whatever gathered meanwhile
                           });
  }

  // Answers the batch; ids stored marked -1 (expired, revocation pending) are asked again
  // with wait_revoked, alone, so that they get etcd's answer (TTL 0 once revoked, or a
  // renewal by a new leader) without holding up the rest of the batch.
  void Complete(std::vector<Item>& batch, const Status& st, const std::string& payload) {
    auto again = std::make_shared<std::vector<Item>>(Answer(batch, st, payload, &ring_));
    if (again->empty()) return;
    internal::KeepAliveBatch req;
    for (const Item& it : *again) req.add_ids(it.id);
    req.set_wait_revoked(true);
    leader_.KeepAliveBatch(req.SerializeAsString(),
                           [again](const Status& st, std::string&& payload) {
                             (void)Answer(*again, st, payload, nullptr);
                           });
  }

  // Calls each item's `done` from stored's reply, except (when `first`, the ring client
  // whose connections the answers are corked on, is given) the items marked -1, which it
  // returns unanswered.
  static std::vector<Item> Answer(std::vector<Item>& batch, const Status& st,
                                  const std::string& payload, RingClient* first) {
    const bool hold_pending = first != nullptr;
    internal::KeepAliveBatchReply reply;
    Status status = st;
    if (status.ok() && (!reply.ParseFromString(payload) ||
                        reply.ttls_size() != static_cast<int>(batch.size()))) {
      status = Status::Internal("rusd: malformed keep-alive reply");
    }
    LeaseKeepAliveResponse resp;
    if (status.ok()) *resp.mutable_header() = reply.header();
    std::vector<Item> held;
    for (size_t i = 0; i < batch.size(); ++i) {
      // No-op off the reply thread (answers forwarded from the leader).
      if (first != nullptr && batch.size() > 1 && i % kAnswersPerFlush == 0) {
        first->CorkConnections();
      }
      if (status.ok()) {
        const int64_t ttl = reply.ttls(static_cast<int>(i));
        if (ttl < 0 && hold_pending) {
          held.push_back(std::move(batch[i]));
          continue;
        }
        resp.set_id(batch[i].id);
        resp.set_ttl(std::max<int64_t>(ttl, 0));
      }
      batch[i].done(status, resp);
    }
    return held;
  }

  LeaseForwarder& leader_;
  RingClient& ring_;
  std::mutex mu_;
  std::vector<Item> waiting_;  // guarded by mu_
  int in_flight_ = 0;          // batches sent and not answered; mu_
};

// One LeaseKeepAlive stream. Each request becomes a keep-alive read; answers are written in
// arrival order, one at a time. Finish is called once, never while a write is in flight.
// The reactor deletes itself once gRPC is done with it (OnDone, which follows Finish) AND no
// ring callback is pending or running.
class KeepAliveReactor final
    : public grpc::ServerBidiReactor<LeaseKeepAliveRequest, LeaseKeepAliveResponse> {
 public:
  // `metrics`: the call's counters, when the service counts its own calls.
  KeepAliveReactor(KeepAliveBatcher& batcher, std::optional<GrpcCallMetrics> metrics)
      : batcher_(batcher), metrics_(metrics) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Step([&] { reads_done_ = true; });
      return;
    }
    if (metrics_) metrics_->Received();
    {
      std::lock_guard lock(mu_);
      ++pending_;
    }
    batcher_.Add(request_.id(),
                 [this](const Status& st, const LeaseKeepAliveResponse& resp) {
                   OnReply(st, resp);
                 });
    {
      std::lock_guard lock(mu_);
      if (finished_) return;  // an error ended the stream: no operation after Finish
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    Step([&] {
      queue_.pop_front();
      writing_ = false;
      if (!ok) failure_ = grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
    });
  }

  void OnDone() override {
    bool destroy = false;
    {
      std::lock_guard lock(mu_);
      done_ = true;
      destroy = pending_ == 0 && running_ == 0;
    }
    if (destroy) delete this;
  }

 private:
  // An answer waiting for its write: the fields of a LeaseKeepAliveResponse, kept flat so
  // that queueing one allocates nothing (the response message, with its header, is built
  // once per stream and refilled for each write).
  struct Answer {
    int64_t id;
    int64_t ttl;
    uint64_t cluster_id;
    uint64_t member_id;
    int64_t revision;
    uint64_t raft_term;
  };

  void OnReply(const Status& st, const LeaseKeepAliveResponse& reply) {
    bool gone = false;
    bool destroy = false;
    {
      std::lock_guard lock(mu_);
      --pending_;
      gone = done_;  // gRPC finished with us before this answer came
      if (gone) {
        destroy = pending_ == 0 && running_ == 0;
      } else {
        ++running_;
      }
    }
    if (gone) {
      if (destroy) delete this;
      return;
    }
    Step([&] {
      if (failure_) return;
      if (!st.ok()) {
        // etcd ends the stream with the error (togRPCError); clientv3 reconnects.
        failure_ = ToGrpcStatus(st);
        return;
      }
      const etcdserverpb::ResponseHeader& h = reply.header();
      queue_.push_back(
          {reply.id(), reply.ttl(), h.cluster_id(), h.member_id(), h.revision(), h.raft_term()});
    });
    {
      std::lock_guard lock(mu_);
      --running_;
      destroy = done_ && pending_ == 0 && running_ == 0;
    }
    if (destroy) delete this;
  }

  // Applies `change` under the lock, then starts the next write or the finish it allows.
  template <typename Fn>
  void Step(Fn&& change) {
    bool write = false;
    bool finish = false;
    grpc::Status status;
    {
      std::lock_guard lock(mu_);
      change();
      if (finished_ || writing_) return;
      if (failure_) {
        finish = true;
        status = *failure_;
      } else if (!queue_.empty()) {
        writing_ = true;
        write = true;
        Fill(queue_.front());  // out_ is ours again: no write in flight
      } else if (reads_done_ && pending_ == 0) {
        finish = true;
        status = grpc::Status::OK;
      }
      if (finish) finished_ = true;
    }
    if (write) {
      if (metrics_) metrics_->Sent(out_.ByteSizeLong());
      StartWrite(&out_);
    }
    if (finish) {
      if (metrics_) metrics_->Handled(static_cast<int>(status.error_code()));
      Finish(status);
    }
  }

  void Fill(const Answer& a) {
    out_.set_id(a.id);
    out_.set_ttl(a.ttl);
    etcdserverpb::ResponseHeader* h = out_.mutable_header();
    h->set_cluster_id(a.cluster_id);
    h->set_member_id(a.member_id);
    h->set_revision(a.revision);
    h->set_raft_term(a.raft_term);
  }

  KeepAliveBatcher& batcher_;
  // Sent runs with no write in flight and Handled once, so their order is the call's.
  std::optional<GrpcCallMetrics> metrics_;
  LeaseKeepAliveRequest request_;  // gRPC thread only (one read at a time)
  std::mutex mu_;
  std::deque<Answer> queue_;       // front is being written (from out_) when writing_
  LeaseKeepAliveResponse out_;     // the write in flight; filled only while !writing_
  int pending_ = 0;   // keep-alives sent to stored and not answered
  int running_ = 0;   // ring callbacks inside OnReply
  bool writing_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
  bool done_ = false;
  std::optional<grpc::Status> failure_;
};

class LeaseService final : public etcdserverpb::Lease::CallbackService {
 public:
  LeaseService(RingClient& ring, LeaseForwarder& leader, ipc::MetricsArea* metrics)
      : ring_(ring),
        leader_(leader),
        batcher_(leader, ring),
        metrics_(metrics),
        keep_alive_stats_(metrics != nullptr ? &metrics->grpc[ipc::GrpcMethodSlot(
                                                   "/etcdserverpb.Lease/LeaseKeepAlive")]
                                             : nullptr) {}

  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::LeaseGrantRequest* req,
                                       etcdserverpb::LeaseGrantResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    internal::Command cmd;
    const uint64_t id = ring_.NextRequestId();
    cmd.set_request_id(id);
    cmd.set_origin_member_id(ring_.member_id());
    *cmd.mutable_lease_grant() = *req;
    // etcd: "no id given? choose one" from its request-id generator, positive only.
    while (cmd.lease_grant().id() == 0) {
      cmd.mutable_lease_grant()->set_id(
          static_cast<int64_t>(ring_.NextRequestId() & ((1ull << 63) - 1)));
    }
    ring_.Propose(id, cmd.SerializeAsString(), Complete(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseRevoke(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::LeaseRevokeRequest* req,
                                        etcdserverpb::LeaseRevokeResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    internal::Command cmd;
    const uint64_t id = ring_.NextRequestId();
    cmd.set_request_id(id);
    cmd.set_origin_member_id(ring_.member_id());
    *cmd.mutable_lease_revoke() = *req;
    ring_.Propose(id, cmd.SerializeAsString(), Complete(reactor, resp));
    return reactor;
  }

  grpc::ServerBidiReactor<LeaseKeepAliveRequest, LeaseKeepAliveResponse>* LeaseKeepAlive(
      grpc::CallbackServerContext* ctx) override {
    std::optional<GrpcCallMetrics> call;
    if (metrics_ != nullptr) call.emplace(*metrics_, *keep_alive_stats_);
    if (ring_.is_learner()) {
      if (call) call->Handled(static_cast<int>(grpc::StatusCode::UNAVAILABLE));
      return new LearnerRefusedStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>();
    }
    return new KeepAliveReactor(batcher_, call);
  }

  grpc::ServerUnaryReactor* LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                            const etcdserverpb::LeaseTimeToLiveRequest* req,
                                            etcdserverpb::LeaseTimeToLiveResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    leader_.TimeToLive(req->SerializeAsString(), Complete(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseLeases(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::LeaseLeasesRequest* req,
                                        etcdserverpb::LeaseLeasesResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (RefusedOnLearner(ring_, reactor)) return reactor;
    ring_.ReadAs(Type(ipc::MessageType::kLeaseLeases), req->SerializeAsString(),
                 /*linearizable=*/false, Complete(reactor, resp));
    return reactor;
  }

 private:
  RingClient& ring_;
  LeaseForwarder& leader_;
  KeepAliveBatcher batcher_;
  ipc::MetricsArea* metrics_;                // null: the interceptor counts
  ipc::GrpcMethodStats* keep_alive_stats_;   // LeaseKeepAlive's slot; null without metrics_
};

}  // namespace

std::unique_ptr<grpc::Service> MakeLeaseService(RingClient& ring, LeaseForwarder& leader,
                                                ipc::MetricsArea* metrics) {
  return std::make_unique<LeaseService>(ring, leader, metrics);
}

}  // namespace rusd::frontend
