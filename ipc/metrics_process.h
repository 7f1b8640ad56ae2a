// What Prometheus' Go client exports as process_* for one process, read from /proc: the
// supervisor reports itself and each component it runs (by the pid in the segment).
#pragma once

#include <optional>

namespace rusd::ipc {

struct ProcessStats {
  double cpu_seconds = 0;           // user + system
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  double start_time_seconds = 0;    // since the Unix epoch
  double open_fds = 0;
  double max_fds = 0;               // the soft RLIMIT_NOFILE
};

// nullopt if the process does not exist (or /proc cannot be read).
std::optional<ProcessStats> ReadProcessStats(int pid);

}  // namespace rusd::ipc
