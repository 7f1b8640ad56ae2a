#include "frontend/native_grpc/native_grpc_server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "frontend/etcd_errors.h"
#include "frontend/grpc_call_metrics.h"
#include "frontend/native_grpc/forwarded_call.h"
#include "frontend/native_grpc/native_connection.h"
#include "ipc/metrics_area.h"
#include "ipc/metrics_grpc_methods.h"

namespace rusd::frontend::native_grpc {
namespace {

constexpr size_t kReadChunk = 64 << 10;

constexpr int kKvMethods = 5;  // KvMethod's values
constexpr std::string_view kKvPaths[kKvMethods] = {
    "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn", "/etcdserverpb.KV/Compact"};

int KvMethodIndex(std::string_view path) {
  for (int m = 0; m < kKvMethods; ++m) {
    if (path == kKvPaths[m]) return m;
  }
  return -1;
}

// The forwarded methods whose gRPC C++ handlers refuse every call on a learner
// (learner_gate.h: RefusedOnLearner / LearnerRefusedStream). The native server refuses them
// itself, on the epoll thread, with the same status: clientv3 retries a "repeatable" call
// (LeaseGrant, ...) refused Unavailable up to 100 times within the caller's deadline, so
// each refusal must not pay for an in-process call. Keep in step with those handlers.
bool RefusedOnLearner(std::string_view path) {
  static constexpr std::string_view kPaths[] = {
      "/etcdserverpb.Lease/LeaseGrant",       "/etcdserverpb.Lease/LeaseRevoke",
      "/etcdserverpb.Lease/LeaseKeepAlive",   "/etcdserverpb.Lease/LeaseTimeToLive",
      "/etcdserverpb.Lease/LeaseLeases",      "/etcdserverpb.Watch/Watch",
      "/etcdserverpb.Cluster/MemberList",     "/etcdserverpb.Cluster/MemberAdd",
      "/etcdserverpb.Cluster/MemberRemove",   "/etcdserverpb.Cluster/MemberUpdate",
      "/etcdserverpb.Maintenance/Alarm",      "/etcdserverpb.Maintenance/Defragment",
      "/etcdserverpb.Maintenance/HashKV",     "/etcdserverpb.Maintenance/Hash",
      "/etcdserverpb.Maintenance/MoveLeader"};
  for (std::string_view p : kPaths) {
    if (path == p) return true;
  }
  return false;
}

}  // namespace

void NativeGrpcBatchFlush::Defer(std::shared_ptr<NativeConnection> connection) {
  pending_.push_back(std::move(connection));
}

void NativeGrpcBatchFlush::ReplyBatchEnd() {
  std::vector<std::shared_ptr<ForwardedCall>> resume;
  for (const auto& c : pending_) {
    {
      std::lock_guard lock(c->mu);
      c->deferred = false;
      c->FlushFromCompletionLocked();
      c->TakeResumableLocked(&resume);
    }
    ResumeReads(resume);
    resume.clear();
  }
  pending_.clear();
}

NativeGrpcServer::NativeGrpcServer(const KvDispatcher& kv, NativeGrpcBatchFlush& batch_flush,
                                   const NativeGrpcServerOptions& options)
    : kv_(kv), batch_flush_(batch_flush), options_(options),
      forwarded_(std::make_shared<ForwardedCalls>()) {
  if (options_.grpc_metrics == nullptr) return;
  for (int m = 0; m < kKvMethods; ++m) {
    method_stats_[m] = &options_.grpc_metrics->grpc[ipc::GrpcMethodSlot(kKvPaths[m])];
  }
}

NativeGrpcServer::~NativeGrpcServer() {
  Shutdown();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status NativeGrpcServer::Start() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    return Status::Internal(std::string("native gRPC server: ") + std::strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  if (options_.forward_to != nullptr) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // the session and the service enforce the limits
    args.SetMaxSendMessageSize(-1);
    stub_ = std::make_unique<grpc::GenericStub>(options_.forward_to->InProcessChannel(args));
  }
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void NativeGrpcServer::Adopt(int fd) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  GrpcH2Session::ServedPath streams;
  if (stub_) streams = [](std::string_view) { return true; };
  auto c = std::make_shared<NativeConnection>(
      fd, epoll_fd_, options_.max_receive_message_bytes,
      [](std::string_view path) { return KvMethodIndex(path) >= 0; }, std::move(streams));
  {
    std::lock_guard lock(mu_);
    if (stop_.load() || broken_.load()) return;  // c's destructor closes fd
    connections_[fd] = c;
  }
  bool ok = true;
  {
    // Our SETTINGS go out at once (the client waits for them before some of its writes).
    std::lock_guard lock(c->mu);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::warn("native gRPC connection fd {}: epoll_ctl: {}", fd, std::strerror(errno));
      c->failed = true;
    } else {
      c->FlushLocked();  // a session nghttp2 could not set up fails here
    }
    ok = !c->failed;
  }
  if (!ok) Close(c);
}

void NativeGrpcServer::Run() {
  epoll_event events[64];
  while (!stop_.load(std::memory_order_acquire)) {
    int n = ::epoll_wait(epoll_fd_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Nothing would read the connections any more: close them (their clients reconnect
      // and fail fast instead of hanging) and refuse new ones.
      spdlog::error("native gRPC server: epoll_wait: {}; closing its connections",
                    std::strerror(errno));
      broken_.store(true);
      std::unordered_map<int, std::shared_ptr<NativeConnection>> all;
      {
        std::lock_guard lock(mu_);
        all.swap(connections_);
      }
      for (auto& [fd, c] : all) {
        {
          std::lock_guard lock(c->mu);
          c->CloseLocked();
        }
        CancelForwarded(c);
      }
      return;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) continue;
      std::shared_ptr<NativeConnection> c;
      {
        std::lock_guard lock(mu_);
        auto it = connections_.find(fd);
        if (it == connections_.end()) continue;
        c = it->second;
      }
      const uint32_t e = events[i].events;
      ServeReadable(c, (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0,
                    (e & EPOLLOUT) != 0);
    }
  }
}

void NativeGrpcServer::ServeReadable(const std::shared_ptr<NativeConnection>& c, bool readable,
                                     bool writable) {
  std::vector<GrpcRequest>& requests = ready_;  // the epoll thread's, reused
  requests.clear();
  std::vector<std::shared_ptr<ForwardedCall>> resume;
  bool alive = true;
  {
    std::lock_guard lock(c->mu);
    if (c->closed) return;
    if (readable) {
      char buf[kReadChunk];
      for (;;) {
        ssize_t n = ::recv(c->fd(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
          Status st = c->session.Receive(std::string_view(buf, static_cast<size_t>(n)),
                                         &requests);
          if (!st.ok()) {
            spdlog::debug("native gRPC connection fd {}: {}", c->fd(), st.message());
            c->failed = true;
            break;
          }
          if (static_cast<size_t>(n) < sizeof buf) break;  // drained (saves an EAGAIN recv)
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        alive = false;  // EOF or a socket error
        break;
      }
    }
    if (readable || writable || c->session.WantsWrite()) c->FlushLocked();
    if (c->failed || !c->session.Alive()) alive = false;
    c->session.TakeEvents(&requests);  // streams closed while producing
    c->TakeResumableLocked(&resume);  // forwarded streams whose send queue drained
  }
  ResumeReads(resume);
  if (!alive) {
    Close(c);
    return;
  }
  for (GrpcRequest& r : requests) Dispatch(c, std::move(r));
  requests.clear();
}

void NativeGrpcServer::CancelForwarded(const std::shared_ptr<NativeConnection>& c) {
  std::unordered_map<int32_t, std::shared_ptr<ForwardedCall>> calls;
  {
    std::lock_guard lock(c->mu);
    calls.swap(c->forwarded);
    c->paused.clear();
  }
  for (auto& [id, call] : calls) call->Cancel();
}

void NativeGrpcServer::Close(const std::shared_ptr<NativeConnection>& c) {
  {
    std::lock_guard lock(c->mu);
    c->CloseLocked();
  }
  CancelForwarded(c);
  std::lock_guard lock(mu_);
  auto it = connections_.find(c->fd());
  if (it != connections_.end() && it->second == c) connections_.erase(it);
}

void NativeGrpcServer::Dispatch(const std::shared_ptr<NativeConnection>& c,
                                GrpcRequest&& request) {
  if (request.kind != GrpcRequest::Kind::kUnary) {
    DispatchStream(c, std::move(request));
    return;
  }
  const int m = KvMethodIndex(request.path);
  if (m < 0) {  // the session refuses these at their HEADERS; kept as a safety net
    std::vector<std::shared_ptr<ForwardedCall>> resume;
    {
      std::lock_guard lock(c->mu);
      c->session.Respond(request.stream_id,
                         Status::Unimplemented("rusd: " + request.path +
                                               " is not served by the native gRPC server yet"),
                         std::string());
      c->FlushFromCompletionLocked();
      c->TakeResumableLocked(&resume);
    }
    ResumeReads(resume);
    return;
  }
  if (options_.received_bytes != nullptr) {
    options_.received_bytes->fetch_add(request.message.size(), std::memory_order_relaxed);
  }
  // Runs once: on the reply thread (flushed at the end of its batch), or on any other thread
  // (this one, for a request that fails validation; Stop's) and then flushed at once.
  auto answer = [c, stream = request.stream_id, this](const Status& st, std::string&& payload) {
    std::vector<std::shared_ptr<ForwardedCall>> resume;
    {
      std::lock_guard lock(c->mu);
      if (c->closed || !c->session.Respond(stream, st, std::move(payload))) return;
      if (!kv_.ring().OnReplyThread()) {
        c->FlushFromCompletionLocked();
        c->TakeResumableLocked(&resume);
      } else if (!c->deferred) {
        c->deferred = true;
        batch_flush_.Defer(c);
      }
    }
    ResumeReads(resume);
  };
  RequestCallback done;
  if (method_stats_[m] != nullptr) {
    GrpcCallMetrics call(*options_.grpc_metrics, *method_stats_[m]);
    call.Received();
    done = [answer = std::move(answer), call](const Status& st, std::string&& payload) mutable {
      if (st.ok()) call.Sent(payload.size());
      call.Handled(static_cast<int>(st.code()));  // rusd's codes are gRPC's (grpc_status.h)
      answer(st, std::move(payload));
    };
  } else {
    done = std::move(answer);
  }
  kv_.Submit(static_cast<KvMethod>(m), request.message, std::move(done));
}

void NativeGrpcServer::DispatchStream(const std::shared_ptr<NativeConnection>& c,
                                      GrpcRequest&& event) {
  using Kind = GrpcRequest::Kind;
  if (event.kind == Kind::kStreamStart) {
    if (!stub_) return;  // the session streams nothing without forwarding
    if (kv_.ring().is_learner() && RefusedOnLearner(event.path)) {
      const Status refused = etcd_errors::NotSupportedForLearner();
      std::vector<std::shared_ptr<ForwardedCall>> resume;
      {
        std::lock_guard lock(c->mu);
        if (!c->closed && c->session.Finish(event.stream_id, static_cast<int>(refused.code()),
                                            refused.message(), {})) {
          c->FlushFromCompletionLocked();
          c->TakeResumableLocked(&resume);
        }
      }
      ResumeReads(resume);
      return;
    }
    std::shared_ptr<ForwardedCall> call = ForwardedCall::Create(*stub_, c, event, forwarded_);
    bool registered = false;
    {
      // Registered before it starts, so that its OnDone finds (and removes) it.
      std::lock_guard lock(c->mu);
      registered = !c->closed;
      if (registered) c->forwarded[event.stream_id] = call;
    }
    call->Begin();
    if (!registered) call->Cancel();
    return;
  }
  std::shared_ptr<ForwardedCall> call;
  {
    std::lock_guard lock(c->mu);
    auto it = c->forwarded.find(event.stream_id);
    if (it == c->forwarded.end()) return;  // finished, cancelled, or never started
    call = it->second;
    if (event.kind == Kind::kStreamCancel) c->forwarded.erase(it);
  }
  switch (event.kind) {
    case Kind::kStreamMessage:
      call->ClientMessage(std::move(event.message));
      break;
    case Kind::kStreamHalfClose:
      call->ClientHalfClose();
      break;
    case Kind::kStreamCancel:
      call->Cancel();
      break;
    default:
      break;
  }
}

void NativeGrpcServer::Shutdown() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  std::unordered_map<int, std::shared_ptr<NativeConnection>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(connections_);
  }
  for (auto& [fd, c] : all) {
    {
      std::lock_guard lock(c->mu);
      c->session.SubmitGoaway();
      c->FlushLocked();  // best effort: a full socket keeps the rest
      c->CloseLocked();
    }
    CancelForwarded(c);
  }
  // The cancelled in-process calls end promptly (client-side cancellation needs nothing of
  // the services); they must not outlive the stub and the connections' owner.
  if (!forwarded_->WaitIdle(std::chrono::seconds(2))) {
    spdlog::warn("native gRPC server: forwarded calls still in flight at shutdown");
  }
}

size_t NativeGrpcServer::connections() const {
  std::lock_guard lock(mu_);
  return connections_.size();
}

}  // namespace rusd::frontend::native_grpc
