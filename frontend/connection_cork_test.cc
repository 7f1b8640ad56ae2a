#include "frontend/connection_cork.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "frontend/tcp_pair_for_tests.h"

namespace rusd::frontend {
namespace {

TEST(ConnectionCork, CorkedWritesLeaveAtUncork) {
  TcpPair pair;
  ConnectionCork cork;
  cork.Add(pair.server);
  cork.Cork();
  cork.Touch(pair.server);
  cork.Touch(pair.server);  // once per batch: a second touch changes nothing
  ASSERT_EQ(::send(pair.server, "abc", 3, 0), 3);
  ASSERT_EQ(::send(pair.server, "def", 3, 0), 3);
  EXPECT_FALSE(pair.ClientReadable(50)) << "a corked socket sent a short write";
  cork.Uncork();
  ASSERT_TRUE(pair.ClientReadable(1000));
  char buf[16];
  ssize_t n = ::recv(pair.client, buf, 6, MSG_WAITALL);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "abcdef");
}

TEST(ConnectionCork, OnlyTouchedConnectionsAreCorked) {
  TcpPair answered;
  TcpPair idle;
  ConnectionCork cork;
  cork.Add(answered.server);
  cork.Add(idle.server);
  cork.Cork();
  cork.Touch(answered.server);
  ASSERT_EQ(::send(idle.server, "i", 1, 0), 1);
  EXPECT_TRUE(idle.ClientReadable(1000)) << "a connection without a reply in the batch was corked";
  ASSERT_EQ(::send(answered.server, "a", 1, 0), 1);
  EXPECT_FALSE(answered.ClientReadable(50));
  cork.Uncork();
  EXPECT_TRUE(answered.ClientReadable(1000));
  // The next batch starts with nothing corked.
  cork.Cork();
  char buf[4];
  ASSERT_EQ(::recv(answered.client, buf, 1, 0), 1);
  ASSERT_EQ(::send(answered.server, "b", 1, 0), 1);
  EXPECT_TRUE(answered.ClientReadable(1000));
  cork.Uncork();
}

TEST(ConnectionCork, TouchOutsideABatchOrOfAnUntrackedSocketDoesNothing) {
  TcpPair tracked;
  TcpPair untracked;
  ConnectionCork cork;
  cork.Add(tracked.server);
  cork.Touch(tracked.server);  // no batch open
  ASSERT_EQ(::send(tracked.server, "t", 1, 0), 1);
  EXPECT_TRUE(tracked.ClientReadable(1000));
  cork.Cork();
  cork.Touch(untracked.server);  // not a connection handed to gRPC
  cork.Touch(-1);                // a peer that was not "fd:N"
  ASSERT_EQ(::send(untracked.server, "u", 1, 0), 1);
  EXPECT_TRUE(untracked.ClientReadable(1000));
  cork.Uncork();
}

TEST(ConnectionCork, TouchAllCorksEveryTrackedConnection) {
  TcpPair a;
  TcpPair b;
  ConnectionCork cork;
  cork.Add(a.server);
  cork.Add(b.server);
  cork.TouchAll();  // no batch open: nothing
  ASSERT_EQ(::send(a.server, "0", 1, 0), 1);
  EXPECT_TRUE(a.ClientReadable(1000));
  char c;
  ASSERT_EQ(::recv(a.client, &c, 1, 0), 1);
  cork.Cork();
  cork.TouchAll();
  cork.Touch(a.server);  // already corked in this batch
  ASSERT_EQ(::send(a.server, "1", 1, 0), 1);
  ASSERT_EQ(::send(b.server, "2", 1, 0), 1);
  EXPECT_FALSE(a.ClientReadable(50));
  EXPECT_FALSE(b.ClientReadable(0));
  cork.Uncork();
  EXPECT_TRUE(a.ClientReadable(1000));
  EXPECT_TRUE(b.ClientReadable(1000));
}

TEST(ConnectionCork, ParsePeerFd) {
  EXPECT_EQ(ConnectionCork::ParsePeerFd("fd:12"), 12);
  EXPECT_EQ(ConnectionCork::ParsePeerFd("fd:0"), 0);
  EXPECT_EQ(ConnectionCork::ParsePeerFd("fd:"), -1);
  EXPECT_EQ(ConnectionCork::ParsePeerFd("fd:12x"), -1);
  EXPECT_EQ(ConnectionCork::ParsePeerFd("fd:-3"), -1);
  EXPECT_EQ(ConnectionCork::ParsePeerFd("ipv4:127.0.0.1:2379"), -1);
  EXPECT_EQ(ConnectionCork::ParsePeerFd(""), -1);
}

TEST(ConnectionCork, UncorkedWritesLeaveAtOnce) {
  TcpPair pair;
  ConnectionCork cork;
  cork.Add(pair.server);
  ASSERT_EQ(::send(pair.server, "x", 1, 0), 1);
  EXPECT_TRUE(pair.ClientReadable(1000));
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
  ASSERT_TRUE(pair.ClientReadable(1000));
  char c;
  EXPECT_EQ(::recv(pair.client, &c, 1, 0), 0) << "the peer must see the close";
  cork.Prune();
  EXPECT_EQ(cork.size(), 0u);
}

TEST(ConnectionCork, TouchAllSkipsManyConnections) {
  std::vector<std::unique_ptr<TcpPair>> pairs;
  ConnectionCork cork;
  for (size_t i = 0; i <= ConnectionCork::kMaxConnections; ++i) {
    pairs.push_back(std::make_unique<TcpPair>());
    cork.Add(pairs.back()->server);
  }
  cork.Cork();
  cork.TouchAll();
  ASSERT_EQ(::send(pairs[0]->server, "x", 1, 0), 1);
  EXPECT_TRUE(pairs[0]->ClientReadable(1000));
  cork.Uncork();
}

}  // namespace
}  // namespace rusd::frontend
