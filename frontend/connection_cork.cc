#include "frontend/connection_cork.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

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
  if (fds_.size() > kMaxConnections) return;
  for (int fd : fds_) SetCork(fd, 1);
  corked_ = true;
}

void ConnectionCork::Uncork() {
  std::lock_guard lock(mu_);
  if (!corked_) return;
  for (int fd : fds_) SetCork(fd, 0);
  corked_ = false;
}

void ConnectionCork::Prune() {
  std::lock_guard lock(mu_);
  auto dead = std::remove_if(fds_.begin(), fds_.end(), [this](int fd) {
    if (Established(fd)) return false;
    if (corked_) SetCork(fd, 0);
    return true;
  });
  fds_.erase(dead, fds_.end());
}

size_t ConnectionCork::size() const {
  std::lock_guard lock(mu_);
  return fds_.size();
}

}  // namespace rusd::frontend
