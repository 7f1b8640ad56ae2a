// The lease clocks: expiry only on a primary, renew, promotion extending every TTL (and
// spreading pile-ups as etcd), rate-limited hand-out of expired leases with retry.
#include "stored/lease/lessor.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace rusd::stored {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using TP = Lessor::TimePoint;

LeaseChange Granted(int64_t id, int64_t ttl) {
  return LeaseChange{LeaseChange::Kind::kGranted, id, ttl, 0};
}
LeaseChange Revoked(int64_t id) { return LeaseChange{LeaseChange::Kind::kRevoked, id, 0, 0}; }

TEST(LessorTest, FollowerNeverExpiresNorRenews) {
  Lessor l;
  const TP t0 = TP() + seconds(100);
  l.Apply({Granted(1, 5)}, t0);
  EXPECT_TRUE(l.TakeExpired(t0 + seconds(3600), 100).empty());
  EXPECT_EQ(l.Renew(1, t0).status().code(), StatusCode::kFailedPrecondition);
  auto ttl = l.Lookup(1, t0);
  ASSERT_TRUE(ttl);
  EXPECT_EQ(ttl->granted_ttl, 5);
  EXPECT_EQ(ttl->remaining_seconds, 5);
}

TEST(LessorTest, PrimaryExpiresAtTtlAndRenewRestartsTheClock) {
  Lessor l;
  const TP t0 = TP() + seconds(100);
  l.Promote(Lessor::Duration::zero(), t0);
  l.Apply({Granted(1, 5), Granted(2, 10)}, t0);
  EXPECT_TRUE(l.TakeExpired(t0 + milliseconds(4999), 100).empty());
  EXPECT_EQ(l.Lookup(1, t0 + milliseconds(2500))->remaining_seconds, 2);  // truncated
  auto renewed = l.Renew(1, t0 + seconds(4));
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(*renewed, 5);
  EXPECT_TRUE(l.TakeExpired(t0 + milliseconds(8999), 100).empty());
  EXPECT_EQ(l.TakeExpired(t0 + seconds(9), 100), std::vector<int64_t>{1});
  // Expired and handed out: renew must wait for the revocation (etcd's revokec).
  EXPECT_EQ(l.Renew(1, t0 + seconds(9)).status().code(), StatusCode::kAborted);
  l.Apply({Revoked(1)}, t0 + seconds(9));  // ...then it is not found (TTL 0)
  EXPECT_EQ(l.Renew(1, t0 + seconds(9)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(l.Renew(7, t0).status().code(), StatusCode::kNotFound);
}

TEST(LessorTest, ExpiredLeaseIsRetriedAfterIntervalUntilRevoked) {
  Lessor l(Lessor::Options{seconds(3), 1000});
  const TP t0 = TP() + seconds(100);
  l.Promote(Lessor::Duration::zero(), t0);
  l.Apply({Granted(1, 2)}, t0);
  EXPECT_EQ(l.TakeExpired(t0 + seconds(2), 10).size(), 1u);
  EXPECT_TRUE(l.TakeExpired(t0 + seconds(4), 10).empty());
  EXPECT_EQ(l.TakeExpired(t0 + seconds(5), 10).size(), 1u);  // revocation was lost: again
  l.Apply({Revoked(1)}, t0 + seconds(5));
  EXPECT_TRUE(l.TakeExpired(t0 + seconds(60), 10).empty());
  EXPECT_FALSE(l.Lookup(1, t0));
}

TEST(LessorTest, TakeExpiredHonoursTheLimitSoonestFirst) {
  Lessor l;
  const TP t0 = TP() + seconds(100);
  l.Promote(Lessor::Duration::zero(), t0);
  std::vector<LeaseChange> grants;
  for (int i = 1; i <= 50; ++i) grants.push_back(Granted(i, 2 + (i % 3)));
  l.Apply(grants, t0);
  std::vector<int64_t> first = l.TakeExpired(t0 + seconds(10), 10);
  EXPECT_EQ(first.size(), 10u);
  EXPECT_EQ(l.TakeExpired(t0 + seconds(10), 100).size(), 40u);
  for (int64_t id : first) EXPECT_EQ((id % 3), 0);  // ttl 2 ones expire first
}

TEST(LessorTest, PromotionExtendsEveryRemainingTtl) {
  Lessor l;
  const TP t0 = TP() + seconds(100);
  l.Recover({LeaseInfo{1, 5, 0}, LeaseInfo{2, 600, 30}});
  // Non-primary after recovery (a restarted stored): nothing expires.
  EXPECT_TRUE(l.TakeExpired(t0 + seconds(1000), 10).empty());
  l.Promote(seconds(1), t0);
  EXPECT_TRUE(l.TakeExpired(t0 + milliseconds(5999), 10).empty());
  EXPECT_EQ(l.TakeExpired(t0 + seconds(6), 10), std::vector<int64_t>{1});
  l.Apply({Revoked(1)}, t0 + seconds(6));
  // Lease 2 was checkpointed at 30 s remaining: 30 + 1, not 600.
  EXPECT_TRUE(l.TakeExpired(t0 + milliseconds(30999), 10).empty());
  EXPECT_EQ(l.TakeExpired(t0 + seconds(31), 10), std::vector<int64_t>{2});
  // Demote stops all clocks; a new promotion restarts them.
  l.Demote();
  EXPECT_FALSE(l.primary());
  EXPECT_TRUE(l.TakeExpired(t0 + seconds(1000), 10).empty());
}

TEST(LessorTest, PromotionSpreadsAPileUpAsEtcd) {
  Lessor l(Lessor::Options{seconds(3), 1000});
  const TP t0 = TP() + seconds(100);
  std::vector<LeaseInfo> leases;
  for (int i = 1; i <= 3000; ++i) leases.push_back(LeaseInfo{i, 10, 0});
  l.Recover(leases);
  l.Promote(seconds(1), t0);
  // etcd keeps at most 3/4 of the revoke rate (750) per second of expiries.
  size_t total = 0;
  for (int s = 0; s < 20; ++s) {
    std::vector<int64_t> ids = l.TakeExpired(t0 + seconds(11 + s), 100000);
    EXPECT_LE(ids.size(), 760u) << "second " << s;
    total += ids.size();
    std::vector<LeaseChange> revoked;
    for (int64_t id : ids) revoked.push_back(Revoked(id));
    l.Apply(revoked, t0 + seconds(11 + s));
  }
  EXPECT_EQ(total, 3000u);
}

// A restart that cut every keep-alive stream while this node kept leading (the frontend's):
// each lease gets its full TTL plus the extension again, as an etcd member restart gives it,
// even one that ran out meanwhile (its revocation was not applied); none is shortened, and
// a follower's clocks stay stopped.
TEST(LessorTest, ExtendRestartsEveryClockWithoutShorteningAny) {
  Lessor l;
  const TP t0 = TP() + seconds(100);
  l.Promote(Lessor::Duration::zero(), t0);
  l.Apply({Granted(1, 5), Granted(2, 5), Granted(3, 60)}, t0);
  EXPECT_EQ(l.Renew(2, t0 + seconds(3)).value(), 5);  // lease 2 runs to t0 + 8 s
  const TP t = t0 + milliseconds(5500);
  EXPECT_EQ(l.Lookup(1, t)->remaining_seconds, 0);
  EXPECT_EQ(l.TakeExpired(t, 10), (std::vector<int64_t>{1}));
  l.Extend(seconds(1), t);
  EXPECT_EQ(l.Lookup(1, t)->remaining_seconds, 6);
  EXPECT_EQ(l.Lookup(2, t)->remaining_seconds, 6);
  EXPECT_EQ(l.Lookup(3, t)->remaining_seconds, 61);
  EXPECT_EQ(l.Renew(1, t).value(), 5) << "an extended lease renews again";
  EXPECT_TRUE(l.TakeExpired(t + milliseconds(4999), 10).empty());

  Lessor follower;
  follower.Apply({Granted(1, 5)}, t0);
  follower.Extend(seconds(1), t0);
  EXPECT_FALSE(follower.primary());
  EXPECT_TRUE(follower.TakeExpired(t0 + seconds(3600), 10).empty());
}

TEST(LessorTest, LeasesListedSoonestExpiryFirst) {
  Lessor l;
  const TP t0 = TP() + seconds(100);
  l.Promote(Lessor::Duration::zero(), t0);
  l.Apply({Granted(1, 50), Granted(2, 10), Granted(3, 30)}, t0);
  EXPECT_EQ(l.Leases(), (std::vector<int64_t>{2, 3, 1}));
}

// Renewals re-key the lease's queue entry in place, usually at the end; one that lands
// between others (a short TTL among long ones) must still come out in expiry order.
TEST(LessorTest, RenewalsKeepTheQueueInExpiryOrder) {
  Lessor l;
  const TP t0 = TP() + seconds(100);
  l.Promote(Lessor::Duration::zero(), t0);
  l.Apply({Granted(1, 50), Granted(2, 10), Granted(3, 30)}, t0);
  ASSERT_TRUE(l.Renew(2, t0 + seconds(5)).ok());   // 2 -> t0+15: still first
  ASSERT_TRUE(l.Renew(3, t0 + seconds(25)).ok());  // 3 -> t0+55: now last
  ASSERT_TRUE(l.Renew(1, t0 + seconds(6)).ok());   // 1 -> t0+56: last
  EXPECT_EQ(l.Leases(), (std::vector<int64_t>{2, 3, 1}));
  ASSERT_TRUE(l.Renew(2, t0 + seconds(14)).ok());  // 2 -> t0+24: still before 3 and 1
  EXPECT_EQ(l.Leases(), (std::vector<int64_t>{2, 3, 1}));
  EXPECT_TRUE(l.TakeExpired(t0 + seconds(23), 10).empty());
  EXPECT_EQ(l.TakeExpired(t0 + seconds(55), 10), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(l.TakeExpired(t0 + seconds(56), 10), (std::vector<int64_t>{1}));
}

TEST(LessorTest, LongLeasesAreCheckpointedAndRenewClearsTheCheckpoint) {
  Lessor::Options o;
  o.checkpoint_interval = seconds(60);
  Lessor l(o);
  const TP t0 = TP() + seconds(100);
  l.Promote(Lessor::Duration::zero(), t0);
  l.Apply({Granted(1, 600), Granted(2, 30)}, t0);  // 30 s: never more than an interval left
  EXPECT_TRUE(l.TakeCheckpoints(t0 + seconds(59), 10).empty());
  auto cps = l.TakeCheckpoints(t0 + seconds(60), 10);
  ASSERT_EQ(cps.size(), 1u);
  EXPECT_EQ(cps[0].id, 1);
  EXPECT_EQ(cps[0].remaining_ttl, 540);
  // Applied: recorded, and the next one scheduled an interval later.
  l.Apply({LeaseChange{LeaseChange::Kind::kCheckpointed, 1, 600, 540}}, t0 + seconds(60));
  EXPECT_EQ(l.TakeCheckpoints(t0 + seconds(120), 10).size(), 1u);
  // A new leader restarts lease 1 from the checkpoint, not from 600 s.
  l.Demote();
  l.Promote(seconds(1), t0 + seconds(200));
  EXPECT_EQ(l.Lookup(1, t0 + seconds(200))->remaining_seconds, 541);
  // Renewing clears the checkpoint through Raft (a {id, 0} checkpoint is proposed).
  ASSERT_TRUE(l.Renew(1, t0 + seconds(201)).ok());
  EXPECT_EQ(l.Lookup(1, t0 + seconds(201))->remaining_seconds, 600);
  cps = l.TakeCheckpoints(t0 + seconds(201), 10);
  ASSERT_EQ(cps.size(), 1u);
  EXPECT_EQ(cps[0].id, 1);
  EXPECT_EQ(cps[0].remaining_ttl, 0);
}

}  // namespace
}  // namespace rusd::stored

namespace rusd::stored {
namespace {

// etcd's largest TTL (9e9 s) on a clock about 7 years past boot: `now + TTL` would overflow
// int64 nanoseconds; the lease must stay unexpired rather than wrap into the past.
TEST(LessorTest, HugeTtlLateInTheClockNeverExpiresAtOnce) {
  Lessor l;
  const Lessor::TimePoint late = Lessor::TimePoint(std::chrono::hours(24 * 365 * 8));
  l.Promote(Lessor::Duration::zero(), late);
  l.Apply({Granted(1, 9000000000)}, late);
  EXPECT_TRUE(l.TakeExpired(late + std::chrono::hours(24), 100).empty());
}

}  // namespace
}  // namespace rusd::stored

namespace rusd::stored {
namespace {

// A checkpoint batch that could not be proposed (store-control full) is given back and
// handed out again, with its remaining TTL recomputed at the retry; a clearing one too.
TEST(LessorTest, RequeuedCheckpointsAreHandedOutAgain) {
  Lessor::Options o;
  o.checkpoint_interval = std::chrono::seconds(60);
  Lessor l(o);
  const Lessor::TimePoint t0 = Lessor::TimePoint() + std::chrono::seconds(100);
  l.Promote(Lessor::Duration::zero(), t0);
  // Lease 2 (30 s: never more than an interval left) carries a checkpoint a renew clears.
  l.Apply({Granted(1, 600), Granted(2, 30)}, t0);
  l.Apply({LeaseChange{LeaseChange::Kind::kCheckpointed, 2, 30, 20}}, t0);
  ASSERT_TRUE(l.Renew(2, t0).ok());  // queues the clearing {2, 0}
  auto cps = l.TakeCheckpoints(t0 + std::chrono::seconds(60), 10);
  ASSERT_EQ(cps.size(), 2u);
  EXPECT_TRUE(l.TakeCheckpoints(t0 + std::chrono::seconds(61), 10).empty()) << "taken once";

  l.RequeueCheckpoints(cps, t0 + std::chrono::seconds(61));
  auto again = l.TakeCheckpoints(t0 + std::chrono::seconds(62), 10);
  ASSERT_EQ(again.size(), 2u);
  std::sort(again.begin(), again.end(),
            [](const Lessor::Checkpoint& a, const Lessor::Checkpoint& b) { return a.id < b.id; });
  EXPECT_EQ(again[0].id, 1);
  EXPECT_EQ(again[0].remaining_ttl, 538);  // recomputed at 62 s, not the stale 540
  EXPECT_EQ(again[1].id, 2);
  EXPECT_EQ(again[1].remaining_ttl, 0);

  // Nothing is requeued for a revoked lease or once no longer primary.
  l.Apply({Revoked(1)}, t0 + std::chrono::seconds(62));
  l.RequeueCheckpoints(again, t0 + std::chrono::seconds(62));
  auto third = l.TakeCheckpoints(t0 + std::chrono::seconds(63), 10);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].id, 2);
  l.Demote();
  l.RequeueCheckpoints(third, t0 + std::chrono::seconds(63));
  EXPECT_TRUE(l.TakeCheckpoints(t0 + std::chrono::seconds(64), 10).empty());
}

}  // namespace
}  // namespace rusd::stored
