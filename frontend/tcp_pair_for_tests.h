// Test helper: a connected loopback TCP socket pair, standing in for a client connection the
// listener handed to gRPC (what ConnectionCork corks). Header-only, for the frontend tests.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace rusd::frontend {

// `server` is the accepted end (what gRPC would own), `client` the peer's; both closed on
// destruction.
struct TcpPair {
  int server = -1;
  int client = -1;
  TcpPair() {
    int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(::listen(listener, 1), 0);
    EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    client = ::socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), len), 0);
    server = ::accept(listener, nullptr, nullptr);
    ::close(listener);
  }
  ~TcpPair() {
    if (server >= 0) ::close(server);
    if (client >= 0) ::close(client);
  }
  TcpPair(const TcpPair&) = delete;
  TcpPair& operator=(const TcpPair&) = delete;

  // Something arrived at the client end within `timeout_ms`.
  bool ClientReadable(int timeout_ms) const {
    pollfd p{client, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1;
  }
  // What arrived at the client end within `timeout_ms` (empty if nothing), up to 64 bytes.
  std::string Received(int timeout_ms) const {
    if (!ClientReadable(timeout_ms)) return "";
    char buf[64];
    ssize_t n = ::recv(client, buf, sizeof buf, MSG_DONTWAIT);
    return std::string(buf, n > 0 ? n : 0);
  }
};

}  // namespace rusd::frontend
