// NativeConnection: one client connection of the native gRPC server (native_grpc_server.h):
// its socket, its HTTP/2 session, the bytes not yet written and its forwarded streaming
// calls. Shared by the server's epoll thread, the reply thread (unary answers) and gRPC's
// callback threads (forwarded calls' answers); everything under `mu`.
//
// Every flush may drain a paused forwarded stream's send queue (and, with the socket
// drained, disarm EPOLLOUT, so the epoll thread would not look again): whoever flushes takes
// the calls to resume (TakeResumableLocked) and resumes them after unlocking `mu`
// (ResumeReads), whichever thread it is.
#pragma once

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "frontend/native_grpc/forwarded_call.h"
#include "frontend/native_grpc/grpc_h2_session.h"

namespace rusd::frontend::native_grpc {

// Beyond this much unsent output a connection stops taking frames from nghttp2 until the
// socket drains: a slow reader costs at most this much memory plus its flow-control windows.
inline constexpr size_t kHighWater = 1 << 20;

// One client connection: its socket, its HTTP/2 session and the bytes not yet written.
// Everything under `mu` (the session is not thread-safe); `deferred` is the reply thread's.
class NativeConnection {
 public:
  // `serves`: the natively served (unary) paths; `streams`: the forwarded ones (empty: none).
  NativeConnection(int fd, int epoll_fd, size_t max_message, GrpcH2Session::ServedPath serves,
                   GrpcH2Session::ServedPath streams)
      : session(max_message, std::move(serves), std::move(streams)), fd_(fd),
        epoll_fd_(epoll_fd) {}
  ~NativeConnection() {
    if (!closed) ::close(fd_);
  }

  int fd() const { return fd_; }

  // Writes what is buffered and what the session has ready, until done or the socket is
  // full (then EPOLLOUT is armed). A failed write shuts the socket down: the epoll thread
  // sees it and closes the connection.
  void FlushLocked() {
    if (closed) return;
    for (;;) {
      if (out_off == out.size()) {
        out.clear();
        out_off = 0;
      }
      if (out.size() - out_off < kHighWater) {
        Status st = session.Produce(&out, out_off + kHighWater);
        if (!st.ok()) failed = true;
      }
      if (out_off == out.size()) break;
      ssize_t n = ::send(fd_, out.data() + out_off, out.size() - out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        out_off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (out_off > 0) {
          out.erase(0, out_off);
          out_off = 0;
        }
        Watch(true);
        return;
      }
      failed = true;
      ::shutdown(fd_, SHUT_RDWR);
      return;
    }
    Watch(false);
  }

  // FlushLocked for a thread other than the epoll thread (completions): a session that failed
  // there would go unnoticed until the client sent something, so the socket is shut down,
  // which wakes the epoll thread to close the connection (as a failed send does).
  void FlushFromCompletionLocked() {
    FlushLocked();
    if (failed && !closed) ::shutdown(fd_, SHUT_RDWR);
  }

  // Under mu, after a flush: moves the paused forwarded calls whose send queue is back under
  // kForwardQueueLimit to *resume (forgets those that are gone). The caller calls
  // ResumeReads(*resume) after unlocking mu (ResumeRead must not run under it).
  void TakeResumableLocked(std::vector<std::shared_ptr<ForwardedCall>>* resume) {
    for (size_t i = 0; i < paused.size();) {
      const int32_t id = paused[i];
      auto it = forwarded.find(id);
      if (it != forwarded.end() && session.queued_bytes(id) > kForwardQueueLimit) {
        ++i;
        continue;
      }
      if (it != forwarded.end()) resume->push_back(it->second);
      paused[i] = paused.back();
      paused.pop_back();
    }
  }

  // Under mu. Closes the socket (epoll forgets it on close).
  void CloseLocked() {
    if (closed) return;
    closed = true;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd_, nullptr);
    ::close(fd_);
  }

  std::mutex mu;
  GrpcH2Session session;
  std::string out;     // bytes to write, from out_off on
  size_t out_off = 0;
  bool closed = false;  // the socket is closed: late answers are dropped
  bool failed = false;  // the session or the socket failed: close after writing
  bool deferred = false;  // queued in NativeGrpcBatchFlush (reply thread only)
  // Streaming calls forwarded to gRPC C++ (forwarded_call.h), by stream id.
  std::unordered_map<int32_t, std::shared_ptr<ForwardedCall>> forwarded;
  // Forwarded streams whose response reading is paused until their send queue drains.
  std::vector<int32_t> paused;

 private:
  void Watch(bool writable) {
    if (writable == watching_out_) return;
    watching_out_ = writable;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (writable ? EPOLLOUT : 0u);
    ev.data.fd = fd_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd_, &ev) != 0) {
      // Cannot wait for the socket to drain: fail the connection (the shutdown wakes the
      // epoll thread, which closes it).
      spdlog::warn("native gRPC connection fd {}: epoll_ctl: {}", fd_, std::strerror(errno));
      failed = true;
      ::shutdown(fd_, SHUT_RDWR);
    }
  }

  const int fd_;
  const int epoll_fd_;
  bool watching_out_ = false;
};

// Resumes what TakeResumableLocked took; without the connection's mutex.
inline void ResumeReads(const std::vector<std::shared_ptr<ForwardedCall>>& resume) {
  for (const auto& call : resume) call->ResumeRead();
}

}  // namespace rusd::frontend::native_grpc
