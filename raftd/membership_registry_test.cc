#include "raftd/membership_registry.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace rusd::raftd {
namespace {

using Kind = internal::MemberChangeRequest;

std::vector<ClusterMember> Bootstrap() {
  return {{1, "n1", {"http://127.0.0.1:1001"}},
          {2, "n2", {"http://127.0.0.1:1002"}},
          {3, "n3", {"http://127.0.0.1:1003"}}};
}

raft::RaftNode Follower() {
  raft::Config c;
  c.id = 1;
  c.voters = {1, 2, 3};
  return raft::RaftNode(c, raft::RecoveredState{});
}

raft::Entry ConfEntry(uint64_t index, const raft::ConfChange& cc) {
  raft::Entry e;
  e.index = index;
  e.term = 1;
  e.type = raft::EntryType::kConfChange;
  e.data = raft::EncodeConfChange(cc);
  return e;
}

TEST(MembershipRegistry, AddedMemberIdIsEtcds) {
  // sha1(sorted peer URLs joined + decimal Unix time), first 8 bytes big endian (etcd's
  // membership.computeMemberId with an empty cluster name, as MemberAdd calls it).
  EXPECT_EQ(ComputeAddedMemberId({"http://127.0.0.1:2380"}, 1700000000), 0x71b3e183c260adbeULL);
  EXPECT_EQ(ComputeAddedMemberId({"http://b:2", "http://a:1"}, 42), 0x4039da53543ba3bfULL);
}

TEST(MembershipRegistry, RefusesWithEtcdsErrors) {
  MembershipRegistry reg(1, Bootstrap(), "");
  raft::RaftNode node = Follower();
  Kind req;
  req.set_kind(Kind::REMOVE);
  req.set_member_id(9);
  auto r = reg.Plan(req, node, 7);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "etcdserver: member not found");

  req.set_kind(Kind::ADD);
  req.add_peer_urls("http://127.0.0.1:1002");
  r = reg.Plan(req, node, 7);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "etcdserver: Peer URLs already exists");

  req.clear_peer_urls();
  req.add_peer_urls("not a url");
  r = reg.Plan(req, node, 7);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "etcdserver: given member URLs are invalid");

  req.Clear();
  req.set_kind(Kind::PROMOTE);
  req.set_member_id(2);
  r = reg.Plan(req, node, 7);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "etcdserver: can only promote a learner member");
}

// The transport cannot dial TLS or unix peers yet: such a member would be accepted and
// never reached, so MemberAdd and MemberUpdate refuse it (a malformed URL keeps etcd's error).
TEST(MembershipRegistry, RefusesPeerUrlsTheTransportCannotDial) {
  MembershipRegistry reg(1, Bootstrap(), "");
  raft::RaftNode node = Follower();
  for (Kind::Kind kind : {Kind::ADD, Kind::UPDATE}) {
    Kind req;
    req.set_kind(kind);
    req.set_member_id(2);
    req.add_peer_urls("https://127.0.0.1:1004");
    auto r = reg.Plan(req, node, 7);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(),
              "rusd: TLS peer URLs are not supported yet (use http://): https://127.0.0.1:1004");
    req.clear_peer_urls();
    req.add_peer_urls("http://127.0.0.1:1004/");  // etcd: a path, even "/"
    r = reg.Plan(req, node, 7);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().message(), "etcdserver: given member URLs are invalid");
    req.clear_peer_urls();
    req.add_peer_urls("http://127.0.0.1:1004");
    EXPECT_TRUE(reg.Plan(req, node, 7).ok());
  }
}

TEST(MembershipRegistry, OneLearnerAtMostAndPromoteNeedsTheLeader) {
  MembershipRegistry reg(1, Bootstrap(), "");
  raft::RaftNode node = Follower();
  Kind req;
  req.set_kind(Kind::ADD);
  req.set_is_learner(true);
  req.add_peer_urls("http://127.0.0.1:1004");
  req.set_unix_time(5);
  auto cc = reg.Plan(req, node, 7);
  ASSERT_TRUE(cc.ok()) << cc.status().ToString();
  EXPECT_EQ(cc->type, raft::ConfChangeType::kAddLearnerNode);
  auto applied = reg.Apply(ConfEntry(4, *cc));
  ASSERT_TRUE(applied.changed);
  EXPECT_EQ(applied.record.request_id(), 7u);
  EXPECT_EQ(applied.record.origin_member_id(), 1u);
  ASSERT_EQ(reg.members().size(), 4u);
  EXPECT_TRUE(reg.Find(cc->node_id)->is_learner());

  req.clear_peer_urls();
  req.add_peer_urls("http://127.0.0.1:1005");
  auto second = reg.Plan(req, node, 8);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(), "etcdserver: too many learner members in cluster");

  Kind promote;
  promote.set_kind(Kind::PROMOTE);
  promote.set_member_id(cc->node_id);
  auto p = reg.Plan(promote, node, 9);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "etcdserver: not leader");
}

TEST(MembershipRegistry, ChangesSurviveARestartAndReplayIsIdempotent) {
  const std::string dir = ::testing::TempDir() + "/membership_registry_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  raft::RaftNode node = Follower();
  std::vector<raft::Entry> log;
  {
    MembershipRegistry reg(1, Bootstrap(), dir);
    ASSERT_TRUE(reg.Load().ok());
    Kind upd;
    upd.set_kind(Kind::UPDATE);
    upd.set_member_id(2);
    upd.add_peer_urls("http://127.0.0.1:2002");
    auto cc = reg.Plan(upd, node, 1);
    ASSERT_TRUE(cc.ok());
    log.push_back(ConfEntry(3, *cc));
    reg.Apply(log.back());
    Kind rm;
    rm.set_kind(Kind::REMOVE);
    rm.set_member_id(3);
    cc = reg.Plan(rm, node, 2);
    ASSERT_TRUE(cc.ok());
    log.push_back(ConfEntry(6, *cc));
    reg.Apply(log.back());
    EXPECT_TRUE(reg.WasRemoved(3));
    EXPECT_FALSE(reg.self_removed());
  }
  MembershipRegistry again(1, Bootstrap(), dir);
  ASSERT_TRUE(again.Load().ok());
  again.Replay(log, 6);  // already reflected: nothing applies twice
  EXPECT_EQ(again.applied_index(), 6u);
  ASSERT_EQ(again.members().size(), 2u);
  EXPECT_EQ(again.Find(2)->peer_urls(0), "http://127.0.0.1:2002");
  EXPECT_EQ(again.Find(2)->name(), "n2");
  EXPECT_EQ(again.Find(3), nullptr);
  EXPECT_TRUE(again.WasRemoved(3));

  // Without the file, replaying the log from the bootstrap gives the same list.
  MembershipRegistry replayed(1, Bootstrap(), "");
  replayed.Replay(log, 6);
  ASSERT_EQ(replayed.members().size(), 2u);
  EXPECT_EQ(replayed.Find(2)->peer_urls(0), "http://127.0.0.1:2002");
  // A member that applies its own removal knows it.
  MembershipRegistry three(3, Bootstrap(), "");
  three.Replay(log, 6);
  EXPECT_TRUE(three.self_removed());
  std::filesystem::remove_all(dir);
}

// What a snapshot carries: the list as of its index, built from the list at the previous
// point and the conf-change entries after it (not later ones); a follower installing it
// takes it over (persisted), and never goes back to an older list.
TEST(MembershipRegistry, ListAtAnIndexAndRestoreFromASnapshot) {
  raft::RaftNode node = Follower();
  MembershipRegistry leader(1, Bootstrap(), "");
  Kind add;
  add.set_kind(Kind::ADD);
  add.add_peer_urls("http://127.0.0.1:1004");
  add.set_unix_time(5);
  auto added = leader.Plan(add, node, 7);
  ASSERT_TRUE(added.ok());
  Kind rm;
  rm.set_kind(Kind::REMOVE);
  rm.set_member_id(2);
  auto removed = leader.Plan(rm, node, 8);
  ASSERT_TRUE(removed.ok());
  std::vector<raft::Entry> log;
  for (uint64_t i = 1; i <= 12; ++i) {
    raft::Entry e;
    e.index = i;
    e.term = 1;
    log.push_back(e);
  }
  log[4] = ConfEntry(5, *added);     // the add at 5
  log[9] = ConfEntry(10, *removed);  // the removal at 10
  leader.Replay(log, 12);

  internal::MemberListFile at8 = MembershipRegistry::ListAt(leader.initial(), log, 8);
  EXPECT_EQ(at8.applied_index(), 8u);
  ASSERT_EQ(at8.members_size(), 4) << "the add at 5 is in, the removal at 10 is not";
  EXPECT_EQ(at8.members(3).id(), added->node_id);
  EXPECT_EQ(at8.members(3).peer_urls(0), "http://127.0.0.1:1004");
  EXPECT_EQ(at8.members(3).request_id(), 0u) << "request ids stay in the log entry";
  EXPECT_EQ(at8.removed_ids_size(), 0);
  // From that list on (the next compaction), only the entries after 8 apply.
  internal::MemberListFile at12 =
      MembershipRegistry::ListAt(at8, std::span<const raft::Entry>(log).subspan(8), 12);
  EXPECT_EQ(at12.applied_index(), 12u);
  EXPECT_EQ(at12.members_size(), 3);
  ASSERT_EQ(at12.removed_ids_size(), 1);
  EXPECT_EQ(at12.removed_ids(0), 2u);

  // A follower that never saw the add installs the snapshot at 8: it knows member 4 and
  // its URLs from now on, also after a restart (members.pb), and later entries apply on top.
  const std::string dir = ::testing::TempDir() + "/membership_registry_restore_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    MembershipRegistry follower(3, Bootstrap(), dir);
    ASSERT_TRUE(follower.Load().ok());
    EXPECT_TRUE(follower.Restore(at8));
    EXPECT_EQ(follower.applied_index(), 8u);
    ASSERT_NE(follower.Find(added->node_id), nullptr);
    EXPECT_FALSE(follower.Restore(MembershipRegistry::ListAt(leader.initial(), log, 4)))
        << "an older list is ignored";
    EXPECT_NE(follower.Find(added->node_id), nullptr);
  }
  MembershipRegistry restarted(3, Bootstrap(), dir);
  ASSERT_TRUE(restarted.Load().ok());
  EXPECT_EQ(restarted.applied_index(), 8u);
  ASSERT_NE(restarted.Find(added->node_id), nullptr);
  EXPECT_EQ(restarted.Find(added->node_id)->peer_urls(0), "http://127.0.0.1:1004");
  restarted.Replay(log, 12);  // entries 9..12 (the removal of 2) on top
  EXPECT_EQ(restarted.members().size(), 3u);
  EXPECT_TRUE(restarted.WasRemoved(2));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rusd::raftd
