// The process manager of one node: starts rusd-stored, rusd-raftd and rusd-frontend,
// watches them, restarts a crashed or hung one while the other two keep running, and stops
// them all on SIGTERM/SIGINT.
//
// - Start: bump the component's epoch in the segment, fork+exec the binary (SpawnChild)
//   with the resolved ComponentFlags, record its pid in the segment, wake every doorbell.
// - Exit (SIGCHLD + waitpid): bump the epoch again, clear the pid, wake every doorbell
//   (a peer asleep on a futex must notice the old epoch is gone), then restart after the
//   RestartPolicy's backoff, or stop the node on a crash loop.
// - Hang: a component whose heartbeat counter has not moved for `heartbeat_timeout`
//   (`startup_grace` before its first beat) is SIGKILLed and then handled as an exit.
// - Stop: SIGTERM every child, wait up to `shutdown_grace`, SIGKILL the rest, reap all.
//
// Threading: Run() is called once, from the process's main thread (children's
// PR_SET_PDEATHSIG is tied to the thread that forked them), with SIGTERM, SIGINT, SIGHUP and
// SIGCHLD blocked (BlockSupervisorSignals) so it can take them synchronously.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/component_flags.h"
#include "supervisor/restart_policy.h"

namespace rusd::ipc {
class Segment;
}

namespace rusd::supervisor {

struct NodeSupervisorOptions {
  std::string bin_dir;   // where rusd-frontend, rusd-raftd, rusd-stored live
  ComponentFlags flags;  // passed to every component (segment, ids, limits, logging)
  std::string client_urls;  // for the "serving client traffic" log line
  std::chrono::milliseconds poll_interval{100};
  std::chrono::milliseconds heartbeat_timeout{5000};
  std::chrono::milliseconds startup_grace{15000};
  std::chrono::milliseconds shutdown_grace{10000};
  RestartPolicy::Options restart;
};

// Blocks the signals Run() waits for; call in main() before creating any thread.
void BlockSupervisorSignals();

class NodeSupervisor {
 public:
  // `segment` must outlive the NodeSupervisor.
  NodeSupervisor(NodeSupervisorOptions options, ipc::Segment* segment);
  ~NodeSupervisor();
  NodeSupervisor(const NodeSupervisor&) = delete;
  NodeSupervisor& operator=(const NodeSupervisor&) = delete;

  // Runs until a stop signal (returns 0) or a crash loop / failure to start (returns 1).
  // No child is left running when it returns.
  int Run();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace rusd::supervisor
