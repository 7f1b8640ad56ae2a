#include "supervisor/metrics_tcp_relay.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

namespace rusd::supervisor {
namespace {

constexpr int kIdleTimeoutMs = 3000;

void SetTimeouts(int fd) {
  timeval tv{kIdleTimeoutMs / 1000, (kIdleTimeoutMs % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

Result<int> Listen(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return Status::InvalidArgument("resolve " + host + ":" + port + ": " + gai_strerror(rc));
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
      ::freeaddrinfo(res);
      return fd;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return Status::Unavailable("listen on [" + host + "]:" + port + ": " + last_error);
}

}  // namespace

struct TcpRelay::Impl {
  std::vector<int> listeners;
  int stop_fd = -1;
  int target_port = 0;
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
        spdlog::error("metrics relay: poll: {}", std::strerror(errno));
        return;
      }
      if (fds.back().revents != 0) return;
      for (size_t i = 0; i + 1 < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        int conn = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) continue;
        Pipe(conn);
        ::close(conn);
      }
    }
  }

  // Copies bytes both ways until either side closes, an error, or kIdleTimeoutMs of silence.
  void Pipe(int client) {
    int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (upstream < 0) return;
    SetTimeouts(client);
    SetTimeouts(upstream);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(target_port));
    if (::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(upstream);
      return;
    }
    pollfd p[3] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    char buf[16384];
    while (true) {
      p[0].revents = p[1].revents = p[2].revents = 0;
      int n = ::poll(p, 3, kIdleTimeoutMs);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || p[2].revents != 0) break;
      bool open = true;
      for (int side = 0; side < 2 && open; ++side) {
        if (p[side].revents == 0) continue;
        ssize_t r = ::recv(p[side].fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EINTR) continue;
        open = r > 0 && SendAll(p[1 - side].fd, buf, static_cast<size_t>(r));
      }
      if (!open) break;
    }
    ::close(upstream);
  }
};

TcpRelay::TcpRelay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TcpRelay::~TcpRelay() = default;

Result<std::unique_ptr<TcpRelay>> TcpRelay::Start(
    const std::vector<std::pair<std::string, std::string>>& listen, int target_port) {
  auto impl = std::make_unique<Impl>();
  impl->target_port = target_port;
  for (const auto& [host, port] : listen) {
    auto fd = Listen(host, port);
    if (!fd.ok()) return fd.status();
    impl->listeners.push_back(*fd);
  }
  impl->stop_fd = ::eventfd(0, EFD_CLOEXEC);
  if (impl->stop_fd < 0) return Status::IoError(std::string("eventfd: ") + std::strerror(errno));
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<TcpRelay>(new TcpRelay(std::move(impl)));
}

}  // namespace rusd::supervisor
