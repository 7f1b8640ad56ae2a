// RequestTrailer: the deadline the frontend appends to every request it hands raftd for the
// log or for an action (kPropose, kMemberChange, kMoveLeader on the proposals ring), so that
// raftd never starts on a request whose client has already been answered.
//
// Why: a frame may sit in the proposals ring for seconds (raftd killed and restarted by the
// supervisor, a long fsync). The frontend answers the client at the deadline (etcd's
// "request timed out", outcome unknown) and never re-sends; a request proposed after that
// would be applied behind the back of a client that may have moved on. raftd drops frames
// read at or after their deadline and ends a leaderless wait before it (leader_wait_queue.h).
// It cannot undo what it started: a proposal proposed (or forwarded by a follower, without
// its deadline: the leader appends it whenever it arrives) just before the deadline may
// still commit after the client's "request timed out", which is why that answer means
// outcome unknown, as etcd's.
//
// Format: the last 16 bytes of the frame's payload (what precedes them is the request:
// a rusd.internal.Command, MemberChangeRequest or MoveLeaderRequest), little-endian as the
// machine is:
//
//   0                 8           12          16
//   +-----------------+-----------+-----------+
//   | deadline_ns u64 | magic u32 | zero u32  |
//   +-----------------+-----------+-----------+
//
//   - deadline_ns: the CLOCK_MONOTONIC time in nanoseconds at which the frontend gives up on
//     the request; 0: no deadline. CLOCK_MONOTONIC is one clock for every process of the
//     host (both ends of a ring are on one host), and std::chrono::steady_clock is that
//     clock on Linux (libstdc++ and libc++; request_trailer_test.cc checks it).
//   - magic: kRequestTrailerMagic. The frame type says a trailer is there; the magic makes a
//     frame written without one (an older writer) fail loudly instead of losing 16 bytes.
//
// Versions: every component of a node must be the same build. A frontend of this build with
// an older raftd (one that does not strip the trailer) would put the 16 bytes into the WAL
// as part of the entry; an older frontend with this raftd has its requests refused
// (InvalidArgument "malformed request frame (no deadline)"). The supervisor starts all three
// components from one install directory (beside its own binary, /proc/self/exe), so a node
// never mixes builds, unless the binaries there are replaced while it runs: it execs them
// by path again whenever it restarts one, so stop the node before installing a new build.
//
// Thread safety: plain functions on caller-owned strings.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace rusd::ipc {

// The clock of deadlines shared between processes (see above).
using RequestClock = std::chrono::steady_clock;

inline constexpr size_t kRequestTrailerBytes = 16;
inline constexpr uint32_t kRequestTrailerMagic = 0x4c445452;  // "RTDL"

// A request without a deadline (tests, tools): raftd then applies its own bounds.
inline constexpr RequestClock::time_point kNoDeadline = RequestClock::time_point::max();

// Appends the trailer for `deadline` (kNoDeadline: none) to *payload.
inline void AppendRequestTrailer(std::string* payload, RequestClock::time_point deadline) {
  uint64_t ns = 0;
  if (deadline != kNoDeadline) {
    const auto since = deadline.time_since_epoch();
    ns = since.count() <= 0
             ? 1  // before the clock's epoch: long past; 0 would mean "none"
             : static_cast<uint64_t>(
                   std::chrono::duration_cast<std::chrono::nanoseconds>(since).count());
  }
  const uint32_t magic = kRequestTrailerMagic;
  const uint32_t zero = 0;
  char raw[kRequestTrailerBytes];
  std::memcpy(raw, &ns, 8);
  std::memcpy(raw + 8, &magic, 4);
  std::memcpy(raw + 12, &zero, 4);
  payload->append(raw, sizeof raw);
}

// Removes the trailer from the end of *payload and returns its deadline (kNoDeadline if it
// carries none). nullopt, with *payload untouched, if there is no valid trailer.
inline std::optional<RequestClock::time_point> StripRequestTrailer(std::string* payload) {
  if (payload->size() < kRequestTrailerBytes) return std::nullopt;
  const char* raw = payload->data() + payload->size() - kRequestTrailerBytes;
  uint64_t ns = 0;
  uint32_t magic = 0, zero = 0;
  std::memcpy(&ns, raw, 8);
  std::memcpy(&magic, raw + 8, 4);
  std::memcpy(&zero, raw + 12, 4);
  if (magic != kRequestTrailerMagic || zero != 0) return std::nullopt;
  payload->resize(payload->size() - kRequestTrailerBytes);  // no reallocation, no copy
  if (ns == 0) return kNoDeadline;
  return RequestClock::time_point(std::chrono::duration_cast<RequestClock::duration>(
      std::chrono::nanoseconds(static_cast<int64_t>(ns))));
}

}  // namespace rusd::ipc
