#include "supervisor/cluster_ids.h"

#include <gtest/gtest.h>

namespace rusd::supervisor {
namespace {

// `etcd` 3.4.23 with default flags: `etcdctl member list -w json` reports member
// 10276657743932975437 (0x8e9e05c52164694d) in cluster 14841639068965178418 (0xcdf818194e3a8c32).
TEST(ClusterIds, DefaultSingleNodeMatchesEtcd) {
  auto members = ParseInitialCluster("default=http://localhost:2380");
  ASSERT_TRUE(members.ok());
  auto ids = DeriveClusterIds(*members, "default", "etcd-cluster");
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(IdToHex(ids->member_id), "8e9e05c52164694d");
  EXPECT_EQ(IdToHex(ids->cluster_id), "cdf818194e3a8c32");
}

TEST(ClusterIds, MemberIdSortsPeerUrlsAndUsesToken) {
  uint64_t a = ComputeMemberId({"http://b:2380", "http://a:2380"}, "tok");
  uint64_t b = ComputeMemberId({"http://a:2380", "http://b:2380"}, "tok");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, ComputeMemberId({"http://a:2380", "http://b:2380"}, "other-token"));
  // A member added later mixes in the time.
  EXPECT_NE(a, ComputeMemberId({"http://a:2380", "http://b:2380"}, "tok", 1700000000));
}

TEST(ClusterIds, ClusterIdDoesNotDependOnMemberOrder) {
  EXPECT_EQ(ComputeClusterId({1, 2, 3}), ComputeClusterId({3, 1, 2}));
  EXPECT_NE(ComputeClusterId({1, 2, 3}), ComputeClusterId({1, 2}));
}

// Three members as in etcd's clustering guide, verified against etcd 3.4.23 started with
// --name infra0 --initial-cluster <below> --initial-cluster-token etcd-cluster-1.
TEST(ClusterIds, ThreeMemberClusterMatchesEtcd) {
  auto members = ParseInitialCluster(
      "infra0=http://127.0.0.1:12380,infra1=http://127.0.0.1:22380,infra2=http://127.0.0.1:32380");
  ASSERT_TRUE(members.ok());
  ASSERT_EQ(members->size(), 3u);
  auto ids0 = DeriveClusterIds(*members, "infra0", "etcd-cluster-1");
  auto ids1 = DeriveClusterIds(*members, "infra1", "etcd-cluster-1");
  ASSERT_TRUE(ids0.ok());
  ASSERT_TRUE(ids1.ok());
  EXPECT_EQ(ids0->cluster_id, ids1->cluster_id);
  EXPECT_EQ(IdToHex(ids1->member_id), "91bc3c398fb3c146");
  EXPECT_EQ(IdToHex(ids0->member_id), "8211f1d0f64f3269");
  EXPECT_EQ(IdToHex(ids0->cluster_id), "ef37ad9dc622a7c4");
}

TEST(ClusterIds, RepeatedNameGivesOneMemberSeveralUrls) {
  auto members = ParseInitialCluster("a=http://h1:2380,a=http://h2:2380,b=http://h3:2380");
  ASSERT_TRUE(members.ok());
  ASSERT_EQ(members->size(), 2u);
  EXPECT_EQ((*members)[0].peer_urls.size(), 2u);
}

TEST(ClusterIds, RejectsMissingNameDuplicateUrlsAndBadPairs) {
  auto members = ParseInitialCluster("a=http://h1:2380");
  ASSERT_TRUE(members.ok());
  auto missing = DeriveClusterIds(*members, "b", "t");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "couldn't find local name \"b\" in the initial cluster configuration");

  auto dup = ParseInitialCluster("a=http://h1:2380,b=http://h1:2380");
  ASSERT_TRUE(dup.ok());
  EXPECT_FALSE(DeriveClusterIds(*dup, "a", "t").ok());

  EXPECT_FALSE(ParseInitialCluster("a").ok());
  EXPECT_FALSE(ParseInitialCluster("a=localhost:2380").ok());
  EXPECT_FALSE(ParseInitialCluster("a=http://h1:2380/path").ok());
  EXPECT_FALSE(ParseInitialCluster("").ok());
}

TEST(ClusterIds, HexHasNoLeadingZerosLikeEtcd) {
  EXPECT_EQ(IdToHex(0x00ab), "ab");
  EXPECT_EQ(IdToHex(0x8e9e05c52164694dull), "8e9e05c52164694d");
}

}  // namespace
}  // namespace rusd::supervisor
