// The lease side of rusd-stored driven through its rings: what LeaseKeeper proposes on
// store-control and answers on store-replies. A fake KvStore holds the persisted leases.
#include "stored/lease/lease_keeper.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "ipc/metrics_area.h"
#include "ipc/ring.h"
#include "ipc/test_segment.h"
#include "rusd/internal.pb.h"
#include "rusd/lease.pb.h"
#include "stored/read_worker_pool.h"

namespace rusd::stored {
namespace {

using namespace std::chrono_literals;
using ipc::MessageType;
using ipc::RingId;
using ipc::testing::ScopedSegment;
using ipc::testing::UniformLayout;

// Persisted leases and their keys, nothing else.
class LeaseStore : public KvStore {
 public:
  Result<ApplyOutput> ApplyEntries(std::span<const internal::Entry>) override {
    return Status::Unimplemented("fake");
  }
  Result<std::string> Range(const etcdserverpb::RangeRequest&) override {
    return Status::Unimplemented("fake");
  }
  Result<uint64_t> SyncWal() override { return uint64_t{0}; }
  uint64_t applied_index() const override { return 0; }
  int64_t current_revision() const override { return 1; }
  int64_t compact_revision() const override { return 0; }
  uint64_t raft_term() const override { return 1; }
  uint64_t ApproximateSizeBytes() const override { return 0; }
  Result<std::vector<LeaseInfo>> Leases() override { return leases; }
  Result<std::vector<std::string>> LeaseKeys(int64_t id) override {
    auto it = keys.find(id);
    if (it == keys.end()) return std::vector<std::string>();
    return it->second;
  }

  std::vector<LeaseInfo> leases;
  std::map<int64_t, std::vector<std::string>> keys;
};

std::optional<ipc::Message> ReadWithin(ipc::Segment& segment, ipc::RingReader& reader,
                                       std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ipc::RingReader* readers[] = {&reader};
  for (;;) {
    if (auto m = reader.TryRead()) return m;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    ipc::WaitForMessages(segment, readers, 10ms);
  }
}

std::string LeaderStatePayload(uint64_t term, bool leader) {
  internal::LeaderState s;
  s.set_term(term);
  s.set_is_leader(leader);
  return s.SerializeAsString();
}

// The lease checkpoints proposed in one kLeaseProposals frame.
std::vector<std::pair<int64_t, int64_t>> CheckpointsIn(const ipc::Message& m) {
  std::vector<std::pair<int64_t, int64_t>> out;
  internal::LeaseProposals proposals;
  if (!proposals.ParseFromString(m.payload)) return out;
  for (const std::string& bytes : proposals.commands()) {
    internal::Command cmd;
    if (!cmd.ParseFromString(bytes) || !cmd.has_lease_checkpoint()) continue;
    for (const auto& cp : cmd.lease_checkpoint().checkpoints()) {
      out.emplace_back(cp.id(), cp.remaining_ttl());
    }
  }
  return out;
}

// store-control was full when the checkpoint batch was taken: it must be proposed once
// raftd drains the ring, not dropped.
TEST(LeaseKeeperTest, CheckpointsSurviveAFullStoreControlRing) {
  ScopedSegment segment("lease-cp-full", UniformLayout(4096));
  ASSERT_TRUE(segment.ok());
  LeaseStore store;
  // Lease 5 was checkpointed at 30 s of its 60: the new leader restarts it from 30 s and
  // checkpoints it again one interval later.
  store.leases.push_back(LeaseInfo{5, 60, 30});
  ipc::RingWriter replies(*segment, RingId::kStoreReplies, 1);
  ipc::RingWriter control(*segment, RingId::kStoreControl, 1);
  ReadWorkerPool workers(store, replies, *segment, 1);
  LeaseKeeperOptions options;
  options.promote_extend = 0ms;
  options.expiry_tick = 1ms;
  options.idle_tick = 2ms;
  options.lessor.checkpoint_interval = 5ms;
  LeaseKeeper keeper(store, workers, control, options);
  ASSERT_TRUE(keeper.Recover().ok());

  // Fill store-control so the first proposals cannot be written.
  int fillers = 0;
  while (control.TryWrite(MessageType::kSnapshotReady, 0, std::string(200, 'x')).ok()) ++fillers;
  while (control.TryWrite(MessageType::kSnapshotReady, 0, "x").ok()) ++fillers;  // to the brim
  ASSERT_GT(fillers, 0);

  keeper.OnLeaderState(LeaderStatePayload(7, true));
  std::thread expiry([&] { keeper.RunExpiry(); });
  // The checkpoint falls due and its writes fail, for many ticks.
  const auto& rejects =
      segment->metrics().rings[static_cast<int>(RingId::kStoreControl)].full_rejects;
  const uint64_t rejects_before = rejects.load();
  std::this_thread::sleep_for(100ms);
  EXPECT_GT(rejects.load(), rejects_before) << "the proposals were never refused";

  ipc::RingReader reader(*segment, RingId::kStoreControl);
  std::vector<std::pair<int64_t, int64_t>> proposed;
  uint64_t proposal_term = 0;
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (proposed.empty() && std::chrono::steady_clock::now() < deadline) {
    auto m = ReadWithin(*segment, reader, 100ms);
    if (!m || m->type != MessageType::kLeaseProposals) continue;
    proposed = CheckpointsIn(*m);
    proposal_term = m->id;
  }
  keeper.Stop();
  expiry.join();
  ASSERT_EQ(proposed.size(), 1u) << "the checkpoint was lost with the failed write";
  EXPECT_EQ(proposed[0].first, 5);
  EXPECT_GT(proposed[0].second, 0);
  EXPECT_LE(proposed[0].second, 30);
  EXPECT_EQ(proposal_term, 7u);
}

// LeaseKeys waits until the test opens it: shows which thread runs the scan.
class GatedLeaseStore : public LeaseStore {
 public:
  Result<std::vector<std::string>> LeaseKeys(int64_t id) override {
    while (!open_.load()) std::this_thread::sleep_for(1ms);
    return LeaseStore::LeaseKeys(id);
  }
  void Open() { open_.store(true); }

 private:
  std::atomic<bool> open_{false};
};

std::string TimeToLiveRead(int64_t id, bool keys) {
  etcdserverpb::LeaseTimeToLiveRequest req;
  req.set_id(id);
  req.set_keys(keys);
  internal::LeaseRead read;
  *read.mutable_request() = req.SerializeAsString();
  return read.SerializeAsString();
}

// A lease with many keys: the scan runs on a read worker (the thread that submits the query,
// stored's reads thread, is not held), and the answer carries every key in order.
TEST(LeaseKeeperTest, TimeToLiveWithManyKeysIsScannedOffTheReadsThread) {
  ScopedSegment segment("lease-ttl-keys", UniformLayout(1 << 20));
  ASSERT_TRUE(segment.ok());
  GatedLeaseStore store;
  store.leases.push_back(LeaseInfo{5, 60, 0});
  std::vector<std::string>& keys = store.keys[5];
  for (int i = 0; i < 50000; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "key/%06d", i);
    keys.emplace_back(key);
  }
  ipc::RingWriter replies(*segment, RingId::kStoreReplies, 1);
  ipc::RingWriter control(*segment, RingId::kStoreControl, 1);
  ReadWorkerPool workers(store, replies, *segment, 2);
  LeaseKeeper keeper(store, workers, control, LeaseKeeperOptions{});
  ASSERT_TRUE(keeper.Recover().ok());
  keeper.OnLeaderState(LeaderStatePayload(3, true));

  std::atomic<bool> submitted{false};
  std::thread reads_thread([&] {
    keeper.Submit(MessageType::kLeaseTimeToLive, 41, TimeToLiveRead(5, true));
    submitted.store(true);
  });
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!submitted.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  const bool returned_before_scan = submitted.load();
  store.Open();
  reads_thread.join();
  EXPECT_TRUE(returned_before_scan) << "Submit waited for the key scan";

  // A TimeToLive without keys is not held behind it either.
  keeper.Submit(MessageType::kLeaseTimeToLive, 42, TimeToLiveRead(5, false));

  ipc::RingReader reader(*segment, RingId::kStoreReplies);
  std::map<uint64_t, etcdserverpb::LeaseTimeToLiveResponse> answers;
  while (answers.size() < 2) {
    auto m = ReadWithin(*segment, reader, 5s);
    ASSERT_TRUE(m.has_value());
    ASSERT_EQ(m->type, MessageType::kResult);
    ASSERT_TRUE(answers[m->id].ParseFromString(m->payload));
  }
  const auto& with_keys = answers[41];
  EXPECT_EQ(with_keys.id(), 5);
  EXPECT_EQ(with_keys.grantedttl(), 60);
  EXPECT_GT(with_keys.ttl(), 55);
  EXPECT_EQ(with_keys.header().revision(), 1);
  ASSERT_EQ(with_keys.keys_size(), 50000);
  for (int i = 0; i < with_keys.keys_size(); ++i) ASSERT_EQ(with_keys.keys(i), keys[i]);
  EXPECT_EQ(answers[42].keys_size(), 0);
  EXPECT_EQ(answers[42].grantedttl(), 60);
}

std::string KeepAliveBatchRead(std::vector<int64_t> ids, bool wait_revoked) {
  internal::KeepAliveBatch batch;
  for (int64_t id : ids) batch.add_ids(id);
  batch.set_wait_revoked(wait_revoked);
  internal::LeaseRead read;
  *read.mutable_request() = batch.SerializeAsString();
  return read.SerializeAsString();
}

std::vector<int64_t> TtlsOf(const ipc::Message& m) {
  internal::KeepAliveBatchReply reply;
  EXPECT_EQ(m.type, MessageType::kResult);
  EXPECT_TRUE(reply.ParseFromString(m.payload));
  return {reply.ttls().begin(), reply.ttls().end()};
}

// etcd 3.5's Renew of an expired lease whose revocation is pending waits for it: TTL 0 once
// revoked ("not found"), or "not primary" if leadership moves first. The first answer marks
// the lease -1 so the others in its batch are not held; the retry with wait_revoked waits.
TEST(LeaseKeeperTest, RenewOfAnExpiredLeaseWaitsForItsRevocation) {
  ScopedSegment segment("lease-expired-renew", UniformLayout(1 << 16));
  ASSERT_TRUE(segment.ok());
  LeaseStore store;
  store.leases.push_back(LeaseInfo{5, 1, 0});    // expires 1 s after the promotion
  store.leases.push_back(LeaseInfo{6, 60, 0});
  store.leases.push_back(LeaseInfo{7, 1, 0});
  ipc::RingWriter replies(*segment, RingId::kStoreReplies, 1);
  ipc::RingWriter control(*segment, RingId::kStoreControl, 1);
  ReadWorkerPool workers(store, replies, *segment, 1);
  LeaseKeeperOptions options;
  options.promote_extend = 0ms;
  LeaseKeeper keeper(store, workers, control, options);  // no expiry thread: never revoked
  ASSERT_TRUE(keeper.Recover().ok());
  keeper.OnLeaderState(LeaderStatePayload(4, true));
  std::this_thread::sleep_for(1100ms);
  ipc::RingReader reader(*segment, RingId::kStoreReplies);

  keeper.Submit(MessageType::kLeaseKeepAliveBatch, 1, KeepAliveBatchRead({5, 6, 9}, false));
  auto first = ReadWithin(*segment, reader, 2s);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(TtlsOf(*first), (std::vector<int64_t>{-1, 60, 0}));  // pending, renewed, unknown

  keeper.Submit(MessageType::kLeaseKeepAliveBatch, 2, KeepAliveBatchRead({5}, true));
  EXPECT_FALSE(ReadWithin(*segment, reader, 200ms).has_value()) << "answered before the revoke";
  keeper.OnApplied(10, {LeaseChange{LeaseChange::Kind::kRevoked, 5, 0, 0}});
  auto second = ReadWithin(*segment, reader, 2s);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->id, 2u);
  EXPECT_EQ(TtlsOf(*second), (std::vector<int64_t>{0}));

  // Leadership moves while lease 7 waits: "not leader", for the frontend to ask the new one.
  keeper.Submit(MessageType::kLeaseKeepAliveBatch, 3, KeepAliveBatchRead({7}, true));
  EXPECT_FALSE(ReadWithin(*segment, reader, 200ms).has_value());
  keeper.OnLeaderState(LeaderStatePayload(5, false));
  auto third = ReadWithin(*segment, reader, 2s);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->id, 3u);
  EXPECT_EQ(third->type, MessageType::kError);
}

}  // namespace
}  // namespace rusd::stored
