// Starting one component process: fork + exec, with the guarantees the node needs.
//
// The child, between fork and exec (async-signal-safe calls only):
//   - restores an empty signal mask and default dispositions for the signals the
//     supervisor blocks or ignores (both survive exec otherwise);
//   - sets PR_SET_PDEATHSIG(SIGKILL), so it dies with the supervisor, then checks that
//     getppid() is still `supervisor_pid` (the supervisor may have died before prctl) and
//     exits at once if not;
//   - execs `path` with argv[0] = path.
// An exec failure is reported back through a close-on-exec pipe, so the caller gets a
// clear error instead of a child that silently exits 127.
//
// PR_SET_PDEATHSIG fires when the parent *thread* exits: call this from the thread that
// lives as long as the supervisor (its main thread). Everything is prepared before fork,
// so the call is safe even if the process had other threads.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace rusd::supervisor {

// Returns the child's pid. On an exec failure the child is reaped here and the error
// (e.g. "exec /x/rusd-raftd: No such file or directory") returned.
Result<pid_t> SpawnChild(const std::string& path, const std::vector<std::string>& args,
                         pid_t supervisor_pid);

// "exited with code 3" / "was killed by signal 9 (Killed)" for a waitpid status.
std::string DescribeExit(int wait_status);

}  // namespace rusd::supervisor
