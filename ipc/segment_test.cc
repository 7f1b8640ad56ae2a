#include "ipc/segment.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstring>
#include <thread>

#include "common/component_flags.h"
#include "ipc/component_context.h"
#include "ipc/heartbeat.h"
#include "ipc/ring.h"
#include "ipc/ring_layout.h"
#include "ipc/test_segment.h"

namespace rusd::ipc {
namespace {

namespace bip = boost::interprocess;
using testing::ScopedSegment;
using testing::UniformLayout;
using testing::UniqueSegmentName;

// Overwrites bytes of a segment through a mapping of its own, as a foreign writer would.
void Scribble(const std::string& name, size_t offset, const void* bytes, size_t n) {
  bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
  bip::mapped_region region(shm, bip::read_write);
  std::memcpy(static_cast<char*>(region.get_address()) + offset, bytes, n);
}

TEST(SegmentTest, OpenSeesWhatCreateAndOthersWrote) {
  ScopedSegment created("open");
  ASSERT_TRUE(created.ok());
  created->component(Component::kRaftd).epoch.store(7);
  created->counter(Counter::kWalFsyncs).fetch_add(3);

  auto opened = Segment::Open(created.name());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ((*opened)->component(Component::kRaftd).epoch.load(), 7u);
  EXPECT_EQ((*opened)->component(Component::kStored).epoch.load(), 0u);
  EXPECT_EQ((*opened)->counter(Counter::kWalFsyncs).load(), 3u);
  // Both mappings see one memory.
  (*opened)->component(Component::kFrontend).heartbeat.store(42);
  EXPECT_EQ(created->component(Component::kFrontend).heartbeat.load(), 42u);
  for (int i = 0; i < kRingCount; ++i) {
    EXPECT_EQ((*opened)->ring(static_cast<RingId>(i)).capacity(), 64u << 10);
  }
}

TEST(SegmentTest, DefaultLayoutFitsDockerShm) {
  ScopedSegment s("default", SegmentLayout{});
  ASSERT_TRUE(s.ok());
  uint64_t total = 0;
  for (uint64_t b : SegmentLayout{}.ring_bytes) total += b;
  EXPECT_LT(total, 60u << 20);
  EXPECT_EQ(s->ring(RingId::kCommitted).capacity(), 8u << 20);
}

TEST(SegmentTest, SharedStructuresAreCacheLineAligned) {
  ScopedSegment s("align");
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < kComponentCount; ++i) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(&s->component(static_cast<Component>(i))) % 64, 0u);
  }
  for (int i = 0; i < kDoorbellCount; ++i) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(&s->doorbell(static_cast<DoorbellId>(i))) % 64, 0u);
  }
  for (int i = 0; i < kRingCount; ++i) {
    Ring& r = s->ring(static_cast<RingId>(i));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(&r) % 4096, 0u);
    EXPECT_NE(reinterpret_cast<uintptr_t>(&r.head) / 64, reinterpret_cast<uintptr_t>(&r.tail) / 64);
  }
}

TEST(SegmentTest, CreateReclaimsStaleSegmentOfSameName) {
  const std::string name = UniqueSegmentName("stale");
  {
    auto first = Segment::Create(name, UniformLayout(4096));
    ASSERT_TRUE(first.ok());
    (*first)->component(Component::kStored).epoch.store(9);
    RingWriter w(**first, RingId::kReads, 9);
    ASSERT_TRUE(w.TryWrite(MessageType::kRangeRead, 1, "left over").ok());
    // Dropped without Remove: a crashed supervisor leaves the segment behind.
  }
  auto second = Segment::Create(name, UniformLayout(8192));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ((*second)->component(Component::kStored).epoch.load(), 0u);
  EXPECT_EQ((*second)->ring(RingId::kReads).capacity(), 8192u);
  RingReader r(**second, RingId::kReads);
  EXPECT_FALSE(r.HasData());
  EXPECT_FALSE(r.TryRead().has_value());
  Segment::Remove(name);
}

TEST(SegmentTest, OpenMissingSegmentIsNotFound) {
  auto s = Segment::Open(UniqueSegmentName("missing"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
}

TEST(SegmentTest, RemoveDeletesTheSegment) {
  const std::string name = UniqueSegmentName("remove");
  ASSERT_TRUE(Segment::Create(name).ok());
  ASSERT_TRUE(Segment::Open(name).ok());
  Segment::Remove(name);
  EXPECT_EQ(Segment::Open(name).status().code(), StatusCode::kNotFound);
  Segment::Remove(name);  // removing twice is harmless
}

TEST(SegmentTest, OpenRejectsBadMagic) {
  ScopedSegment s("magic");
  ASSERT_TRUE(s.ok());
  const uint64_t garbage = 0x1122334455667788ull;
  Scribble(s.name(), 0, &garbage, sizeof garbage);
  auto opened = Segment::Open(s.name());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("magic"), std::string::npos);
}

TEST(SegmentTest, OpenRejectsOtherLayoutVersion) {
  ScopedSegment s("version");
  ASSERT_TRUE(s.ok());
  const uint32_t version = 999;
  Scribble(s.name(), 8, &version, sizeof version);  // right after the 8-byte magic
  auto opened = Segment::Open(s.name());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("version 999"), std::string::npos);
}

TEST(SegmentTest, OpenRejectsForeignObjectTooSmallForHeader) {
  const std::string name = UniqueSegmentName("small");
  {
    bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write);
    shm.truncate(16);
  }
  auto opened = Segment::Open(name);
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  Segment::Remove(name);
}

TEST(SegmentTest, CreateRejectsRingSizeThatIsNotAPowerOfTwo) {
  SegmentLayout layout = UniformLayout(4096);
  layout.ring_bytes[2] = 5000;
  auto s = Segment::Create(UniqueSegmentName("pow2"), layout);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  layout.ring_bytes[2] = 1024;  // below the minimum
  EXPECT_FALSE(Segment::Create(UniqueSegmentName("pow2"), layout).ok());
}

TEST(SegmentTest, NameForDataDirIsStablePerDirectoryAndDistinctAcrossThem) {
  const std::string a = Segment::NameForDataDir("/var/lib/etcd/node1");
  EXPECT_EQ(a.size(), 5u + 16u);
  EXPECT_EQ(a.rfind("rusd-", 0), 0u);
  EXPECT_EQ(a, Segment::NameForDataDir("/var/lib/etcd/node1/"));
  EXPECT_EQ(a, Segment::NameForDataDir("/var/lib/etcd/./x/../node1"));
  EXPECT_NE(a, Segment::NameForDataDir("/var/lib/etcd/node2"));
  // A relative directory names the same segment as its absolute path.
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  EXPECT_EQ(Segment::NameForDataDir("data"), Segment::NameForDataDir(std::string(cwd) + "/data"));
}

TEST(SegmentTest, NamesOfComponentsRingsAndCounters) {
  EXPECT_STREQ(ComponentName(Component::kRaftd), "raftd");
  EXPECT_STREQ(RingName(RingId::kStoreReplies), "store-replies");
  EXPECT_STREQ(CounterName(Counter::kWalFsyncs), "wal_fsyncs");
  EXPECT_EQ(DoorbellOf(RingId::kProposals), DoorbellOf(RingId::kStoreControl));
  EXPECT_EQ(DoorbellOf(RingId::kRaftReplies), DoorbellOf(RingId::kStoreReplies));
  EXPECT_NE(DoorbellOf(RingId::kCommitted), DoorbellOf(RingId::kReads));
}

TEST(HeartbeatThreadTest, BeatsAboutEveryIntervalAndStopsWhenDestroyed) {
  ScopedSegment s("heartbeat");
  ASSERT_TRUE(s.ok());
  auto& beat = s->component(Component::kStored).heartbeat;
  {
    HeartbeatThread hb(*s, Component::kStored, std::chrono::milliseconds(20));
    EXPECT_GE(beat.load(), 1u);  // the first beat comes before the constructor returns
    std::this_thread::sleep_for(std::chrono::milliseconds(210));
  }
  const uint64_t after = beat.load();
  EXPECT_GE(after, 3u);  // ~11 on an idle machine; a loaded one delays some wake-ups
  EXPECT_LE(after, 13u);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(beat.load(), after);
  EXPECT_EQ(s->component(Component::kRaftd).heartbeat.load(), 0u);
}

TEST(ComponentContextTest, OpensSegmentReadsEpochRecordsPidAndBeats) {
  ScopedSegment s("context");
  ASSERT_TRUE(s.ok());
  s->component(Component::kFrontend).epoch.store(4);
  s->component(Component::kStored).epoch.store(11);
  ComponentFlags flags;
  flags.segment = s.name();
  auto ctx = ComponentContext::Start(flags, Component::kFrontend);
  ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
  EXPECT_EQ((*ctx)->epoch(), 4u);
  EXPECT_EQ((*ctx)->PeerEpoch(Component::kStored), 11u);
  EXPECT_EQ(s->component(Component::kFrontend).pid.load(), getpid());
  EXPECT_GE(s->component(Component::kFrontend).heartbeat.load(), 1u);
  // The epoch is read once: a later bump is a peer's view, not ours.
  s->component(Component::kFrontend).epoch.store(5);
  EXPECT_EQ((*ctx)->epoch(), 4u);
}

TEST(ComponentContextTest, FailsClearlyWithoutSegment) {
  ComponentFlags flags;
  EXPECT_EQ(ComponentContext::Start(flags, Component::kRaftd).status().code(),
            StatusCode::kInvalidArgument);
  flags.segment = UniqueSegmentName("nosuch");
  EXPECT_EQ(ComponentContext::Start(flags, Component::kRaftd).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace rusd::ipc
