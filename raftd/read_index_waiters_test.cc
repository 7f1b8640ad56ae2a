#include "raftd/read_index_waiters.h"

#include <gtest/gtest.h>

namespace rusd::raftd {
namespace {

using namespace std::chrono_literals;
using Clock = ReadIndexWaiters::Clock;

TEST(ReadIndexWaiters, AnswersOnceAndRetriesThenExpiresTheUnanswered) {
  ReadIndexWaiters w({/*retry_after=*/500ms, /*give_up_after=*/7000ms});
  const Clock::time_point t0 = Clock::now();
  w.Add(1, t0);
  w.Add(2, t0);
  w.Add(3, t0 + 1000ms);
  EXPECT_EQ(w.size(), 3u);
  EXPECT_TRUE(w.Answer(1));
  EXPECT_FALSE(w.Answer(1)) << "a second answer (a read asked twice) is a repeat";

  ReadIndexWaiters::Due d = w.Poll(t0 + 400ms);
  EXPECT_TRUE(d.retry.empty());
  EXPECT_TRUE(d.expired.empty());
  d = w.Poll(t0 + 500ms);
  EXPECT_EQ(d.retry, std::vector<uint64_t>{2});
  d = w.Poll(t0 + 700ms);
  EXPECT_TRUE(d.retry.empty()) << "asked again at 500 ms: next at 1000 ms";
  d = w.Poll(t0 + 1500ms);
  EXPECT_EQ(d.retry.size(), 2u);  // 2 (again) and 3

  d = w.Poll(t0 + 7000ms);
  EXPECT_EQ(d.expired, std::vector<uint64_t>{2});
  EXPECT_EQ(w.size(), 1u) << "the expired request is gone: no leak";
  EXPECT_FALSE(w.Answer(2)) << "a late answer after expiry is dropped";
  d = w.Poll(t0 + 8000ms);
  EXPECT_EQ(d.expired, std::vector<uint64_t>{3});
  EXPECT_TRUE(w.empty());
}

TEST(ReadIndexWaiters, TakeAllEmptiesTheTable) {
  ReadIndexWaiters w({});
  w.Add(5, Clock::now());
  w.Add(6, Clock::now());
  std::vector<uint64_t> all = w.TakeAll();
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<uint64_t>{5, 6}));
  EXPECT_TRUE(w.empty());
  EXPECT_FALSE(w.Answer(5));
}

}  // namespace
}  // namespace rusd::raftd
