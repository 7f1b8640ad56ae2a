// Two real processes on one segment: ipc_test_peer (ipc/test_peer.cc) produces or consumes
// a numbered stream while this test plays the other side, SIGKILLs the peer mid-stream and
// restarts it. Framing must survive: every message read is intact and in order; at most the
// in-flight ones are lost or repeated, and the receiver deduplicates by id.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipc/ring.h"
#include "ipc/test_payload.h"
#include "ipc/test_segment.h"

extern char** environ;

namespace rusd::ipc {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::CheckPayload;
using testing::ScopedSegment;
using testing::UniformLayout;

constexpr uint64_t kCorrupt = ~0ull;

// A child process, killed and reaped when the test leaves scope early.
class Child {
 public:
  Child(const std::vector<std::string>& args, bool capture_stdout) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(IPC_TEST_PEER_PATH));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    int fds[2] = {-1, -1};
    if (capture_stdout) {
      if (pipe2(fds, O_CLOEXEC) != 0) return;
      posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    }
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    if (capture_stdout) {
      close(fds[1]);
      out_ = fds[0];
    }
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool ok() const { return pid_ > 0; }
  bool Running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  int stdout_fd() const { return out_; }

  void Kill() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // The exit code, or -1 if it did not exit normally within `timeout`.
  int Wait(std::chrono::milliseconds timeout) {
    const auto end = Clock::now() + timeout;
    int status = 0;
    while (Clock::now() < end) {
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(2ms);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

// Collects the ids a consume peer reports until its stdout closes (it exits or is killed).
class IdCollector {
 public:
  explicit IdCollector(int fd)
      : thread_([this, fd] {
          uint64_t id;
          size_t have = 0;
          char* p = reinterpret_cast<char*>(&id);
          for (;;) {
            ssize_t n = read(fd, p + have, sizeof id - have);
            if (n <= 0) return;
            have += static_cast<size_t>(n);
            if (have == sizeof id) {
              ids_.push_back(id);
              count_.store(ids_.size());
              have = 0;
            }
          }
        }) {}
  ~IdCollector() {
    if (thread_.joinable()) thread_.join();
  }
  size_t count() const { return count_.load(); }
  // Call after the peer is gone.
  std::vector<uint64_t> Finish() {
    thread_.join();
    return std::move(ids_);
  }

 private:
  std::vector<uint64_t> ids_;
  std::atomic<size_t> count_{0};
  std::thread thread_;
};

bool WaitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(200us);
  }
  return true;
}

TEST(ProcessTest, ConsumerKilledAndRestartedMidStreamLosesAtMostItsInFlightMessages) {
  ScopedSegment s("killconsumer", UniformLayout(64 << 10));
  ASSERT_TRUE(s.ok());
  constexpr uint64_t kLast = 30000;
  constexpr uint64_t kBigEvery = 40;
  constexpr uint64_t kBig = 150 << 10;  // chunked: more than twice the ring
  const std::vector<std::string> stream = {std::to_string(kBigEvery), std::to_string(kBig)};
  s->component(Component::kRaftd).epoch.store(1);
  Child producer({"produce", s.name(), "1", std::to_string(kLast), stream[0], stream[1]}, false);
  ASSERT_TRUE(producer.ok());

  std::mt19937 rng(7);
  std::vector<std::vector<uint64_t>> runs;
  constexpr int kKills = 3;
  for (int round = 0; round <= kKills; ++round) {
    Child consumer({"consume", s.name(), std::to_string(kLast), stream[0], stream[1]}, true);
    ASSERT_TRUE(consumer.ok());
    IdCollector ids(consumer.stdout_fd());
    if (round < kKills) {
      const size_t target = 1000 + rng() % 3000;
      ASSERT_TRUE(WaitUntil([&] { return ids.count() >= target; }, 30s));
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
      ASSERT_TRUE(producer.Running()) << "the kill must land mid-stream";
      consumer.Kill();
    } else {
      ASSERT_EQ(consumer.Wait(60s), 0);
    }
    runs.push_back(ids.Finish());
  }
  ASSERT_EQ(producer.Wait(10s), 0);

  ASSERT_EQ(runs.front().front(), 1u);
  EXPECT_EQ(runs.back().back(), kLast);
  uint64_t lost = 0;
  for (size_t k = 0; k < runs.size(); ++k) {
    const auto& run = runs[k];
    ASSERT_FALSE(run.empty());
    for (size_t i = 0; i < run.size(); ++i) {
      ASSERT_NE(run[i], kCorrupt) << "a consumer read a damaged message";
      if (i > 0) {
        ASSERT_EQ(run[i], run[i - 1] + 1) << "gap or reorder inside one consumer's life";
      }
    }
    if (k > 0) {
      const uint64_t prev = runs[k - 1].back();
      // In flight at the kill: one message read but not reported, one half reassembled.
      ASSERT_GT(run.front(), prev);
      ASSERT_LE(run.front(), prev + 3);
      lost += run.front() - prev - 1;
    }
  }
  RecordProperty("messages_lost_to_kills", static_cast<int>(lost));
}

TEST(ProcessTest, ProducerKilledAndRestartedMidStreamNeverYieldsDamagedMessages) {
  ScopedSegment s("killproducer", UniformLayout(64 << 10));
  ASSERT_TRUE(s.ok());
  constexpr uint64_t kBigEvery = 3;
  constexpr uint64_t kBig = 100 << 10;  // most kills land in the middle of a chunked message
  const std::string big_every = std::to_string(kBigEvery);
  const std::string big = std::to_string(kBig);
  RingReader r(*s, RingId::kCommitted);
  RingReader* readers[] = {&r};
  std::mt19937 rng(11);
  uint64_t delivered = 0;  // the highest id handed to "the application"
  uint64_t duplicates = 0;
  uint64_t last_epoch = 0;
  Message m;
  auto read_until = [&](uint64_t target) {
    const auto end = Clock::now() + 60s;
    while (delivered < target) {
      ASSERT_LT(Clock::now(), end) << "stream stalled at " << delivered;
      if (!r.TryRead(&m)) {
        WaitForMessages(*s, readers, 100ms);
        continue;
      }
      ASSERT_TRUE(CheckPayload(m.id, kBigEvery, kBig, m.payload)) << "damaged message " << m.id;
      ASSERT_GE(m.sender_epoch, last_epoch);
      last_epoch = m.sender_epoch;
      if (m.id <= delivered) {  // re-sent by the restarted producer: dedup by id
        ++duplicates;
        continue;
      }
      ASSERT_EQ(m.id, delivered + 1) << "gap in the stream";
      delivered = m.id;
    }
  };

  constexpr int kKills = 3;
  for (int round = 0; round <= kKills; ++round) {
    // The supervisor's part: bump the epoch before (re)spawning, wake the peers after.
    s->component(Component::kRaftd).epoch.fetch_add(1);
    s->WakeAll();
    // The protocol's part: the restarted producer re-sends from before what was delivered.
    const uint64_t resume = delivered > 2 ? delivered - 2 : 1;
    const uint64_t count = round < kKills ? 0 : 3000;  // 0: until killed
    Child producer({"produce", s.name(), std::to_string(resume), std::to_string(count),
                    big_every, big},
                   false);
    ASSERT_TRUE(producer.ok());
    if (round < kKills) {
      read_until(delivered + 500 + rng() % 1500);
      if (HasFatalFailure()) return;
      producer.Kill();
    } else {
      read_until(resume + count - 1);
      if (HasFatalFailure()) return;
      EXPECT_EQ(producer.Wait(10s), 0);
    }
  }
  EXPECT_GT(duplicates, 0u);
  EXPECT_EQ(r.corrupt_resyncs(), 0u);
  RecordProperty("partial_chunks_dropped", static_cast<int>(r.dropped_chunks()));
}

TEST(ProcessTest, EpochBumpAndWakeAllWakeAConsumerAsleepInAnotherProcess) {
  ScopedSegment s("sleeper");
  ASSERT_TRUE(s.ok());
  Doorbell& bell = s->doorbell(DoorbellOf(RingId::kCommitted));
  Child sleeper({"sleep-until-epoch", s.name()}, false);
  ASSERT_TRUE(sleeper.ok());
  ASSERT_TRUE(WaitUntil([&] { return bell.sleeping.load() == 1; }, 10s));
  std::this_thread::sleep_for(20ms);  // let it enter futex_wait
  ASSERT_TRUE(sleeper.Running());
  const auto start = Clock::now();
  s->component(Component::kRaftd).epoch.fetch_add(1);
  s->WakeAll();
  EXPECT_EQ(sleeper.Wait(5s), 0);
  EXPECT_LT(Clock::now() - start, 1s);
}

}  // namespace
}  // namespace rusd::ipc
