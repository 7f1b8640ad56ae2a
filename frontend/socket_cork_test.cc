#include "frontend/socket_cork.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace rusd::frontend {
namespace {

int CorkOf(int fd) {
  int on = -1;
  socklen_t len = sizeof on;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, &len) != 0) return -1;
  return on;
}

TEST(SocketCorkTest, ConnectionFdOfPeerReadsOnlyFdPeers) {
  EXPECT_EQ(ConnectionFdOfPeer("fd:12"), 12);
  EXPECT_EQ(ConnectionFdOfPeer("fd:0"), 0);
  EXPECT_EQ(ConnectionFdOfPeer("ipv4:127.0.0.1:2379"), -1);
  EXPECT_EQ(ConnectionFdOfPeer("fd:"), -1);
  EXPECT_EQ(ConnectionFdOfPeer("fd:12x"), -1);
  EXPECT_EQ(ConnectionFdOfPeer("fd:-3"), -1);
  EXPECT_EQ(ConnectionFdOfPeer(""), -1);
}

TEST(SocketCorkTest, CorksForTheBurstAndUncorksAfterwards) {
  int a = ::socket(AF_INET, SOCK_STREAM, 0);
  int b = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  {
    SocketCorks corks;
    corks.Cork(a);
    corks.Cork(a);   // once
    corks.Cork(-1);  // not a gRPC connection of ours: ignored
    EXPECT_EQ(CorkOf(a), 1);
    EXPECT_EQ(CorkOf(b), 0);
    corks.Cork(b);
    EXPECT_EQ(CorkOf(b), 1);
  }
  EXPECT_EQ(CorkOf(a), 0);
  EXPECT_EQ(CorkOf(b), 0);
  ::close(a);
  ::close(b);
}

TEST(SocketCorkTest, AClosedOrNonSocketFdIsHarmless) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    SocketCorks corks;
    corks.Cork(fds[0]);  // ENOTSOCK, ignored
    corks.Cork(100000);  // EBADF, ignored
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace rusd::frontend
