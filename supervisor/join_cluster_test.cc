#include "supervisor/join_cluster.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "raftd/transport/peer_transport.h"

namespace rusd::supervisor {
namespace {

uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A running member answers the membership query: the cluster id, and the joiner finds its
// own id by its peer URLs (as etcdctl member add registered them).
TEST(JoinCluster, QueriesARunningMemberForTheClusterAndItsOwnId) {
  const std::string running = "http://127.0.0.1:" + std::to_string(FreePort());
  const std::string joiner = "http://127.0.0.1:" + std::to_string(FreePort());
  transport::TransportOptions o;
  o.cluster_id = 0xc1c1;
  o.member_id = 0x11;
  o.name = "n1";
  o.listen_urls = {running};
  o.peers = {transport::PeerAddress{0x99, "", {joiner}}};
  auto t = transport::PeerTransport::Start(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();

  auto c = QueryExistingCluster({running}, {joiner}, std::chrono::seconds(5));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cluster_id, 0xc1c1u);
  EXPECT_EQ(c->member_id, 0x99u);
  ASSERT_EQ(c->others.size(), 1u);
  EXPECT_EQ(c->others[0].id, 0x11u);
  EXPECT_EQ(c->others[0].name, "n1");
  EXPECT_EQ(c->others[0].peer_urls, std::vector<std::string>{running});

  // Not added first: a clear error.
  auto none = QueryExistingCluster({running}, {"http://127.0.0.1:1"}, std::chrono::seconds(5));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("member add"), std::string::npos);

  // The answer survives in the data dir.
  const std::string dir = ::testing::TempDir() + "/join_cluster_test";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(SaveJoinedCluster(dir, *c).ok());
  auto loaded = LoadJoinedCluster(dir);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->cluster_id, 0xc1c1u);
  EXPECT_EQ(loaded->member_id, 0x99u);
  ASSERT_EQ(loaded->others.size(), 1u);
  EXPECT_EQ(loaded->others[0], c->others[0]);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(LoadJoinedCluster(dir).status().code(), StatusCode::kNotFound);
}

TEST(JoinCluster, NobodyAnsweringIsUnavailable) {
  const std::string url = "http://127.0.0.1:" + std::to_string(FreePort());
  auto c = QueryExistingCluster({url}, {"http://127.0.0.1:2"}, std::chrono::milliseconds(300));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace rusd::supervisor
