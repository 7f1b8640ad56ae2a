#include "ipc/request_trailer.h"

#include <gtest/gtest.h>
#include <time.h>

namespace rusd::ipc {
namespace {

using namespace std::chrono_literals;

TEST(RequestTrailer, RoundTripsTheDeadlineAndLeavesTheRequestUnchanged) {
  const RequestClock::time_point deadline = RequestClock::now() + 7s;
  std::string payload = "command bytes";
  AppendRequestTrailer(&payload, deadline);
  EXPECT_EQ(payload.size(), 13 + kRequestTrailerBytes);
  std::optional<RequestClock::time_point> got = StripRequestTrailer(&payload);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, std::chrono::time_point_cast<std::chrono::nanoseconds>(deadline));
  EXPECT_EQ(payload, "command bytes");

  std::string none;
  AppendRequestTrailer(&none, kNoDeadline);
  got = StripRequestTrailer(&none);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, kNoDeadline);
  EXPECT_TRUE(none.empty());
}

TEST(RequestTrailer, AFrameWithoutATrailerIsRefusedAndLeftAlone) {
  std::string short_payload = "0123456789";
  EXPECT_FALSE(StripRequestTrailer(&short_payload));
  EXPECT_EQ(short_payload, "0123456789");
  std::string bare(64, 'x');  // a request written by a writer that appends no trailer
  EXPECT_FALSE(StripRequestTrailer(&bare));
  EXPECT_EQ(bare.size(), 64u);
  std::string bad_zero = "cmd";
  AppendRequestTrailer(&bad_zero, RequestClock::now());
  bad_zero.back() = 1;  // the reserved word must be zero
  EXPECT_FALSE(StripRequestTrailer(&bad_zero));
}

// The deadline crosses processes as CLOCK_MONOTONIC nanoseconds: steady_clock must be
// that clock (it is on Linux), or the two ends would disagree on when a request expires.
TEST(RequestTrailer, SteadyClockIsTheSystemWideMonotonicClock) {
  timespec ts{};
  const auto before = RequestClock::now();
  ASSERT_EQ(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
  const auto after = RequestClock::now();
  const auto mono = std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  EXPECT_GE(mono, before.time_since_epoch());
  EXPECT_LE(mono, after.time_since_epoch());
}

}  // namespace
}  // namespace rusd::ipc
