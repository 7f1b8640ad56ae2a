#include "ipc/ring.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "ipc/ring_layout.h"
#include "ipc/test_payload.h"
#include "ipc/test_segment.h"

namespace rusd::ipc {
namespace {

using namespace std::chrono_literals;
using testing::CheckPayload;
using testing::MakePayload;
using testing::ScopedSegment;
using testing::UniformLayout;

constexpr RingId kRing = RingId::kCommitted;

// Writes a raw frame at the ring's head, as a producer that dies before finishing a
// message (or a buggy one) would leave it.
void WriteRawFrame(Ring& ring, uint16_t flags, uint64_t id, uint64_t epoch,
                   const std::string& payload) {
  const uint64_t head = ring.head.load();
  FrameHeader h{static_cast<uint32_t>(payload.size()), static_cast<uint16_t>(MessageType::kPropose),
                static_cast<uint16_t>(kFrameMarker | flags), id, epoch};
  char* p = ring.data() + (head & (ring.capacity() - 1));
  ASSERT_LE((head & (ring.capacity() - 1)) + FrameBytes(payload.size()), ring.capacity());
  std::memcpy(p, &h, sizeof h);
  std::memcpy(p + sizeof h, payload.data(), payload.size());
  ring.head.store(head + FrameBytes(payload.size()));
}

std::string Total(uint64_t total) { return std::string(reinterpret_cast<char*>(&total), 8); }

TEST(RingTest, MessageRoundTripsWithTypeIdEpochAndPayload) {
  ScopedSegment s("roundtrip");
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 17);
  RingReader r(*s, kRing);
  EXPECT_FALSE(r.HasData());
  ASSERT_TRUE(w.TryWrite(MessageType::kCommittedEntries, 1234, "hello").ok());
  ASSERT_TRUE(w.TryWrite(MessageType::kLeaderInfo, 0, "").ok());
  EXPECT_TRUE(r.HasData());
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type, MessageType::kCommittedEntries);
  EXPECT_EQ(m->id, 1234u);
  EXPECT_EQ(m->sender_epoch, 17u);
  EXPECT_EQ(m->payload, "hello");
  m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type, MessageType::kLeaderInfo);
  EXPECT_EQ(m->payload, "");
  EXPECT_FALSE(r.TryRead().has_value());
  EXPECT_FALSE(r.HasData());
}

TEST(RingTest, FramesAreEightByteAlignedAndHeadTailAdvanceByWholeFrames) {
  ScopedSegment s("align");
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 1, "abc").ok());
  EXPECT_EQ(ring.head.load(), sizeof(FrameHeader) + 8);
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 2, std::string(16, 'x')).ok());
  EXPECT_EQ(ring.head.load(), 2 * sizeof(FrameHeader) + 8 + 16);
  ASSERT_TRUE(r.TryRead().has_value());
  EXPECT_EQ(ring.tail.load(), sizeof(FrameHeader) + 8);
}

TEST(RingTest, ReaderReusesCallerBuffer) {
  ScopedSegment s("reuse");
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  Message m;
  m.payload.reserve(4096);
  const char* buffer = m.payload.data();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(w.TryWrite(MessageType::kPropose, i, std::string(1 + i * 10, 'a' + i % 26)).ok());
    ASSERT_TRUE(r.TryRead(&m));
    EXPECT_EQ(m.id, static_cast<uint64_t>(i));
    EXPECT_EQ(m.payload, std::string(1 + i * 10, 'a' + i % 26));
    EXPECT_EQ(m.payload.data(), buffer);
  }
}

TEST(RingTest, PeekHandsOutAViewIntoTheRingUntilConsume) {
  ScopedSegment s("peek", UniformLayout(4096));
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingWriter w(*s, kRing, 4);
  RingReader r(*s, kRing);
  MessageView v;
  EXPECT_FALSE(r.Peek(&v));
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 1, "in place").ok());
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 2, "second").ok());
  ASSERT_TRUE(r.Peek(&v));
  EXPECT_EQ(v.id, 1u);
  EXPECT_EQ(v.sender_epoch, 4u);
  EXPECT_EQ(v.payload, "in place");
  EXPECT_GE(v.payload.data(), ring.data());  // zero copy: the bytes are still in the ring
  EXPECT_LT(v.payload.data(), ring.data() + ring.capacity());
  EXPECT_EQ(ring.tail.load(), 0u);
  MessageView again;
  ASSERT_TRUE(r.Peek(&again));
  EXPECT_EQ(again.payload.data(), v.payload.data());
  // While peeked, the producer cannot reuse the frame's space.
  while (w.TryWrite(MessageType::kPropose, 3, std::string(200, 'f')).ok()) {
  }
  EXPECT_EQ(v.payload, "in place");
  r.Consume();
  EXPECT_GT(ring.tail.load(), 0u);
  ASSERT_TRUE(r.Peek(&v));
  EXPECT_EQ(v.id, 2u);
  r.Consume();
  r.Consume();  // nothing peeked: no effect
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 3u);
}

TEST(RingTest, PeekOfChunkedMessageViewsTheReassembledBuffer) {
  ScopedSegment s("peekchunk", UniformLayout(4096));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  std::string big;
  MakePayload(5, 1, 2500, &big);
  ASSERT_TRUE(w.TryWrite(MessageType::kResult, 5, big).ok());
  ASSERT_TRUE(w.TryWrite(MessageType::kResult, 6, "small").ok());
  MessageView v;
  ASSERT_TRUE(r.Peek(&v));
  EXPECT_EQ(v.id, 5u);
  EXPECT_TRUE(CheckPayload(5, 1, 2500, v.payload));
  EXPECT_TRUE(r.HasData());
  r.Consume();
  Message m;
  ASSERT_TRUE(r.TryRead(&m));
  EXPECT_EQ(m.payload, "small");
  EXPECT_FALSE(r.HasData());
}

TEST(RingTest, StreamOfChunkedMessagesReusesReassemblyBuffers) {
  ScopedSegment s("reusechunks", UniformLayout(16 << 10));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  std::set<const char*> buffers;
  Message m;
  std::string p;
  for (uint64_t id = 0; id < 50; ++id) {
    MakePayload(id, 1, 10000, &p);  // ~2.5 frames each
    ASSERT_TRUE(w.TryWrite(MessageType::kResult, id, p).ok());
    ASSERT_TRUE(r.TryRead(&m));
    ASSERT_TRUE(CheckPayload(id, 1, 10000, m.payload));
    if (id >= 2) buffers.insert(m.payload.data());
  }
  EXPECT_LE(buffers.size(), 2u);  // the caller's buffer and the reader's spare alternate
}

// Sizes chosen at random make the producer meet the end of the data area at every possible
// distance: with room for a skip frame, with less than a header (implicit skip), exactly.
TEST(RingTest, WrapsAroundManyTimesWithBoundariesIntact) {
  ScopedSegment s("wrap", UniformLayout(4096));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  std::mt19937_64 rng(42);
  std::string payload;
  Message m;
  uint64_t next_read = 0;
  uint64_t next_write = 0;
  while (next_read < 50000) {
    // Write a burst until the ring refuses, then drain part of it.
    for (;;) {
      payload.assign(rng() % 1001, static_cast<char>('a' + next_write % 26));
      if (!payload.empty()) payload[0] = static_cast<char>(next_write);
      Status st = w.TryWrite(MessageType::kPropose, next_write, payload);
      if (!st.ok()) {
        ASSERT_EQ(st.code(), StatusCode::kResourceExhausted);
        break;
      }
      ++next_write;
    }
    const uint64_t drain = 1 + rng() % 4;
    for (uint64_t i = 0; i < drain && next_read < next_write; ++i) {
      ASSERT_TRUE(r.TryRead(&m));
      ASSERT_EQ(m.id, next_read);
      if (!m.payload.empty()) {
        ASSERT_EQ(m.payload[0], static_cast<char>(next_read));
      }
      if (m.payload.size() > 1) {
        ASSERT_EQ(m.payload.back(), static_cast<char>('a' + next_read % 26)) << next_read;
      }
      ++next_read;
    }
  }
  EXPECT_GT(s->ring(kRing).head.load(), 1000u * 4096u);  // wrapped more than a thousand times
  EXPECT_EQ(r.corrupt_resyncs(), 0u);
}

TEST(RingTest, ImplicitSkipWhenLessThanAHeaderRemainsBeforeTheEnd) {
  ScopedSegment s("implicit", UniformLayout(4096));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  // 3 frames of 1024 bytes and one of 1008: head stops 16 bytes before the end.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(w.TryWrite(MessageType::kPropose, i, std::string(1000, 'x')).ok());
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 3, std::string(984, 'y')).ok());
  EXPECT_EQ(s->ring(kRing).head.load(), 4096u - 16);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(r.TryRead().has_value());
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 4, "after the wrap").ok());
  EXPECT_EQ(s->ring(kRing).head.load(), 4096u + sizeof(FrameHeader) + 16);
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 4u);
  EXPECT_EQ(m->payload, "after the wrap");
}

TEST(RingTest, TryWriteOnFullRingFailsWithoutWritingAnything) {
  ScopedSegment s("full", UniformLayout(4096));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  int written = 0;
  while (w.TryWrite(MessageType::kPropose, written, std::string(100, 'z')).ok()) ++written;
  EXPECT_EQ(written, 4096 / (24 + 104));
  const uint64_t head = s->ring(kRing).head.load();
  Status st = w.TryWrite(MessageType::kPropose, 999, "x");
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  // A chunked message larger than the free space: all or nothing.
  ASSERT_TRUE(r.TryRead().has_value());
  ASSERT_TRUE(r.TryRead().has_value());
  EXPECT_EQ(w.TryWrite(MessageType::kPropose, 1000, std::string(3000, 'q')).code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(s->ring(kRing).head.load(), head);
  int read = 2;
  while (auto m = r.TryRead()) {
    EXPECT_EQ(m->payload, std::string(100, 'z'));
    ++read;
  }
  EXPECT_EQ(read, written);
  // Empty now: the same chunked message goes through whole.
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 1000, std::string(3000, 'q')).ok());
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, std::string(3000, 'q'));
}

TEST(RingTest, TryWriteRejectsMessageAboveTheLimit) {
  ScopedSegment s("limit", UniformLayout(4096));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  std::string_view huge(nullptr, RingWriter::kMaxMessageBytes + 1);
  EXPECT_EQ(w.TryWrite(MessageType::kPropose, 1, huge).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.Write(MessageType::kPropose, 1, huge, 10ms).code(), StatusCode::kInvalidArgument);
}

// 100 MB through a 1 MB ring: the writer streams chunks while the reader drains them.
TEST(RingTest, ChunksMessageHundredTimesTheRingSize) {
  ScopedSegment s("chunk100", UniformLayout(1 << 20));
  ASSERT_TRUE(s.ok());
  const uint64_t size = 100ull << 20;
  std::string big;
  MakePayload(7, 1, size, &big);
  RingWriter w(*s, kRing, 3);
  RingReader r(*s, kRing);
  std::thread producer([&] {
    EXPECT_TRUE(w.Write(MessageType::kResult, 7, big, 30s).ok());
    EXPECT_TRUE(w.Write(MessageType::kResult, 8, "small after big", 30s).ok());
  });
  Message m;
  RingReader* readers[] = {&r};
  while (!r.TryRead(&m)) WaitForMessages(*s, readers, 100ms);
  EXPECT_EQ(m.id, 7u);
  EXPECT_EQ(m.type, MessageType::kResult);
  EXPECT_EQ(m.payload.size(), big.size());
  EXPECT_TRUE(CheckPayload(7, 1, size, m.payload));
  while (!r.TryRead(&m)) WaitForMessages(*s, readers, 100ms);
  EXPECT_EQ(m.id, 8u);
  EXPECT_EQ(m.payload, "small after big");
  producer.join();
  EXPECT_EQ(r.dropped_chunks(), 0u);
}

TEST(RingTest, TwoWriterThreadsInterleaveChunksAndEveryMessageArrivesIntact) {
  ScopedSegment s("interleave", UniformLayout(64 << 10));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 5);
  RingReader r(*s, kRing);
  constexpr uint64_t kPerThread = 300;
  constexpr uint64_t kBigEvery = 3;
  constexpr uint64_t kBig = 150 << 10;  // ~2.3 rings: many chunks each
  auto produce = [&](uint64_t parity) {
    std::string p;
    for (uint64_t i = 0; i < kPerThread; ++i) {
      const uint64_t id = 2 * i + parity;
      MakePayload(id, kBigEvery, kBig, &p);
      ASSERT_TRUE(w.Write(MessageType::kResult, id, p, 30s).ok());
    }
  };
  std::thread a(produce, 0);
  std::thread b(produce, 1);
  uint64_t next[2] = {0, 1};
  uint64_t received = 0;
  Message m;
  RingReader* readers[] = {&r};
  while (received < 2 * kPerThread) {
    if (!r.TryRead(&m)) {
      WaitForMessages(*s, readers, 100ms);
      continue;
    }
    ASSERT_EQ(m.id, next[m.id % 2]) << "each writer's messages arrive in its order";
    ASSERT_TRUE(CheckPayload(m.id, kBigEvery, kBig, m.payload)) << m.id;
    next[m.id % 2] += 2;
    ++received;
  }
  a.join();
  b.join();
  EXPECT_EQ(r.dropped_chunks(), 0u);
  EXPECT_EQ(r.corrupt_resyncs(), 0u);
}

TEST(RingTest, WriteTimesOutWhenNobodyDrainsAndAbortsItsPartialMessage) {
  ScopedSegment s("timeout", UniformLayout(4096));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  const auto start = std::chrono::steady_clock::now();
  Status st = w.Write(MessageType::kResult, 1, std::string(10000, 'p'), 50ms);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded);
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 2s);
  // The reader gets the chunks that made it but never delivers the partial message; the
  // abort frame (queued while the ring was full) goes out with the next write.
  RingReader r(*s, kRing);
  EXPECT_FALSE(r.TryRead().has_value());
  ASSERT_TRUE(w.Write(MessageType::kResult, 2, "next", 1s).ok());
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 2u);
  EXPECT_EQ(m->payload, "next");
  EXPECT_GE(r.dropped_chunks(), 1u);  // the aborted partial
  EXPECT_FALSE(r.TryRead().has_value());
}

// TryWriteChunks streams a message many times the ring's size without ever waiting: each
// call writes what fits and returns; the reader, draining in between, gets it whole. A
// message cancelled half-way with AbortChunks is never delivered.
TEST(RingTest, TryWriteChunksNeverWaitsAndDeliversOrAbortsWholeMessages) {
  ScopedSegment s("trychunks", UniformLayout(16 << 10));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  const uint64_t size = 1536 << 10;  // 96 rings
  std::string big;
  MakePayload(9, 1, size, &big);
  uint64_t offset = 0;
  int calls = 0;
  Message m;
  bool got = false;
  auto slowest = std::chrono::steady_clock::duration::zero();
  for (;;) {
    const auto start = std::chrono::steady_clock::now();
    Result<bool> done = w.TryWriteChunks(MessageType::kResult, 9, big, &offset);
    slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
    ASSERT_TRUE(done.ok());
    ++calls;
    if (calls == 1) {
      // Nobody drained yet: the first call fills the ring and returns; so does the next.
      EXPECT_FALSE(*done);
      EXPECT_GT(offset, 0u);
      const uint64_t before = offset;
      ASSERT_TRUE(w.TryWriteChunks(MessageType::kResult, 9, big, &offset).ok());
      EXPECT_EQ(offset, before) << "no room, no progress, no waiting";
    }
    if (*done) break;
    // Other messages may go between the chunks (when there is room).
    (void)w.TryWrite(MessageType::kResult, 1000 + calls, "between");
    while (r.TryRead(&m)) {
      ASSERT_NE(m.id, 9u) << "delivered before its last chunk";
    }
  }
  while (r.TryRead(&m)) {
    if (m.id == 9) {
      got = true;
      EXPECT_TRUE(CheckPayload(9, 1, size, m.payload));
    }
  }
  EXPECT_TRUE(got);
  EXPECT_GT(calls, 50);
  EXPECT_LT(slowest, 100ms) << "a call never waits for the reader";

  // Begun, then cancelled: the reader drops the partial message and reads on.
  offset = 0;
  ASSERT_TRUE(w.TryWriteChunks(MessageType::kResult, 10, big, &offset).ok());
  EXPECT_GT(offset, 0u);
  while (r.TryRead(&m)) ADD_FAILURE() << "partial message delivered";
  w.AbortChunks(10);
  uint64_t small_offset = 0;
  Result<bool> small = w.TryWriteChunks(MessageType::kResult, 11, "after the abort", &small_offset);
  ASSERT_TRUE(small.ok());
  EXPECT_TRUE(*small);
  ASSERT_TRUE(r.TryRead(&m));
  EXPECT_EQ(m.id, 11u);
  EXPECT_EQ(m.payload, "after the abort");
  EXPECT_GE(r.dropped_chunks(), 1u);
}

TEST(RingTest, ReaderStartingMidMessageDropsOrphanChunks) {
  ScopedSegment s("orphan", UniformLayout(16 << 10));
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingWriter w(*s, kRing, 1);
  ASSERT_TRUE(w.TryWrite(MessageType::kResult, 1, std::string(9000, 'c')).ok());  // 3 chunks
  ASSERT_TRUE(w.TryWrite(MessageType::kResult, 2, "whole").ok());
  // A previous consumer consumed the first chunk and died.
  FrameHeader first;
  std::memcpy(&first, ring.data(), sizeof first);
  ASSERT_EQ(first.flags & (kFirst | kLast), kFirst);
  ring.tail.store(FrameBytes(first.length));
  RingReader r(*s, kRing);
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 2u);
  EXPECT_EQ(r.dropped_chunks(), 2u);
  EXPECT_EQ(r.corrupt_resyncs(), 0u);
}

TEST(RingTest, NewerSenderEpochDropsPartialOfOlderEpoch) {
  ScopedSegment s("epoch");
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingReader r(*s, kRing);
  // The epoch-1 producer died after the first chunk of message 7.
  WriteRawFrame(ring, kFirst, 7, 1, Total(100) + std::string(40, 'o'));
  EXPECT_FALSE(r.TryRead().has_value());
  // Its successor (epoch 2) sends message 8 and, as a test of the drop, a stray last chunk
  // of epoch 1 for message 7 (which must not complete the old partial).
  RingWriter w(*s, kRing, 2);
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 8, "new").ok());
  WriteRawFrame(ring, kLast, 7, 1, std::string(60, 'o'));
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 8u);
  EXPECT_FALSE(r.TryRead().has_value());
  EXPECT_EQ(r.dropped_chunks(), 2u);
}

TEST(RingTest, CorruptMarkerMakesReaderDiscardAndResume) {
  ScopedSegment s("corrupt");
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 1, "one").ok());
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 2, "two").ok());
  std::memset(ring.data(), 0x5c, 8);  // stray write over the first header
  EXPECT_FALSE(r.TryRead().has_value());
  EXPECT_EQ(r.corrupt_resyncs(), 1u);
  EXPECT_EQ(ring.tail.load(), ring.head.load());
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 3, "three").ok());
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, "three");
}

TEST(RingTest, CorruptLengthBeyondPublishedBytesIsDetected) {
  ScopedSegment s("badlen");
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 1, "one").ok());
  const uint32_t length = 5000;  // more than was published
  std::memcpy(ring.data(), &length, sizeof length);
  EXPECT_FALSE(r.TryRead().has_value());
  EXPECT_EQ(r.corrupt_resyncs(), 1u);
}

// In a death-test child: limits the address space to 256 MiB more than in use, then reads
// first chunks that each announce a 1 GiB message. Exits 0 if no read threw or crashed.
void ReadHugeTotalsUnderAMemoryLimit(Ring& ring, RingReader& r) {
  long pages = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  const rlim_t limit = static_cast<rlim_t>(pages) * sysconf(_SC_PAGESIZE) + (256u << 20);
  struct rlimit rl {};
  rl.rlim_cur = limit;
  rl.rlim_max = limit;
  if (pages == 0 || setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
  for (uint64_t id = 1; id <= 8; ++id) {
    WriteRawFrame(ring, kFirst, id, 1, Total(RingWriter::kMaxMessageBytes) + std::string(1000, 'x'));
    if (r.TryRead().has_value()) _exit(4);
  }
  _exit(r.corrupt_resyncs() == 0 ? 0 : 5);
}

// A first chunk may announce up to kMaxMessageBytes (1 GiB); the reader must not take
// that figure from shared memory on trust and reserve it: under an address-space limit far
// below 1 GiB, reading such a chunk (and a stream of them) must neither throw nor crash.
TEST(RingTest, AnnouncedTotalDoesNotReserveMemoryAheadOfTheData) {
  ScopedSegment s("hugetotal");
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingReader r(*s, kRing);
  EXPECT_EXIT(ReadHugeTotalsUnderAMemoryLimit(ring, r), ::testing::ExitedWithCode(0), "");
}

// A frame longer than any writer makes (a quarter of the ring) is a damaged header even
// when that many bytes were published after it.
TEST(RingTest, FrameLongerThanTheLargestFrameIsCorruption) {
  ScopedSegment s("toolong");
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingReader r(*s, kRing);
  const uint64_t too_long = MaxFramePayload(ring.capacity()) + 8;
  WriteRawFrame(ring, kFirst | kLast, 1, 1, std::string(too_long, 'l'));
  EXPECT_FALSE(r.TryRead().has_value());
  EXPECT_EQ(r.corrupt_resyncs(), 1u);
  EXPECT_EQ(ring.tail.load(), ring.head.load());
}

// A skip frame fills exactly the rest of the data area; one that ends elsewhere would put
// the reader in the middle of the next frame.
TEST(RingTest, SkipFrameNotEndingAtTheRingEndIsCorruption) {
  ScopedSegment s("badskip");
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingReader r(*s, kRing);
  WriteRawFrame(ring, kSkip, 0, 1, std::string(64, '\0'));
  RingWriter w(*s, kRing, 1);  // starts at the head, after the raw frame
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 2, "after").ok());
  EXPECT_FALSE(r.TryRead().has_value());
  EXPECT_EQ(r.corrupt_resyncs(), 1u);
}

TEST(RingTest, HeadMoreThanARingAheadOfTailIsDetected) {
  ScopedSegment s("badhead", UniformLayout(4096));
  ASSERT_TRUE(s.ok());
  RingReader r(*s, kRing);
  s->ring(kRing).head.store(3 * 4096);  // a stray write over the control block
  EXPECT_FALSE(r.TryRead().has_value());
  EXPECT_EQ(r.corrupt_resyncs(), 1u);
  EXPECT_EQ(s->ring(kRing).tail.load(), 3u * 4096);
  // The producer continues from the head it finds; the reader follows.
  RingWriter w(*s, kRing, 1);
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 1, "resumed").ok());
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, "resumed");
}

TEST(RingTest, ChunksDisagreeingWithAnnouncedTotalAreNotDelivered) {
  ScopedSegment s("badtotal");
  ASSERT_TRUE(s.ok());
  Ring& ring = s->ring(kRing);
  RingReader r(*s, kRing);
  WriteRawFrame(ring, kFirst, 7, 1, Total(50) + std::string(40, 'o'));
  WriteRawFrame(ring, kLast, 7, 1, std::string(40, 'o'));  // 80 bytes, 50 announced
  EXPECT_FALSE(r.TryRead().has_value());
  EXPECT_EQ(r.corrupt_resyncs(), 1u);
  WriteRawFrame(ring, kFirst, 8, 1, Total(uint64_t{1} << 40));  // absurd total
  EXPECT_FALSE(r.TryRead().has_value());
  EXPECT_EQ(r.corrupt_resyncs(), 2u);
}

TEST(RingTest, SkipToHeadDropsBacklogAndReportsFreeSpace) {
  ScopedSegment s("skip", UniformLayout(4096));
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  EXPECT_EQ(w.capacity(), 4096u);
  EXPECT_EQ(w.FreeBytes(), 4096u);
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 1, "old").ok());
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 2, std::string(2500, 'c')).ok());  // chunked
  EXPECT_EQ(w.FreeBytes(), 4096u - 32 - (24 + 1000) - (24 + 1000) - (24 + 512));
  RingReader r(*s, kRing);
  MessageView v;
  ASSERT_TRUE(r.Peek(&v));
  r.SkipToHead();
  EXPECT_FALSE(r.HasData());
  EXPECT_EQ(w.FreeBytes(), 4096u);
  ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 3, "new").ok());
  auto m = r.TryRead();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, 3u);
}

TEST(RingTest, RestartedProducerContinuesAfterLastPublishedFrame) {
  ScopedSegment s("restart");
  ASSERT_TRUE(s.ok());
  RingReader r(*s, kRing);
  {
    RingWriter w(*s, kRing, 1);
    ASSERT_TRUE(w.TryWrite(MessageType::kPropose, 1, "from epoch 1").ok());
  }
  RingWriter w2(*s, kRing, 2);
  ASSERT_TRUE(w2.TryWrite(MessageType::kPropose, 2, "from epoch 2").ok());
  auto a = r.TryRead();
  auto b = r.TryRead();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->sender_epoch, 1u);
  EXPECT_EQ(b->sender_epoch, 2u);
  EXPECT_EQ(b->payload, "from epoch 2");
}

}  // namespace
}  // namespace rusd::ipc
