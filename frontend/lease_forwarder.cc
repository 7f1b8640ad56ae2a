#include "frontend/lease_forwarder.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/url.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "frontend/grpc_status.h"
#include "frontend/member_targets.h"
#include "ipc/message_type.h"
#include "rusd/lease.pb.h"
#include "rusd/lease_forward.grpc.pb.h"

namespace rusd::frontend {
namespace {

using Clock = std::chrono::steady_clock;

// etcd's texts (rpctypes): clientv3 recognises the errors by them.
Status NotLeader() { return Status::Unavailable("etcdserver: not leader"); }
Status NoLeader() { return Status::Unavailable("etcdserver: no leader"); }
Status TimedOut() { return Status::Unavailable("etcdserver: request timed out"); }
Status Stopped() { return Status::Unavailable("etcdserver: server stopped"); }

enum class Op { kKeepAliveBatch, kTimeToLive };

uint16_t ReadType(Op op) {
  return static_cast<uint16_t>(op == Op::kKeepAliveBatch ? ipc::MessageType::kLeaseKeepAliveBatch
                                                         : ipc::MessageType::kLeaseTimeToLive);
}

// Answers that mean "ask again, maybe elsewhere": leadership moved or is being decided.
bool LeaderMoved(const Status& st) {
  return st.code() == StatusCode::kUnavailable &&
         (st.message() == "etcdserver: not leader" || st.message() == "etcdserver: no leader" ||
          st.message() == "etcdserver: leader changed");
}

// The gRPC target of an advertised client URL ("http://host:port" -> "host:port"); empty
// for schemes the frontend does not dial (https until TLS, unix).
std::string TargetOf(std::string_view url) {
  Result<Url> u = ParseUrl(url);
  if (!u.ok() || u->scheme != "http") return "";
  return u->HostPort();
}

}  // namespace

struct LeaseForwarder::Impl : std::enable_shared_from_this<Impl> {
  struct Call {
    Op op;
    std::string request;
    RequestCallback done;
    Clock::time_point deadline;
    bool no_leader = false;  // the last attempt found no leader
  };
  // One forwarded attempt: gRPC needs its context and messages until the callback.
  struct Remote {
    grpc::ClientContext ctx;
    internal::KeepAliveBatch batch;
    internal::KeepAliveBatchReply batch_reply;
    etcdserverpb::LeaseTimeToLiveRequest ttl;
    etcdserverpb::LeaseTimeToLiveResponse ttl_reply;
  };

  Impl(RingClient& r, const LeaseForwarderOptions& o) : ring(r), options(o), targets(TargetOf) {}

  void Start() {
    timer = std::thread([this] { RunTimers(); });
  }

  void Submit(Op op, std::string request, RequestCallback done) {
    auto call = std::make_shared<Call>();
    call->op = op;
    call->request = std::move(request);
    call->done = std::move(done);
    call->deadline = Clock::now() + options.request_timeout;
    Attempt(call);
  }

  void Attempt(const std::shared_ptr<Call>& call) {
    if (stopped.load(std::memory_order_acquire)) return Finish(*call, Stopped(), {});
    if (Clock::now() >= call->deadline) {
      // etcd: waitLeader gives up with ErrNoLeader, the forward loop with ErrTimeout.
      return Finish(*call, call->no_leader ? NoLeader() : TimedOut(), {});
    }
    const LeaderState leader = ring.leader();
    call->no_leader = leader.leader_id == 0;
    if (call->no_leader) return Retry(call);
    if (leader.leader_id == options.member_id) return Local(call);
    std::string target = LeaderTarget(leader.leader_id);
    if (target.empty()) return Retry(call);  // its client URL is not known (yet)
    Forward(call, target);
  }

  void Local(const std::shared_ptr<Call>& call) {
    ring.ReadAs(ReadType(call->op), call->request, /*linearizable=*/true,
                [self = shared_from_this(), call](const Status& st, std::string&& payload) {
                  if (LeaderMoved(st)) return self->Retry(call);
                  self->Finish(*call, st, std::move(payload));
                });
  }

  void Forward(const std::shared_ptr<Call>& call, const std::string& target) {
    std::shared_ptr<internal::LeaseForward::Stub> stub = StubFor(target);
    auto remote = std::make_shared<Remote>();
    // ClientContext takes system_clock deadlines.
    const Clock::duration left =
        std::min<Clock::duration>(call->deadline - Clock::now(), options.attempt_timeout);
    remote->ctx.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(left));
    const bool parsed = call->op == Op::kKeepAliveBatch
                            ? remote->batch.ParseFromString(call->request)
                            : remote->ttl.ParseFromString(call->request);
    if (!parsed) return Finish(*call, Status::Internal("rusd: malformed lease request"), {});
    {
      std::lock_guard lock(mu);
      if (stopped.load(std::memory_order_relaxed)) return Finish(*call, Stopped(), {});
      in_flight.insert(&remote->ctx);
    }
    auto on_done = [self = shared_from_this(), call, remote](grpc::Status s) {
      self->OnForwarded(call, *remote, s);
      std::lock_guard lock(self->mu);
      self->in_flight.erase(&remote->ctx);
      self->cv.notify_all();
    };
    if (call->op == Op::kKeepAliveBatch) {
      stub->async()->KeepAlive(&remote->ctx, &remote->batch, &remote->batch_reply,
                                    std::move(on_done));
    } else {
      stub->async()->TimeToLive(&remote->ctx, &remote->ttl, &remote->ttl_reply,
                                std::move(on_done));
    }
  }

  void OnForwarded(const std::shared_ptr<Call>& call, Remote& remote, const grpc::Status& s) {
    if (s.ok()) {
      // etcd fills a keep-alive's or TimeToLive's header on the server the client talks to.
      std::string out;
      if (call->op == Op::kKeepAliveBatch) {
        remote.batch_reply.mutable_header()->set_member_id(options.member_id);
        out = remote.batch_reply.SerializeAsString();
      } else {
        remote.ttl_reply.mutable_header()->set_member_id(options.member_id);
        out = remote.ttl_reply.SerializeAsString();
      }
      return Finish(*call, Status::Ok(), std::move(out));
    }
    if (stopped.load(std::memory_order_acquire)) return Finish(*call, Stopped(), {});
    switch (s.error_code()) {
      case grpc::StatusCode::DEADLINE_EXCEEDED:  // this attempt's; Attempt checks the call's
        spdlog::debug("lease forward to the leader: no answer within {} ms",
                      options.attempt_timeout.count());
        return Retry(call);
      case grpc::StatusCode::UNAVAILABLE:      // unreachable, not (or no longer) leader
      case grpc::StatusCode::UNIMPLEMENTED:    // a frontend without the service (upgrade)
        spdlog::debug("lease forward to the leader: {}", s.error_message());
        return Retry(call);
      default:
        return Finish(*call, StatusFromWire(s.error_code(), s.error_message()), {});
    }
  }

  void Retry(const std::shared_ptr<Call>& call) {
    const Clock::time_point at = std::min(Clock::now() + options.retry_interval, call->deadline);
    {
      std::lock_guard lock(mu);
      if (!timer_stopped) {
        timers.emplace(at, [self = shared_from_this(), call] { self->Attempt(call); });
        cv.notify_all();
        return;
      }
    }
    Finish(*call, Stopped(), {});
  }

  static void Finish(Call& call, const Status& st, std::string&& payload) {
    RequestCallback done = std::move(call.done);
    if (done) done(st, std::move(payload));
  }

  std::string LeaderTarget(uint64_t leader_id) {
    // The version first: the list fetched after it is at least that new.
    const uint64_t version = ring.member_list_version();
    return targets.Target(leader_id, version, [this] { return ring.member_list(); });
  }

  std::shared_ptr<internal::LeaseForward::Stub> StubFor(const std::string& target) {
    std::lock_guard lock(mu);
    auto it = stubs.find(target);
    if (it != stubs.end()) return it->second;
    grpc::ChannelArguments args;
    // A restarted leader must be reachable again within a retry or two, not after gRPC's
    // default reconnect backoff (up to 120 s).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetMaxReceiveMessageSize(-1);
    auto stub = std::shared_ptr<internal::LeaseForward::Stub>(internal::LeaseForward::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
    stubs.emplace(target, stub);
    return stub;
  }

  void RunTimers() {
    std::unique_lock lock(mu);
    for (;;) {
      if (timer_stopped && timers.empty()) return;
      if (timers.empty()) {
        cv.wait(lock);
        continue;
      }
      auto first = timers.begin();
      if (!timer_stopped && first->first > Clock::now()) {
        cv.wait_until(lock, first->first);
        continue;
      }
      std::function<void()> fn = std::move(first->second);
      timers.erase(first);
      lock.unlock();
      fn();  // after Stop: Attempt fails the call with "server stopped"
      lock.lock();
    }
  }

  void Stop() {
    std::unique_lock lock(mu);
    if (stopped.exchange(true)) return;
    for (grpc::ClientContext* ctx : in_flight) ctx->TryCancel();
    cv.wait(lock, [&] { return in_flight.empty(); });
    timer_stopped = true;
    cv.notify_all();
    lock.unlock();
    if (timer.joinable()) timer.join();
  }

  RingClient& ring;
  const LeaseForwarderOptions options;
  MemberTargets targets;  // the leader's target, parsed once per member list
  std::atomic<bool> stopped{false};
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::shared_ptr<internal::LeaseForward::Stub>> stubs;  // mu
  std::set<grpc::ClientContext*> in_flight;                                    // mu
  std::multimap<Clock::time_point, std::function<void()>> timers;              // mu
  bool timer_stopped = false;                                                  // mu
  std::thread timer;
};

LeaseForwarder::LeaseForwarder(RingClient& ring, const LeaseForwarderOptions& options)
    : impl_(std::make_shared<Impl>(ring, options)) {
  impl_->Start();
}

LeaseForwarder::~LeaseForwarder() { Stop(); }

void LeaseForwarder::Stop() { impl_->Stop(); }

void LeaseForwarder::KeepAliveBatch(std::string batch, RequestCallback done) {
  impl_->Submit(Op::kKeepAliveBatch, std::move(batch), std::move(done));
}

void LeaseForwarder::TimeToLive(std::string request, RequestCallback done) {
  impl_->Submit(Op::kTimeToLive, std::move(request), std::move(done));
}

namespace {

// The leader's side of rusd.internal.LeaseForward.
class LeaseForwardService final : public internal::LeaseForward::CallbackService {
 public:
  explicit LeaseForwardService(RingClient& ring) : ring_(ring) {}

  grpc::ServerUnaryReactor* KeepAlive(grpc::CallbackServerContext* ctx,
                                           const internal::KeepAliveBatch* req,
                                           internal::KeepAliveBatchReply* resp) override {
    return Serve(ctx, ipc::MessageType::kLeaseKeepAliveBatch, req->SerializeAsString(), resp);
  }

  grpc::ServerUnaryReactor* TimeToLive(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::LeaseTimeToLiveRequest* req,
                                       etcdserverpb::LeaseTimeToLiveResponse* resp) override {
    return Serve(ctx, ipc::MessageType::kLeaseTimeToLive, req->SerializeAsString(), resp);
  }

 private:
  template <typename Response>
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx, ipc::MessageType type,
                                  std::string request, Response* resp) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    // Never forward again: two frontends that disagree on the leader would bounce a
    // request between them. The sender re-resolves and retries.
    if (ring_.leader().leader_id != ring_.member_id()) {
      reactor->Finish(ToGrpcStatus(NotLeader()));
      return reactor;
    }
    ring_.ReadAs(static_cast<uint16_t>(type), std::move(request), /*linearizable=*/true,
                 [reactor, resp](const Status& st, std::string&& payload) {
                   if (!st.ok()) return reactor->Finish(ToGrpcStatus(st));
                   if (!resp->ParseFromString(payload)) {
                     return reactor->Finish(
                         grpc::Status(grpc::StatusCode::INTERNAL, "rusd: malformed lease reply"));
                   }
                   reactor->Finish(grpc::Status::OK);
                 });
    return reactor;
  }

  RingClient& ring_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeLeaseForwardService(RingClient& ring) {
  return std::make_unique<LeaseForwardService>(ring);
}

}  // namespace rusd::frontend
