#include "frontend/connection_cork.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

namespace rusd::frontend {
namespace {

void SetCork(int fd, int on) { ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on); }

bool Established(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
  return info.tcpi_state == TCP_ESTABLISHED;
}

}  // namespace

ConnectionCork::~ConnectionCork() { Uncork(); }

void ConnectionCork::Add(int fd) {
  std::lock_guard lock(mu_);
  if (std::find(fds_.begin(), fds_.end(), fd) != fds_.end()) return;  // a reused number
  fds_.push_back(fd);
}

void ConnectionCork::Cork() {
  std::lock_guard lock(mu_);
  open_.store(true, std::memory_order_relaxed);
}

void ConnectionCork::CorkLocked(int fd) {
  if (std::find(corked_.begin(), corked_.end(), fd) != corked_.end()) return;
  SetCork(fd, 1);
  corked_.push_back(fd);
}

void ConnectionCork::Touch(int fd) {
  if (fd < 0) return;
  std::lock_guard lock(mu_);
  if (!open_.load(std::memory_order_relaxed)) return;
  // Only sockets handed to gRPC: never a number this process uses for anything else.
  if (std::find(fds_.begin(), fds_.end(), fd) == fds_.end()) return;
  CorkLocked(fd);
}

void ConnectionCork::TouchAll() {
  std::lock_guard lock(mu_);
  if (!open_.load(std::memory_order_relaxed) || fds_.size() > kMaxConnections) return;
  for (int fd : fds_) CorkLocked(fd);
}

void ConnectionCork::Uncork() {
  std::lock_guard lock(mu_);
  open_.store(false, std::memory_order_relaxed);
  for (int fd : corked_) SetCork(fd, 0);
  corked_.clear();
}

void ConnectionCork::Prune() {
  std::lock_guard lock(mu_);
  auto dead = std::remove_if(fds_.begin(), fds_.end(), [this](int fd) {
    if (Established(fd)) return false;
    auto c = std::find(corked_.begin(), corked_.end(), fd);
    if (c != corked_.end()) {
      SetCork(fd, 0);
      corked_.erase(c);
    }
    return true;
  });
  fds_.erase(dead, fds_.end());
}

int ConnectionCork::ParsePeerFd(std::string_view peer) {
  constexpr std::string_view kPrefix = "fd:";
  if (peer.size() <= kPrefix.size() || peer.substr(0, kPrefix.size()) != kPrefix) return -1;
  int fd = 0;
  auto [end, ec] = std::from_chars(peer.data() + kPrefix.size(), peer.data() + peer.size(), fd);
  if (ec != std::errc() || end != peer.data() + peer.size() || fd < 0) return -1;
  return fd;
}

size_t ConnectionCork::size() const {
  std::lock_guard lock(mu_);
  return fds_.size();
}

}  // namespace rusd::frontend
