// Unit tests of rusd-stored's parts that do not need the real store: the reply overflow
// queue, the event publisher's gap flag and frame cuts, and the applied-index gate with the
// read workers. A fake KvStore answers ranges; the rings live in a test segment.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"
#include "ipc/ring.h"
#include "ipc/test_segment.h"
#include "rusd/internal.pb.h"
#include "stored/applied_index_gate.h"
#include "stored/entry_batch_decoder.h"
#include "stored/event_publisher.h"
#include "stored/hash_read.h"
#include "stored/metrics_ops.h"
#include "stored/mvcc/kv_store.h"
#include "stored/read_worker_pool.h"
#include "stored/reply_sender.h"

namespace rusd::stored {
namespace {

using namespace std::chrono_literals;
using ipc::MessageType;
using ipc::RingId;
using ipc::testing::ScopedSegment;
using ipc::testing::UniformLayout;

// Answers every Range with a RangeResponse whose count is the request's limit, so a test can
// tell which request a reply belongs to; "bad" keys fail with etcd's compacted error.
class FakeStore : public KvStore {
 public:
  Result<ApplyOutput> ApplyEntries(std::span<const internal::Entry>) override {
    return Status::Unimplemented("fake");
  }
  Result<std::string> Range(const etcdserverpb::RangeRequest& request) override {
    if (request.key() == "bad") {
      return Status::OutOfRange("etcdserver: mvcc: required revision has been compacted");
    }
    etcdserverpb::RangeResponse response;
    response.set_count(request.limit());
    return response.SerializeAsString();
  }
  Result<uint64_t> SyncWal() override { return uint64_t{0}; }
  uint64_t applied_index() const override { return 0; }
  int64_t current_revision() const override { return 1; }
  int64_t compact_revision() const override { return 0; }
  uint64_t raft_term() const override { return 0; }
  uint64_t ApproximateSizeBytes() const override { return 0; }
  // HashKv answers hash = the revision asked for; revision 99 fails as etcd's future one.
  Result<std::string> HashKv(int64_t revision) override {
    if (revision == 99) {
      return Status::OutOfRange("etcdserver: mvcc: required revision is a future revision");
    }
    etcdserverpb::HashKVResponse response;
    response.set_hash(static_cast<uint32_t>(revision));
    return response.SerializeAsString();
  }
  Result<std::string> Hash() override {
    etcdserverpb::HashResponse response;
    response.set_hash(1234);
    return response.SerializeAsString();
  }
};

// Reads the next message from `reader`, waiting up to `timeout`.
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

std::shared_ptr<internal::RangeRead> MakeRead(uint64_t min_applied, int64_t tag,
                                              const std::string& key = "k") {
  auto read = std::make_shared<internal::RangeRead>();
  read->set_min_applied_index(min_applied);
  read->mutable_request()->set_key(key);
  read->mutable_request()->set_limit(tag);
  return read;
}

// A FakeStore whose ranges wait until the test opens the gate, counting the calls.
class GatedStore : public FakeStore {
 public:
  Result<std::string> Range(const etcdserverpb::RangeRequest& request) override {
    calls_.fetch_add(1);
    while (!open_.load()) std::this_thread::sleep_for(1ms);
    return FakeStore::Range(request);
  }
  void Open() { open_.store(true); }
  int calls() const { return calls_.load(); }

 private:
  std::atomic<bool> open_{false};
  std::atomic<int> calls_{0};
};

TEST(ReadWorkerPoolTest, RepeatOfAReadStillBeingServedIsDropped) {
  ScopedSegment segment("stored-repeat", UniformLayout(1 << 16));
  ASSERT_TRUE(segment.ok());
  GatedStore store;
  ipc::RingWriter writer(*segment, RingId::kStoreReplies, 1);
  ReadWorkerPool workers(store, writer, *segment, 2);
  // The frontend re-sent read 7 (stored's epoch moved) while the first copy is served.
  workers.ServeRange(7, MakeRead(0, 70));
  workers.ServeRange(7, MakeRead(0, 70));
  std::this_thread::sleep_for(50ms);  // both workers idle but one: the repeat must not start
  store.Open();

  ipc::RingReader reader(*segment, RingId::kStoreReplies);
  auto first = ReadWithin(*segment, reader, 2s);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->id, 7u);
  EXPECT_FALSE(ReadWithin(*segment, reader, 200ms).has_value()) << "the repeat was served too";
  EXPECT_EQ(store.calls(), 1);

  // Once the first reply is out, a late repeat is served again (the frontend drops it).
  workers.ServeRange(7, MakeRead(0, 70));
  auto again = ReadWithin(*segment, reader, 2s);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->id, 7u);
}

TEST(ReplySenderTest, QueuesRepliesWhenRingIsFullAndDeliversThemInOrder) {
  ScopedSegment segment("stored-replies", UniformLayout(4096));
  ASSERT_TRUE(segment.ok());
  FakeStore store;
  ipc::RingWriter writer(*segment, RingId::kStoreReplies, 1);
  ReadWorkerPool workers(store, writer, *segment, 1);
  ReplySender sender(writer, workers);
  const std::string payload(100, 'x');
  for (uint64_t id = 1; id <= 200; ++id) sender.Send(MessageType::kResult, id, payload);
  EXPECT_TRUE(sender.has_backlog());  // 200 x 128 bytes do not fit in 4 KiB
  EXPECT_EQ(sender.dropped(), 0u);

  ipc::RingReader reader(*segment, RingId::kStoreReplies);
  uint64_t next = 1;
  while (next <= 200) {
    sender.Drain();
    auto m = reader.TryRead();
    ASSERT_TRUE(m.has_value() || sender.has_backlog()) << "reply " << next << " lost";
    if (!m) continue;
    EXPECT_EQ(m->id, next);
    EXPECT_EQ(m->type, MessageType::kResult);
    ++next;
  }
  EXPECT_FALSE(sender.has_backlog());
}

TEST(ReplySenderTest, RepliesOfABatchWakeASleepingFrontendOnceAtWakeFrontend) {
  ScopedSegment segment("stored-replies-wake", UniformLayout(4096));
  ASSERT_TRUE(segment.ok());
  FakeStore store;
  ipc::RingWriter writer(*segment, RingId::kStoreReplies, 1);
  ReadWorkerPool workers(store, writer, *segment, 1);
  ReplySender sender(writer, workers);
  ipc::Doorbell& bell = segment->doorbell(ipc::DoorbellOf(RingId::kStoreReplies));
  bell.sleeping.store(1);  // the frontend's reply thread sleeps on its doorbell
  for (uint64_t id = 1; id <= 5; ++id) sender.Send(MessageType::kResult, id, "reply");
  EXPECT_EQ(bell.wakes.load(), 0u);  // no doorbell check per reply
  sender.WakeFrontend();
  EXPECT_EQ(bell.wakes.load(), 1u);
  EXPECT_EQ(bell.sleeping.load(), 0u);
  sender.WakeFrontend();  // nothing written since: nothing to do
  EXPECT_EQ(bell.wakes.load(), 1u);
  ipc::RingReader reader(*segment, RingId::kStoreReplies);
  for (uint64_t id = 1; id <= 5; ++id) {
    auto m = reader.TryRead();
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->id, id);
  }
}

TEST(ReplySenderTest, FullOverflowQueueDropsTheOldestReply) {
  ScopedSegment segment("stored-drop", UniformLayout(4096));
  ASSERT_TRUE(segment.ok());
  FakeStore store;
  ipc::RingWriter writer(*segment, RingId::kStoreReplies, 1);
  ReadWorkerPool workers(store, writer, *segment, 1);
  ReplySenderOptions options;
  options.max_queued_replies = 10;
  ReplySender sender(writer, workers, options);
  const std::string payload(1000, 'x');  // 4 frames of 1 KiB fill the ring, 10 queue
  for (uint64_t id = 1; id <= 20; ++id) sender.Send(MessageType::kResult, id, payload);
  EXPECT_EQ(sender.queued(), 10u);
  EXPECT_EQ(sender.dropped(), 6u);

  ipc::RingReader reader(*segment, RingId::kStoreReplies);
  std::vector<uint64_t> ids;
  for (int spins = 0; spins < 1000 && ids.size() < 14; ++spins) {
    sender.Drain();
    while (auto m = reader.TryRead()) ids.push_back(m->id);
  }
  std::vector<uint64_t> want = {1, 2, 3, 4, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  EXPECT_EQ(ids, want);
}

TEST(ReplySenderTest, OversizedReplyGoesThroughTheWorkersInChunks) {
  ScopedSegment segment("stored-big", UniformLayout(64 << 10));
  ASSERT_TRUE(segment.ok());
  FakeStore store;
  ipc::RingWriter writer(*segment, RingId::kStoreReplies, 1);
  ReadWorkerPool workers(store, writer, *segment, 1);
  ReplySenderOptions options;
  options.max_inline_reply_bytes = 16 << 10;
  ReplySender sender(writer, workers, options);
  const std::string big(1 << 20, 'b');  // 16x the ring: only a waiting writer gets it through
  sender.Send(MessageType::kResult, 7, big);
  EXPECT_FALSE(sender.has_backlog());
  ipc::RingReader reader(*segment, RingId::kStoreReplies);
  auto m = ReadWithin(*segment, reader, 5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 7u);
  EXPECT_EQ(m->payload, big);
}

mvccpb::Event PutEvent(const std::string& key, int64_t revision, size_t value_bytes = 10) {
  mvccpb::Event e;
  e.set_type(mvccpb::Event::PUT);
  e.mutable_kv()->set_key(key);
  e.mutable_kv()->set_value(std::string(value_bytes, 'v'));
  e.mutable_kv()->set_mod_revision(revision);
  return e;
}

TEST(EventPublisherTest, FullRingMarksAGapThatTheNextDeliveredBatchAnnounces) {
  ScopedSegment segment("stored-events", UniformLayout(4096));
  ASSERT_TRUE(segment.ok());
  ipc::RingWriter writer(*segment, RingId::kEvents, 1);
  EventPublisher publisher(writer);
  int64_t rev = 1;
  while (!publisher.gap()) {
    std::vector<mvccpb::Event> events = {PutEvent("k", ++rev, 300)};
    publisher.Publish(events);
    ASSERT_LT(rev, 100) << "the ring never filled";
  }
  const int64_t lost = rev;
  ipc::RingReader reader(*segment, RingId::kEvents);
  int64_t last_delivered = 0;
  while (auto m = reader.TryRead()) {
    internal::EventBatch batch;
    ASSERT_TRUE(batch.ParseFromString(m->payload));
    EXPECT_FALSE(batch.after_gap());
    EXPECT_EQ(static_cast<int64_t>(m->id), batch.revision());
    last_delivered = batch.revision();
  }
  EXPECT_EQ(last_delivered, lost - 1);

  std::vector<mvccpb::Event> events = {PutEvent("k", ++rev)};
  publisher.Publish(events);
  EXPECT_FALSE(publisher.gap());
  auto m = reader.TryRead();
  ASSERT_TRUE(m.has_value());
  internal::EventBatch batch;
  ASSERT_TRUE(batch.ParseFromString(m->payload));
  EXPECT_TRUE(batch.after_gap());
  EXPECT_EQ(batch.revision(), rev);
}

TEST(EventPublisherTest, WhileTheConsumerDrainsNothingLaterBatchesAreDroppedUnbuilt) {
  ScopedSegment segment("stored-events-idle", UniformLayout(4096));
  ASSERT_TRUE(segment.ok());
  ipc::RingWriter writer(*segment, RingId::kEvents, 1);
  EventPublisher publisher(writer);
  int64_t rev = 1;
  while (!publisher.gap()) {
    std::vector<mvccpb::Event> events = {PutEvent("k", ++rev, 300)};
    publisher.Publish(events);
    ASSERT_LT(rev, 100) << "the ring never filled";
  }
  // A tiny batch would fit the leftover space, but nobody drained: it is dropped too, and
  // the ring's free space is untouched.
  const uint64_t free_before = writer.FreeBytes();
  const uint64_t dropped_before = publisher.dropped_frames();
  std::vector<mvccpb::Event> small = {PutEvent("k", ++rev, 1)};
  publisher.Publish(small);
  EXPECT_TRUE(publisher.gap());
  EXPECT_EQ(publisher.dropped_frames(), dropped_before + 1);
  EXPECT_EQ(writer.FreeBytes(), free_before);
  // Once the consumer frees space, publishing resumes and announces the gap.
  ipc::RingReader reader(*segment, RingId::kEvents);
  while (reader.TryRead()) {
  }
  std::vector<mvccpb::Event> next = {PutEvent("k", ++rev)};
  publisher.Publish(next);
  EXPECT_FALSE(publisher.gap());
  auto m = reader.TryRead();
  ASSERT_TRUE(m.has_value());
  internal::EventBatch batch;
  ASSERT_TRUE(batch.ParseFromString(m->payload));
  EXPECT_TRUE(batch.after_gap());
  EXPECT_EQ(batch.revision(), rev);
}

TEST(EventPublisherTest, WhileNoWatcherWantsEventsBatchesAreNotBuiltAndTheFirstWantedOneGoesOut) {
  ScopedSegment segment("stored-events-unwanted", UniformLayout(4096));
  ASSERT_TRUE(segment.ok());
  ipc::RingWriter writer(*segment, RingId::kEvents, 1);
  std::atomic<uint64_t> wanted{0};
  EventPublisher publisher(writer, 256u << 10, &wanted);
  ipc::RingReader reader(*segment, RingId::kEvents);
  int64_t rev = 1;
  // Far more than the ring holds: nothing is built or written while nobody watches, and
  // nothing counts as dropped.
  const uint64_t free_before = writer.FreeBytes();
  for (int i = 0; i < 100; ++i) {
    std::vector<mvccpb::Event> events = {PutEvent("k", ++rev, 300)};
    publisher.Publish(events);
  }
  EXPECT_EQ(publisher.skipped_batches(), 100u);
  EXPECT_EQ(publisher.dropped_frames(), 0u);
  EXPECT_FALSE(publisher.gap());
  EXPECT_EQ(writer.FreeBytes(), free_before);
  EXPECT_FALSE(reader.TryRead().has_value());

  // A watch stream opened: the next batch goes out at once.
  wanted.store(1);
  std::vector<mvccpb::Event> events = {PutEvent("k", ++rev)};
  publisher.Publish(events);
  auto m = reader.TryRead();
  ASSERT_TRUE(m.has_value());
  internal::EventBatch batch;
  ASSERT_TRUE(batch.ParseFromString(m->payload));
  EXPECT_FALSE(batch.after_gap());
  EXPECT_EQ(batch.revision(), rev);
  EXPECT_EQ(publisher.skipped_batches(), 100u);
}

TEST(EventPublisherTest, LargeBatchesAreCutOnlyAtRevisionBoundaries) {
  ScopedSegment segment("stored-cuts", UniformLayout(1 << 20));
  ASSERT_TRUE(segment.ok());
  ipc::RingWriter writer(*segment, RingId::kEvents, 1);
  EventPublisher publisher(writer, /*max_frame_bytes=*/1000);
  std::vector<mvccpb::Event> events;
  for (int64_t rev = 2; rev <= 5; ++rev) {
    for (const char* key : {"k0", "k1", "k2"}) events.push_back(PutEvent(key, rev, 400));
  }
  publisher.Publish(events);
  ipc::RingReader reader(*segment, RingId::kEvents);
  std::vector<int64_t> frame_revisions;
  while (auto m = reader.TryRead()) {
    internal::EventBatch batch;
    ASSERT_TRUE(batch.ParseFromString(m->payload));
    ASSERT_EQ(batch.events_size(), 3);  // each revision's 3 events together, ~1200 bytes
    for (const auto& e : batch.events()) EXPECT_EQ(e.kv().mod_revision(), batch.revision());
    frame_revisions.push_back(batch.revision());
  }
  EXPECT_EQ(frame_revisions, (std::vector<int64_t>{2, 3, 4, 5}));
}

TEST(AppliedIndexGateTest, ParksReadsUntilTheirIndexIsApplied) {
  ScopedSegment segment("stored-gate", UniformLayout(64 << 10));
  ASSERT_TRUE(segment.ok());
  FakeStore store;
  ipc::RingWriter writer(*segment, RingId::kStoreReplies, 1);
  ReadWorkerPool workers(store, writer, *segment, 2);
  AppliedIndexGate gate(5, workers);
  ipc::RingReader reader(*segment, RingId::kStoreReplies);

  gate.Submit(100, MakeRead(0, 1));  // serializable
  gate.Submit(101, MakeRead(5, 2));  // already applied
  gate.Submit(102, MakeRead(7, 3));
  gate.Submit(103, MakeRead(9, 4));
  std::set<uint64_t> got;
  for (int i = 0; i < 2; ++i) {
    auto m = ReadWithin(*segment, reader, 5s);
    ASSERT_TRUE(m.has_value());
    got.insert(m->id);
  }
  EXPECT_EQ(got, (std::set<uint64_t>{100, 101}));
  EXPECT_EQ(gate.parked(), 2u);
  EXPECT_FALSE(ReadWithin(*segment, reader, 100ms).has_value());

  gate.Advance(7);
  auto m = ReadWithin(*segment, reader, 5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 102u);
  etcdserverpb::RangeResponse response;
  ASSERT_TRUE(response.ParseFromString(m->payload));
  EXPECT_EQ(response.count(), 3);
  EXPECT_EQ(gate.parked(), 1u);

  gate.Advance(20);
  m = ReadWithin(*segment, reader, 5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 103u);
  EXPECT_EQ(gate.parked(), 0u);
  EXPECT_EQ(segment->counter(ipc::Counter::kRangeReads).load(), 4u);
}

TEST(ReadWorkerPoolTest, RangeErrorBecomesAnErrorReplyWithEtcdsText) {
  ScopedSegment segment("stored-err", UniformLayout(64 << 10));
  ASSERT_TRUE(segment.ok());
  FakeStore store;
  ipc::RingWriter writer(*segment, RingId::kStoreReplies, 1);
  ReadWorkerPool workers(store, writer, *segment, 2);
  workers.ServeRange(42, MakeRead(0, 1, "bad"));
  ipc::RingReader reader(*segment, RingId::kStoreReplies);
  auto m = ReadWithin(*segment, reader, 5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type, MessageType::kError);
  internal::ErrorReply error;
  ASSERT_TRUE(error.ParseFromString(m->payload));
  EXPECT_EQ(error.code(), static_cast<int>(StatusCode::kOutOfRange));
  EXPECT_EQ(error.message(), "etcdserver: mvcc: required revision has been compacted");
}

// kHashKvRead / kHashRead: the etcd request in, the store's response or error out, on the
// request's id; a malformed request is InvalidArgument.
TEST(HashReadTest, HashRequestsReachTheStoreAndAnswerUnderTheirId) {
  ScopedSegment segment("stored-hash", UniformLayout(64 << 10));
  ASSERT_TRUE(segment.ok());
  FakeStore store;
  ipc::RingWriter writer(*segment, RingId::kStoreReplies, 1);
  ReadWorkerPool workers(store, writer, *segment, 2);
  ipc::RingReader reader(*segment, RingId::kStoreReplies);
  etcdserverpb::HashKVRequest request;
  request.set_revision(17);
  ServeHash(store, workers, MessageType::kHashKvRead, 5, request.SerializeAsString());
  auto m = ReadWithin(*segment, reader, 5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 5u);
  ASSERT_EQ(m->type, MessageType::kResult);
  etcdserverpb::HashKVResponse hashkv;
  ASSERT_TRUE(hashkv.ParseFromString(m->payload));
  EXPECT_EQ(hashkv.hash(), 17u);

  request.set_revision(99);
  ServeHash(store, workers, MessageType::kHashKvRead, 6, request.SerializeAsString());
  m = ReadWithin(*segment, reader, 5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 6u);
  ASSERT_EQ(m->type, MessageType::kError);
  internal::ErrorReply error;
  ASSERT_TRUE(error.ParseFromString(m->payload));
  EXPECT_EQ(error.code(), static_cast<int>(StatusCode::kOutOfRange));
  EXPECT_EQ(error.message(), "etcdserver: mvcc: required revision is a future revision");

  ServeHash(store, workers, MessageType::kHashRead, 7, "");
  m = ReadWithin(*segment, reader, 5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 7u);
  ASSERT_EQ(m->type, MessageType::kResult);
  etcdserverpb::HashResponse hash;
  ASSERT_TRUE(hash.ParseFromString(m->payload));
  EXPECT_EQ(hash.hash(), 1234u);

  ServeHash(store, workers, MessageType::kHashKvRead, 8, std::string("\xff\xff", 2));
  m = ReadWithin(*segment, reader, 5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 8u);
  ASSERT_EQ(m->type, MessageType::kError);
  ASSERT_TRUE(error.ParseFromString(m->payload));
  EXPECT_EQ(error.code(), static_cast<int>(StatusCode::kInvalidArgument));
}

// etcd_debugging_mvcc_keys_total and etcd_mvcc_put/delete/txn_total from what stored applies.
TEST(MetricsOpsTest, KeyCountFollowsCreationsAndDeletions) {
  ipc::testing::ScopedSegment segment("metrics-ops");
  ASSERT_TRUE(segment.ok());
  ipc::MetricsArea& m = segment->metrics();
  std::vector<mvccpb::Event> events(4);
  events[0].set_type(mvccpb::Event::PUT);
  events[0].mutable_kv()->set_version(1);  // created
  events[1].set_type(mvccpb::Event::PUT);
  events[1].mutable_kv()->set_version(1);  // created
  events[2].set_type(mvccpb::Event::PUT);
  events[2].mutable_kv()->set_version(2);  // overwritten: not a new key
  events[3].set_type(mvccpb::Event::DELETE);
  CountKeyChanges(events, m);
  EXPECT_EQ(m.Get(ipc::Metric::kKeysTotal), 1u);
  CountKeyChanges(std::span<const mvccpb::Event>(events.data() + 3, 1), m);
  CountKeyChanges(std::span<const mvccpb::Event>(events.data() + 3, 1), m);
  EXPECT_EQ(m.Get(ipc::Metric::kKeysTotal), 0u);  // never below zero
}

TEST(MetricsOpsTest, MvccOpsCountedByCommandType) {
  ipc::testing::ScopedSegment segment("metrics-ops");
  ASSERT_TRUE(segment.ok());
  ipc::MetricsArea& m = segment->metrics();
  internal::Command put, del, txn, compact;
  put.set_request_id(7);
  put.mutable_put()->set_key("k");
  del.mutable_delete_range()->set_key("k");
  txn.set_origin_member_id(3);
  txn.mutable_txn()->add_success()->mutable_request_put()->set_key("k");
  compact.mutable_compaction()->set_revision(1);
  for (const auto* c : {&put, &put, &del, &txn, &compact}) CountMvccOps(c->SerializeAsString(), m);
  CountMvccOps("\xff\xff garbage", m);  // never a crash
  EXPECT_EQ(m.Get(ipc::Metric::kMvccPut), 2u);
  EXPECT_EQ(m.Get(ipc::Metric::kMvccDelete), 1u);
  EXPECT_EQ(m.Get(ipc::Metric::kMvccTxn), 1u);
}

// The decoder must take exactly what EntryBatch::ParseFromString takes, with the same entries.
void ExpectDecodesAsProtobuf(const std::string& payload, std::vector<internal::Entry>* slots) {
  internal::EntryBatch reference;
  const bool reference_ok = reference.ParseFromString(payload);
  const size_t first = slots->size() / 2;  // slots below `first` must stay untouched
  std::vector<std::string> below;
  for (size_t i = 0; i < first; ++i) below.push_back((*slots)[i].SerializeAsString());
  const std::optional<size_t> n = DecodeEntryBatch(payload, slots, first);
  ASSERT_EQ(n.has_value(), reference_ok) << "payload of " << payload.size() << " bytes";
  for (size_t i = 0; i < first; ++i) ASSERT_EQ((*slots)[i].SerializeAsString(), below[i]);
  if (!n) return;
  ASSERT_EQ(*n, static_cast<size_t>(reference.entries_size()));
  for (size_t i = 0; i < *n; ++i) {
    const internal::Entry& got = (*slots)[first + i];
    const internal::Entry& want = reference.entries(static_cast<int>(i));
    EXPECT_EQ(got.index(), want.index());
    EXPECT_EQ(got.term(), want.term());
    EXPECT_EQ(got.type(), want.type());
    EXPECT_EQ(got.data(), want.data());
  }
}

internal::EntryBatch SampleBatch(uint64_t first_index, int count, size_t value_bytes) {
  internal::EntryBatch batch;
  for (int i = 0; i < count; ++i) {
    internal::Entry* e = batch.add_entries();
    e->set_index(first_index + static_cast<uint64_t>(i));
    e->set_term(3);
    if (i % 5 == 4) {
      e->set_type(internal::Entry::EMPTY);
    } else {
      e->set_data(std::string(value_bytes + static_cast<size_t>(i), static_cast<char>('a' + i)));
    }
  }
  return batch;
}

TEST(EntryBatchDecoderTest, DecodesEntriesIntoReusedSlotsAsProtobufDoes) {
  std::vector<internal::Entry> slots;
  ExpectDecodesAsProtobuf(SampleBatch(10, 7, 100).SerializeAsString(), &slots);
  ASSERT_GE(slots.size(), 7u);
  // A second, smaller batch into the same slots: no stale field of the bigger one remains
  // (an EMPTY entry's type, a longer data string).
  internal::EntryBatch second;
  internal::Entry* e = second.add_entries();
  e->set_index(40);
  e->set_data("x");
  const std::optional<size_t> n = DecodeEntryBatch(second.SerializeAsString(), &slots, 4);
  ASSERT_EQ(n, std::optional<size_t>(1));
  EXPECT_EQ(slots[4].index(), 40u);
  EXPECT_EQ(slots[4].term(), 0u);
  EXPECT_EQ(slots[4].type(), internal::Entry::NORMAL);
  EXPECT_EQ(slots[4].data(), "x");
  ExpectDecodesAsProtobuf("", &slots);  // an empty batch is valid
}

TEST(EntryBatchDecoderTest, RejectsMalformedBatchesAsProtobufDoes) {
  std::vector<internal::Entry> slots(6);
  const std::string good = SampleBatch(1, 4, 20).SerializeAsString();
  // Truncated anywhere; a length running past the end; a bad nested entry; a zero tag;
  // field number 0; a lone end-group; unknown fields (valid); field 1 as a varint (valid,
  // unknown to protobuf).
  for (size_t cut = 0; cut < good.size(); ++cut) {
    ExpectDecodesAsProtobuf(good.substr(0, cut), &slots);
  }
  const std::string cases[] = {
      std::string("\x0a\x7f", 2) + "abc",
      std::string("\x0a\x02\x08", 3),
      std::string("\x0a\x02\x22\x05", 4),
      good + std::string("\x00", 1),
      std::string("\x00", 1) + good,
      std::string("\x02\x00", 2),
      std::string("\x0c", 1),
      good + std::string("\x10\x05\x1a\x01z", 5),
      std::string("\x08\x05", 2) + good,
      std::string("\x0b\x08\x01\x0c", 4) + good,
      std::string("\x0a\xff\xff\xff\xff\x0f", 6),
  };
  for (const std::string& c : cases) ExpectDecodesAsProtobuf(c, &slots);
}

TEST(EntryBatchDecoderTest, RandomGarbageIsAcceptedOnlyWhenProtobufAcceptsIt) {
  std::mt19937 rng(12345);
  const std::string good = SampleBatch(1, 6, 8).SerializeAsString();
  std::vector<internal::Entry> slots;
  int accepted = 0;
  int rejected = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string payload = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      payload[rng() % payload.size()] = static_cast<char>(rng() & 0xff);
    }
    if (round % 3 == 0) payload.resize(rng() % (payload.size() + 1));
    ExpectDecodesAsProtobuf(payload, &slots);
    if (HasFatalFailure()) return;
    internal::EntryBatch reference;
    ++(reference.ParseFromString(payload) ? accepted : rejected);
  }
  // Both outcomes are exercised, not only one.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace rusd::stored
