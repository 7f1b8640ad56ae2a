#include "frontend/connection_cork.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

namespace rusd::frontend {
namespace {

// A connected loopback TCP pair: `server` is the accepted end (what gRPC would own).
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
};

bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

TEST(ConnectionCork, CorkedWritesLeaveAtUncork) {
  TcpPair pair;
  ConnectionCork cork;
  cork.Add(pair.server);
  cork.Cork();
  ASSERT_EQ(::send(pair.server, "abc", 3, 0), 3);
  ASSERT_EQ(::send(pair.server, "def", 3, 0), 3);
  EXPECT_FALSE(Readable(pair.client, 50)) << "a corked socket sent a short write";
  cork.Uncork();
  ASSERT_TRUE(Readable(pair.client, 1000));
  char buf[16];
  ssize_t n = ::recv(pair.client, buf, 6, MSG_WAITALL);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "abcdef");
}

TEST(ConnectionCork, UncorkedWritesLeaveAtOnce) {
  TcpPair pair;
  ConnectionCork cork;
  cork.Add(pair.server);
  ASSERT_EQ(::send(pair.server, "x", 1, 0), 1);
  EXPECT_TRUE(Readable(pair.client, 1000));
}

TEST(ConnectionCork, PruneForgetsClosedConnectionsAndThePeerSeesTheClose) {
  TcpPair pair;
  ConnectionCork cork;
  cork.Add(pair.server);
  EXPECT_EQ(cork.size(), 1u);
  cork.Prune();
  EXPECT_EQ(cork.size(), 1u);  // still established
  ::close(pair.server);  // as gRPC closes a connection
  pair.server = -1;
  ASSERT_TRUE(Readable(pair.client, 1000));
  char c;
  EXPECT_EQ(::recv(pair.client, &c, 1, 0), 0) << "the peer must see the close";
  cork.Prune();
  EXPECT_EQ(cork.size(), 0u);
}

TEST(ConnectionCork, ManyConnectionsAreNotCorked) {
  std::vector<std::unique_ptr<TcpPair>> pairs;
  ConnectionCork cork;
  for (size_t i = 0; i <= ConnectionCork::kMaxConnections; ++i) {
    pairs.push_back(std::make_unique<TcpPair>());
    cork.Add(pairs.back()->server);
  }
  cork.Cork();
  ASSERT_EQ(::send(pairs[0]->server, "x", 1, 0), 1);
  EXPECT_TRUE(Readable(pairs[0]->client, 1000));
  cork.Uncork();
}

}  // namespace
}  // namespace rusd::frontend
