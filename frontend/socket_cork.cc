#include "frontend/socket_cork.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>

namespace rusd::frontend {
namespace {

void SetCork(int fd, int on) {
  // Errors are ignored on purpose: see the header (a closed or reused fd).
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

}  // namespace

SocketCorks::~SocketCorks() {
  for (int fd : fds_) SetCork(fd, 0);
}

void SocketCorks::Cork(int fd) {
  if (fd < 0 || std::find(fds_.begin(), fds_.end(), fd) != fds_.end()) return;
  fds_.push_back(fd);
  SetCork(fd, 1);
}

int ConnectionFdOfPeer(std::string_view peer) {
  constexpr std::string_view kPrefix = "fd:";
  if (peer.substr(0, kPrefix.size()) != kPrefix) return -1;
  peer.remove_prefix(kPrefix.size());
  int fd = -1;
  auto [end, ec] = std::from_chars(peer.data(), peer.data() + peer.size(), fd);
  if (ec != std::errc() || end != peer.data() + peer.size() || fd < 0) return -1;
  return fd;
}

}  // namespace rusd::frontend
