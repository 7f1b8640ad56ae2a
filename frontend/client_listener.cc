#include "frontend/client_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/server.h>
#include <grpcpp/server_posix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "common/url.h"
#include "frontend/connection_cork.h"
#include "frontend/http_handler.h"
#include "frontend/http_message.h"
#include "frontend/native_grpc/native_grpc_server.h"

namespace rusd::frontend {
namespace {

constexpr int kMaxConnectionThreads = 256;
constexpr int kSniffTimeoutMs = 10'000;     // to receive the first three bytes
constexpr int kHttpIdleTimeoutMs = 120'000;  // keep-alive idle limit

std::string ErrnoText(int err) { return std::strerror(err); }

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Waits until fd is readable; false on timeout or error.
bool WaitReadable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

// common/url's etcd rules and messages, then what this listener can serve: plain http.
// The supervisor validates --listen-client-urls the same way before starting us, so these
// errors reach a user only for what it lets through (TLS and unix sockets).
Result<Url> ListenableClientUrl(const std::string& url) {
  Result<Url> parsed = ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  if (parsed->tls()) {
    return Status::InvalidArgument("client URL " + url +
                                   ": TLS is not supported by rusd yet; use http://");
  }
  if (parsed->scheme == "unix") {
    return Status::InvalidArgument("client URL " + url +
                                   ": unix sockets are not supported by rusd yet; use http://");
  }
  return parsed;
}

}  // namespace

struct ClientListener::Impl {
  struct Socket {
    int fd;
    uint16_t port;
  };
  std::vector<Socket> sockets;
  std::vector<uint16_t> url_ports;
  int stop_fd = -1;  // eventfd: wakes the acceptor
  std::thread acceptor;
  grpc::Server* server = nullptr;
  HttpHandler* handler = nullptr;
  ConnectionCork* grpc_connections = nullptr;
  native_grpc::NativeGrpcServer* native = nullptr;

  std::mutex mu;
  std::condition_variable cv;
  std::set<int> open_fds;  // connections still owned by a connection thread
  int threads = 0;
  bool stopping = false;

  ~Impl() {
    for (const Socket& s : sockets) ::close(s.fd);
    if (stop_fd >= 0) ::close(stop_fd);
  }

  void Accept();
  void ServeConnection(int fd);
  void ServeHttp(int fd);
  // Removes fd from the tracked set; false if Stop already shut it down.
  void Untrack(int fd) {
    std::lock_guard lock(mu);
    open_fds.erase(fd);
  }
};

Result<std::unique_ptr<ClientListener>> ClientListener::Bind(const std::vector<std::string>& urls) {
  auto impl = std::make_unique<Impl>();
  if (urls.empty()) return Status::InvalidArgument("no --listen-client-urls given");
  for (const std::string& url : urls) {
    Result<Url> parsed = ListenableClientUrl(url);
    if (!parsed.ok()) return parsed.status();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    const std::string& port = parsed->port;
    const char* host = parsed->host.empty() ? nullptr : parsed->host.c_str();
    int rc = ::getaddrinfo(host, port.c_str(), &hints, &res);
    if (rc != 0) {
      return Status::InvalidArgument("client URL " + url + ": cannot resolve host: " +
                                     gai_strerror(rc));
    }
    int bound = 0;
    const auto url_port = static_cast<uint16_t>(std::stoul(parsed->port));  // ParseUrl: 0-65535
    uint16_t bound_port = url_port;
    Status first_error;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      // With port 0, later addresses of the same URL reuse the port the first one got.
      if (bound > 0 && url_port == 0) {
        if (ai->ai_family == AF_INET) {
          reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_port = htons(bound_port);
        } else if (ai->ai_family == AF_INET6) {
          reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_port = htons(bound_port);
        }
      }
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 1024) != 0) {
        int err = errno;
        ::close(fd);
        // An address family the host cannot bind (e.g. ::1 without IPv6) is skipped; a
        // port in use or a permission problem is fatal, as for etcd.
        if (err == EADDRINUSE || err == EACCES || first_error.ok()) {
          first_error = Status::Unavailable("cannot listen on client URL " + url + ": " +
                                            ErrnoText(err));
        }
        if (err == EADDRINUSE || err == EACCES) {
          ::freeaddrinfo(res);
          return first_error;
        }
        continue;
      }
      sockaddr_storage local{};
      socklen_t len = sizeof local;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
      bound_port = local.ss_family == AF_INET6
                       ? ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port)
                       : ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
      impl->sockets.push_back({fd, bound_port});
      ++bound;
    }
    ::freeaddrinfo(res);
    if (bound == 0) {
      return first_error.ok() ? Status::Unavailable("cannot listen on client URL " + url)
                              : first_error;
    }
    impl->url_ports.push_back(bound_port);
  }
  impl->stop_fd = ::eventfd(0, EFD_CLOEXEC);
  if (impl->stop_fd < 0) return Status::Internal("eventfd: " + ErrnoText(errno));
  return std::unique_ptr<ClientListener>(new ClientListener(std::move(impl)));
}

ClientListener::ClientListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ClientListener::~ClientListener() { Stop(); }

std::vector<uint16_t> ClientListener::ports() const { return impl_->url_ports; }

void ClientListener::Start(grpc::Server* server, HttpHandler* handler,
                           ConnectionCork* grpc_connections,
                           native_grpc::NativeGrpcServer* native) {
  impl_->native = native;
  impl_->server = server;
  impl_->handler = handler;
  impl_->grpc_connections = grpc_connections;
  impl_->acceptor = std::thread([impl = impl_.get()] { impl->Accept(); });
}

void ClientListener::Stop() {
  if (!impl_->acceptor.joinable()) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(impl_->stop_fd, &one, sizeof one);
  impl_->acceptor.join();
  std::unique_lock lock(impl_->mu);
  impl_->stopping = true;
  for (int fd : impl_->open_fds) ::shutdown(fd, SHUT_RDWR);
  impl_->cv.wait(lock, [&] { return impl_->threads == 0; });
}

void ClientListener::Impl::Accept() {
  std::vector<pollfd> fds;
  for (const Socket& s : sockets) fds.push_back({s.fd, POLLIN, 0});
  fds.push_back({stop_fd, POLLIN, 0});
  for (;;) {
    int r = ::poll(fds.data(), fds.size(), -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      spdlog::error("poll on client sockets failed: {}", ErrnoText(errno));
      return;
    }
    if (fds.back().revents != 0) return;  // Stop()
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if ((fds[i].revents & POLLIN) == 0) continue;
      int fd = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
          spdlog::warn("accept: {}", ErrnoText(errno));
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      {
        std::lock_guard lock(mu);
        if (threads >= kMaxConnectionThreads) {
          ::close(fd);  // a flood of idle connections; etcd would also start refusing
          continue;
        }
        ++threads;
        open_fds.insert(fd);
      }
      std::thread([this, fd] {
        ServeConnection(fd);
        std::lock_guard lock(mu);
        --threads;
        cv.notify_all();
      }).detach();
    }
  }
}

void ClientListener::Impl::ServeConnection(int fd) {
  // Peek until three bytes arrived (or the peer closed / stayed silent too long).
  char head[3];
  ssize_t n = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kSniffTimeoutMs);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0 || !WaitReadable(fd, static_cast<int>(left))) break;
    n = ::recv(fd, head, sizeof head, MSG_PEEK);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || n == static_cast<ssize_t>(sizeof head)) break;
    // Fewer than three bytes so far: MSG_PEEK would return at once again; give them time.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (n == static_cast<ssize_t>(sizeof head) && std::memcmp(head, "PRI", 3) == 0) {
    bool handed = false;
    {
      std::lock_guard lock(mu);
      open_fds.erase(fd);
      if (!stopping && native != nullptr) {
        native->Adopt(fd);  // it owns fd from here
        handed = true;
      } else if (!stopping) {
        // gRPC's poller needs a non-blocking socket, or the server hangs on it.
        int flags = ::fcntl(fd, F_GETFL, 0);
        ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        if (grpc_connections != nullptr) grpc_connections->Add(fd);  // before gRPC may close it
        grpc::AddInsecureChannelFromFd(server, fd);  // gRPC owns fd from here
        handed = true;
      }
    }
    if (!handed) ::close(fd);
    return;
  }
  if (n == static_cast<ssize_t>(sizeof head)) ServeHttp(fd);
  Untrack(fd);
  ::close(fd);
}

void ClientListener::Impl::ServeHttp(int fd) {
  std::string in;
  char buf[8192];
  for (;;) {
    HttpRequest request;
    size_t consumed = 0;
    HttpParse state = ParseHttpRequest(in, &request, &consumed);
    if (state == HttpParse::kBad) {
      HttpResponse bad;
      bad.status = 400;
      bad.content_type = "text/plain; charset=utf-8";
      bad.body = "400 Bad Request";
      SendAll(fd, FormatHttpResponse(bad, false));
      return;
    }
    if (state == HttpParse::kComplete) {
      in.erase(0, consumed);
      HttpResponse response = handler->Handle(request);
      if (!SendAll(fd, FormatHttpResponse(response, request.keep_alive)) ||
          !request.keep_alive) {
        return;
      }
      continue;
    }
    if (!WaitReadable(fd, kHttpIdleTimeoutMs)) return;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    in.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace rusd::frontend
