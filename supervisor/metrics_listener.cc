#include "supervisor/metrics_listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "supervisor/urls.h"

namespace rusd::supervisor {
namespace {

constexpr int kIoTimeoutMs = 3000;
constexpr size_t kMaxRequestBytes = 16 * 1024;
constexpr size_t kMaxResponseBytes = 64 * 1024 * 1024;

void SetTimeouts(int fd) {
  timeval tv{kIoTimeoutMs / 1000, (kIoTimeoutMs % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Resolves host:port; `passive` for binding.
Result<int> OpenSocket(const std::string& host, const std::string& port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return Status::InvalidArgument("resolve " + host + ":" + port + ": " + gai_strerror(rc));
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (passive) {
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
        ::freeaddrinfo(res);
        return fd;
      }
    } else {
      SetTimeouts(fd);
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        ::freeaddrinfo(res);
        return fd;
      }
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return Status::Unavailable((passive ? "listen on " : "connect to ") + host + ":" + port + ": " +
                             last_error);
}

std::string SimpleResponse(int code, const char* reason, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(code) + " " + reason +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace

struct MetricsListener::Impl {
  std::vector<int> listeners;
  int stop_fd = -1;
  std::string backend_host, backend_port;
  std::thread thread;

  ~Impl() {
    if (thread.joinable()) {
      uint64_t one = 1;
      ssize_t ignored = ::write(stop_fd, &one, sizeof one);
      (void)ignored;
      thread.join();
    }
    for (int fd : listeners) ::close(fd);
    if (stop_fd >= 0) ::close(stop_fd);
  }

  void Run() {
    std::vector<pollfd> fds;
    for (int fd : listeners) fds.push_back({fd, POLLIN, 0});
    fds.push_back({stop_fd, POLLIN, 0});
    while (true) {
      for (auto& p : fds) p.revents = 0;
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        spdlog::error("metrics listener: poll: {}", std::strerror(errno));
        return;
      }
      if (fds.back().revents != 0) return;
      for (size_t i = 0; i + 1 < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        int conn = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) continue;
        SetTimeouts(conn);
        Serve(conn);
        ::close(conn);
      }
    }
  }

  void Serve(int conn) {
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequestBytes) {
      ssize_t n = ::recv(conn, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      request.append(buf, static_cast<size_t>(n));
    }
    auto line_end = request.find("\r\n");
    std::string line = request.substr(0, line_end);
    auto sp1 = line.find(' ');
    auto sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos) {
      WriteAll(conn, SimpleResponse(400, "Bad Request", ""));
      return;
    }
    std::string method = line.substr(0, sp1);
    std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string path = target.substr(0, target.find('?'));
    bool health = path == "/health" || path == "/livez" || path == "/readyz";
    if (!health && path != "/metrics" && path != "/version") {
      WriteAll(conn, SimpleResponse(404, "Not Found", "404 page not found\n"));
      return;
    }
    if (method != "GET" && method != "HEAD") {
      WriteAll(conn, SimpleResponse(405, "Method Not Allowed", "Method Not Allowed\n"));
      return;
    }
    auto upstream = OpenSocket(backend_host, backend_port, /*passive=*/false);
    std::string response;
    if (upstream.ok()) {
      std::string forward = method + " " + target + " HTTP/1.1\r\nHost: " + backend_host + ":" +
                            backend_port + "\r\nConnection: close\r\n\r\n";
      if (WriteAll(*upstream, forward)) {
        while (response.size() < kMaxResponseBytes) {
          ssize_t n = ::recv(*upstream, buf, sizeof buf, 0);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          response.append(buf, static_cast<size_t>(n));
        }
      }
      ::close(*upstream);
    }
    if (response.rfind("HTTP/", 0) != 0) {
      // The frontend is down or restarting: the node cannot serve, say so as etcd does.
      std::string reason = upstream.ok() ? "frontend closed the connection" : upstream.status().message();
      WriteAll(conn, SimpleResponse(503, "Service Unavailable",
                                    health ? "{\"health\":\"false\",\"reason\":\"" + reason + "\"}"
                                           : std::string()));
      return;
    }
    WriteAll(conn, response);
  }
};

MetricsListener::MetricsListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsListener::~MetricsListener() = default;

Result<std::unique_ptr<MetricsListener>> MetricsListener::Start(
    const std::vector<std::string>& listen_urls, const std::string& client_url) {
  auto impl = std::make_unique<Impl>();
  auto backend = ParseUrl(client_url);
  if (!backend.ok()) return backend.status();
  if (backend->scheme != "http") {
    return Status::Unimplemented("--listen-metrics-urls needs an http client URL to relay to");
  }
  impl->backend_host = backend->host;
  impl->backend_port = backend->port;
  // A frontend listening on every interface is reached on loopback.
  if (impl->backend_host.empty() || impl->backend_host == "0.0.0.0") impl->backend_host = "127.0.0.1";
  if (impl->backend_host == "::") impl->backend_host = "::1";
  for (const auto& url : listen_urls) {
    auto parsed = ParseUrl(url);
    if (!parsed.ok()) return parsed.status();
    if (parsed->scheme != "http") {
      return Status::Unimplemented("--listen-metrics-urls " + url + ": only http is implemented");
    }
    std::string host = parsed->host == "localhost" ? "127.0.0.1" : parsed->host;
    auto fd = OpenSocket(host, parsed->port, /*passive=*/true);
    if (!fd.ok()) return fd.status();
    impl->listeners.push_back(*fd);
  }
  impl->stop_fd = ::eventfd(0, EFD_CLOEXEC);
  if (impl->stop_fd < 0) return Status::IoError(std::string("eventfd: ") + std::strerror(errno));
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<MetricsListener>(new MetricsListener(std::move(impl)));
}

}  // namespace rusd::supervisor
