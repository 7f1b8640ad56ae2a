// The doorbell protocol: consumers sleep on a shared futex and producers wake them only
// when they declared they sleep.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <vector>
#include <thread>

#include "ipc/ring.h"
#include "ipc/test_segment.h"

namespace rusd::ipc {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::ScopedSegment;

constexpr RingId kRing = RingId::kReads;

// Waits (bounded) until the consumer of `d` has declared that it sleeps.
bool AwaitSleeping(Doorbell& d) {
  const auto end = Clock::now() + 5s;
  while (d.sleeping.load() == 0) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(100us);
  }
  // It stores `sleeping` just before futex_wait; give it a moment to enter the kernel.
  std::this_thread::sleep_for(5ms);
  return true;
}

TEST(WakeTest, SleepingConsumerIsWokenPromptlyByOneFutexWake) {
  ScopedSegment s("wake");
  ASSERT_TRUE(s.ok());
  Doorbell& bell = s->doorbell(DoorbellOf(kRing));
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  std::atomic<int64_t> woke_at{0};
  std::thread consumer([&] {
    RingReader* readers[] = {&r};
    WaitForMessages(*s, readers, 10s);
    woke_at = Clock::now().time_since_epoch().count();
  });
  ASSERT_TRUE(AwaitSleeping(bell));
  EXPECT_EQ(woke_at.load(), 0);
  const auto sent = Clock::now();
  ASSERT_TRUE(w.TryWrite(MessageType::kRangeRead, 1, "wake up").ok());
  consumer.join();
  const auto latency = Clock::time_point(Clock::duration(woke_at.load())) - sent;
  EXPECT_LT(latency, 250ms);  // vs. a 10 s timeout; generous for a loaded 2-core CI box
  EXPECT_EQ(bell.wakes.load(), 1u);
  EXPECT_EQ(bell.sleeping.load(), 0u);
  EXPECT_TRUE(r.TryRead().has_value());
}

TEST(WakeTest, WritesWithoutWakeLeaveTheConsumerAsleepUntilOneWakeConsumer) {
  ScopedSegment s("deferwake");
  ASSERT_TRUE(s.ok());
  Doorbell& bell = s->doorbell(DoorbellOf(kRing));
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  std::atomic<bool> woke{false};
  std::thread consumer([&] {
    RingReader* readers[] = {&r};
    WaitForMessages(*s, readers, 10s);
    woke = true;
  });
  ASSERT_TRUE(AwaitSleeping(bell));
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(w.TryWriteWithoutWake(MessageType::kRangeRead, id, "batch").ok());
  }
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(woke.load());
  EXPECT_EQ(bell.wakes.load(), 0u);
  w.WakeConsumer();
  consumer.join();
  EXPECT_EQ(bell.wakes.load(), 1u);
  for (uint64_t id = 1; id <= 3; ++id) {
    auto m = r.TryRead();
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->id, id);
  }
  w.WakeConsumer();  // the consumer is awake now: no futex wake
  EXPECT_EQ(bell.wakes.load(), 1u);
}

TEST(WakeTest, ProducerDoesNotIssueWakesWhileConsumerIsAwake) {
  ScopedSegment s("nowake");
  ASSERT_TRUE(s.ok());
  Doorbell& bell = s->doorbell(DoorbellOf(kRing));
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(w.TryWrite(MessageType::kRangeRead, i, "x").ok());
    ASSERT_TRUE(r.TryRead().has_value());
  }
  EXPECT_EQ(bell.wakes.load(), 0u);
}

TEST(WakeTest, StreamingThroughASleepingConsumerWakesFarLessThanOncePerMessage) {
  ScopedSegment s("fewwakes");
  ASSERT_TRUE(s.ok());
  Doorbell& bell = s->doorbell(DoorbellOf(kRing));
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  constexpr int kCount = 20000;
  std::thread consumer([&] {
    RingReader* readers[] = {&r};
    Message m;
    for (int got = 0; got < kCount;) {
      if (r.TryRead(&m)) {
        ASSERT_EQ(m.id, static_cast<uint64_t>(got));
        ++got;
      } else {
        WaitForMessages(*s, readers, 1s);
      }
    }
  });
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(w.Write(MessageType::kRangeRead, i, "payload of a read", 10s).ok());
    if (i % 1000 == 999) std::this_thread::sleep_for(2ms);  // let the consumer fall asleep
  }
  consumer.join();
  EXPECT_GE(bell.wakes.load(), 1u);
  EXPECT_LT(bell.wakes.load(), static_cast<uint64_t>(kCount / 4));
}

TEST(WakeTest, WaitReturnsAfterTimeoutWhenNothingArrives) {
  ScopedSegment s("timeout");
  ASSERT_TRUE(s.ok());
  RingReader r(*s, kRing);
  RingReader* readers[] = {&r};
  const auto start = Clock::now();
  WaitForMessages(*s, readers, 60ms);
  const auto took = Clock::now() - start;
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 1s);
}

TEST(WakeTest, WaitReturnsAtOnceWhenDataIsAlreadyThere) {
  ScopedSegment s("ready");
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  ASSERT_TRUE(w.TryWrite(MessageType::kRangeRead, 1, "x").ok());
  RingReader* readers[] = {&r};
  const auto start = Clock::now();
  WaitForMessages(*s, readers, 5s);
  EXPECT_LT(Clock::now() - start, 250ms);
}

TEST(WakeTest, OneDoorbellServesSeveralRings) {
  ScopedSegment s("shared");
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(DoorbellOf(RingId::kRaftReplies), DoorbellOf(RingId::kStoreReplies));
  RingWriter w(*s, RingId::kStoreReplies, 1);
  RingReader a(*s, RingId::kRaftReplies);
  RingReader b(*s, RingId::kStoreReplies);
  std::thread consumer([&] {
    RingReader* readers[] = {&a, &b};
    WaitForMessages(*s, readers, 10s);
  });
  ASSERT_TRUE(AwaitSleeping(s->doorbell(DoorbellOf(RingId::kStoreReplies))));
  const auto start = Clock::now();
  ASSERT_TRUE(w.TryWrite(MessageType::kResult, 1, "to the second ring").ok());
  consumer.join();
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_TRUE(b.TryRead().has_value());
}

TEST(WakeTest, EpochBumpAndWakeAllWakesSleepingConsumer) {
  ScopedSegment s("epochwake");
  ASSERT_TRUE(s.ok());
  RingReader r(*s, RingId::kCommitted);
  std::atomic<bool> saw_bump{false};
  std::thread consumer([&] {
    // A stored apply loop: it notices raftd's restart through the epoch, not a frame.
    const uint64_t epoch = s->component(Component::kRaftd).epoch.load();
    RingReader* readers[] = {&r};
    const auto end = Clock::now() + 10s;
    while (Clock::now() < end) {
      if (s->component(Component::kRaftd).epoch.load() != epoch) {
        saw_bump = true;
        return;
      }
      WaitForMessages(*s, readers, 10s);
    }
  });
  ASSERT_TRUE(AwaitSleeping(s->doorbell(DoorbellOf(RingId::kCommitted))));
  const auto start = Clock::now();
  s->component(Component::kRaftd).epoch.fetch_add(1);
  s->WakeAll();
  consumer.join();
  EXPECT_TRUE(saw_bump.load());
  EXPECT_LT(Clock::now() - start, 1s);
}

// The race a futex word alone would lose: the supervisor bumps the epoch and rings after
// the consumer checked the epoch but before it went to sleep.
TEST(WakeTest, WakeAllBetweenEpochCheckAndWaitIsNotMissed) {
  ScopedSegment s("race");
  ASSERT_TRUE(s.ok());
  RingReader r(*s, RingId::kCommitted);
  RingReader* readers[] = {&r};
  WaitForMessages(*s, readers, 1ms);  // a previous round of the loop
  // ... the consumer checks the epoch here and finds nothing new ...
  s->component(Component::kRaftd).epoch.fetch_add(1);
  s->WakeAll();
  const auto start = Clock::now();
  WaitForMessages(*s, readers, 5s);
  EXPECT_LT(Clock::now() - start, 250ms);
  // Rung once, returns once: the next wait sleeps again.
  const auto again = Clock::now();
  WaitForMessages(*s, readers, 50ms);
  EXPECT_GE(Clock::now() - again, 40ms);
}

// A consumer whose core is shared with a busy thread: its yield phase would hand the hog a
// whole time slice (~1 ms or more) while our message waits, since a runnable consumer is not
// woken by the doorbell. After one slow yield WaitForMessages sleeps on the futex instead,
// and the producer's wake-up brings it back within microseconds.
TEST(WakeTest, ConsumerSharingItsCoreWithABusyThreadIsWokenPromptly) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c) {
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  auto pin = [](int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
  };

  ScopedSegment s("wake-hog");
  ASSERT_TRUE(s.ok());
  RingWriter w(*s, kRing, 1);
  RingReader r(*s, kRing);
  constexpr int kRounds = 25;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> waiting_since{0};  // set by the consumer just before each wait
  std::vector<Clock::duration> latencies;
  std::vector<Clock::time_point> sent(kRounds + 1);
  std::thread hog([&] {
    if (!pin(cpus[0])) return;
    while (!stop.load(std::memory_order_relaxed)) {
    }
  });
  std::thread consumer([&] {
    if (!pin(cpus[0])) return;
    RingReader* readers[] = {&r};
    for (int i = 0; i <= kRounds; ++i) {
      waiting_since = Clock::now().time_since_epoch().count();
      std::optional<Message> m;
      while (!(m = r.TryRead())) WaitForMessages(*s, readers, 5s);
      if (i > 0) latencies.push_back(Clock::now() - sent[i]);  // round 0: warm-up
    }
  });
  ASSERT_TRUE(pin(cpus[1]));
  for (int i = 0; i <= kRounds; ++i) {
    // Write 100 µs after the consumer started waiting: past its spin, within a yield.
    const auto deadline = Clock::now() + 5s;
    while (waiting_since.load() == 0 && Clock::now() < deadline) {
    }
    const auto since = Clock::time_point(Clock::duration(waiting_since.exchange(0)));
    while (Clock::now() < since + 100us) {
    }
    sent[i] = Clock::now();
    ASSERT_TRUE(w.TryWrite(MessageType::kRangeRead, i + 1, "ping").ok());
  }
  consumer.join();
  stop = true;
  hog.join();
  ASSERT_EQ(latencies.size(), static_cast<size_t>(kRounds));
  std::sort(latencies.begin(), latencies.end());
  const auto median = latencies[latencies.size() / 2];
  // A yield to the hog costs a time slice (≥ 0.75 ms); a futex wake-up tens of µs.
  EXPECT_LT(median, 400us) << "median wake latency "
                           << std::chrono::duration_cast<std::chrono::microseconds>(median).count()
                           << " µs";
}

}  // namespace
}  // namespace rusd::ipc
