#include "supervisor/join_cluster.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "raftd/transport/peer_transport.h"
#include "common/free_port_for_tests.h"

namespace rusd::supervisor {
namespace {

using test_support::FreePort;

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
  auto none = QueryExistingCluster({running}, {"http://127.0.0.1:1"}, std::chrono::seconds(1));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(none.status().message(),
            "cluster c1c1 has no member with peer URLs of this node (add it first: "
            "etcdctl member add)");

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

// `member add` returned once the leader applied it; a follower asked first may not have yet.
// Its answer without the joiner is not final while another member has the joiner.
TEST(JoinCluster, AMemberThatHasNotAppliedTheAddIsNotTheLastWord) {
  const std::string lagging = "http://127.0.0.1:" + std::to_string(FreePort());
  const std::string leader = "http://127.0.0.1:" + std::to_string(FreePort());
  const std::string joiner = "http://127.0.0.1:" + std::to_string(FreePort());
  transport::TransportOptions o;
  o.cluster_id = 0xc1c1;
  o.member_id = 0x11;
  o.name = "n1";
  o.listen_urls = {lagging};
  o.peers = {transport::PeerAddress{0x22, "n2", {leader}}};
  auto without_joiner = transport::PeerTransport::Start(o);
  ASSERT_TRUE(without_joiner.ok()) << without_joiner.status().ToString();
  o.member_id = 0x22;
  o.name = "n2";
  o.listen_urls = {leader};
  o.peers = {transport::PeerAddress{0x11, "n1", {lagging}},
             transport::PeerAddress{0x99, "", {joiner}}};
  auto with_joiner = transport::PeerTransport::Start(o);
  ASSERT_TRUE(with_joiner.ok()) << with_joiner.status().ToString();

  auto c = QueryExistingCluster({lagging, leader}, {joiner}, std::chrono::seconds(5));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->member_id, 0x99u);
  EXPECT_EQ(c->others.size(), 2u);
}

TEST(JoinCluster, NobodyAnsweringIsUnavailable) {
  const std::string url = "http://127.0.0.1:" + std::to_string(FreePort());
  auto c = QueryExistingCluster({url}, {"http://127.0.0.1:2"}, std::chrono::milliseconds(300));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace rusd::supervisor
