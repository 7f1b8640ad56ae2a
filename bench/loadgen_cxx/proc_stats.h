// What the loadgens charge to a server and to themselves, read from /proc and getrusage:
// CPU ticks of a server process and its direct children (rusd's supervisor and its three
// components), the resident memory of one process, and this process's own CPU time.
// Counted as the Go loadgen counts them (loadgen/rss.go), so the records compare.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace rusd::loadgen {

// user + system clock ticks (sysconf(_SC_CLK_TCK) per second) of pid and its direct
// children, all threads.
Result<int64_t> CpuTicksOf(int pid);
Result<int64_t> CpuTicksOfAll(const std::vector<int>& pids);
// VmRSS of one process, KiB.
Result<int64_t> RssKiBOf(int pid);
// user + system CPU seconds of this process, all threads.
double CpuSecondsOfSelf();

}  // namespace rusd::loadgen
