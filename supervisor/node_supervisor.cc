#include "supervisor/node_supervisor.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <optional>
#include <spdlog/spdlog.h>

#include "common/exit_codes.h"
#include "ipc/segment.h"
#include "supervisor/child_process.h"

namespace rusd::supervisor {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// Start order: the store first (it owns the applied state raftd resumes from), then raftd,
// then the frontend that clients reach.
constexpr std::array<ipc::Component, ipc::kComponentCount> kStartOrder = {
    ipc::Component::kStored, ipc::Component::kRaftd, ipc::Component::kFrontend};

std::string BinaryName(ipc::Component c) { return std::string("rusd-") + ipc::ComponentName(c); }

sigset_t SupervisorSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, sig);
  return set;
}

long long Ms(Clock::duration d) { return duration_cast<milliseconds>(d).count(); }

}  // namespace

void BlockSupervisorSignals() {
  sigset_t set = SupervisorSignals();
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

struct NodeSupervisor::State {
  struct Child {
    ipc::Component component;
    pid_t pid = 0;                  // 0 while not running
    Clock::time_point started;      // of the current (or last) process
    uint64_t heartbeat = 0;         // last value seen
    Clock::time_point beat_at;      // when it last moved (or the start)
    bool beating = false;           // has it moved since the start?
    bool killed_for_hang = false;
    bool ever_started = false;      // a later start counts as a restart (metrics)
    std::optional<Clock::time_point> restart_at;
    RestartPolicy policy;
    explicit Child(ipc::Component c, RestartPolicy::Options o) : component(c), policy(o) {}
  };

  NodeSupervisorOptions options;
  ipc::Segment* segment;
  pid_t self = ::getpid();
  std::vector<Child> children;
  bool announced_ready = false;
  bool degraded = false;  // a component went down after the node was ready
  bool stopping = false;
  int exit_code = 0;

  State(NodeSupervisorOptions o, ipc::Segment* s) : options(std::move(o)), segment(s) {
    for (auto c : kStartOrder) children.emplace_back(c, options.restart);
  }

  ipc::ComponentSlot& Slot(const Child& c) { return segment->component(c.component); }
  // rusd_component_* in the segment's metrics area; times are steady_clock (CLOCK_MONOTONIC)
  // nanoseconds, so any process can compute the heartbeat age.
  ipc::ComponentStats& Stats(const Child& c) {
    return segment->metrics().components[static_cast<int>(c.component)];
  }
  static uint64_t MonoNanos(Clock::time_point t) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  }

  bool Start(Child& c, Clock::time_point now) {
    c.restart_at.reset();
    ipc::ComponentSlot& slot = Slot(c);
    slot.epoch.fetch_add(1, std::memory_order_acq_rel);
    const std::string path = options.bin_dir + "/" + BinaryName(c.component);
    ComponentFlags flags = options.flags;
    // The frontend's alone: raftd and stored keep the command line they always had.
    if (c.component != ipc::Component::kFrontend) {
      flags.experimental_native_grpc = ComponentFlags{}.experimental_native_grpc;
    }
    auto pid = SpawnChild(path, flags.ToArgs(), self);
    c.started = now;
    if (!pid.ok()) {
      spdlog::error("failed to start {}: {}", BinaryName(c.component), pid.status().message());
      slot.epoch.fetch_add(1, std::memory_order_acq_rel);
      segment->WakeAll();
      return ScheduleRestart(c, now);
    }
    c.pid = *pid;
    c.heartbeat = slot.heartbeat.load(std::memory_order_acquire);
    c.beat_at = now;
    c.beating = false;
    c.killed_for_hang = false;
    if (c.ever_started) Stats(c).restarts.fetch_add(1, std::memory_order_relaxed);
    c.ever_started = true;
    Stats(c).start_mono_ns.store(MonoNanos(now), std::memory_order_relaxed);
    slot.pid.store(c.pid, std::memory_order_release);
    segment->WakeAll();
    spdlog::info("started {} (pid {}, epoch {})", BinaryName(c.component), c.pid,
                 slot.epoch.load(std::memory_order_acquire));
    return true;
  }

  // Returns false when the crash-loop limit is reached (the node must stop).
  bool ScheduleRestart(Child& c, Clock::time_point now) {
    if (stopping) return true;
    auto delay = c.policy.OnExit(c.started, now);
    if (!delay) {
      spdlog::error(
          "{} exited more than {} times within {}s (crash loop); stopping the node",
          BinaryName(c.component), c.policy.options().max_restarts,
          c.policy.options().window.count() / 1000);
      return false;
    }
    spdlog::warn("restarting {} in {}ms", BinaryName(c.component), delay->count());
    c.restart_at = now + *delay;
    return true;
  }

  // Reaps every exited child; returns false on a crash loop.
  bool Reap(Clock::time_point now) {
    bool ok = true;
    while (true) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (auto& c : children) {
        if (c.pid != pid) continue;
        ipc::ComponentSlot& slot = Slot(c);
        slot.pid.store(0, std::memory_order_release);
        slot.epoch.fetch_add(1, std::memory_order_acq_rel);
        segment->ResetLiveGauges(c.component);
        segment->WakeAll();
        c.pid = 0;
        if (stopping) {
          spdlog::info("{} (pid {}) {}", BinaryName(c.component), pid, DescribeExit(status));
        } else {
          spdlog::error("{} (pid {}) {} after {}ms{}", BinaryName(c.component), pid,
                        DescribeExit(status), Ms(now - c.started),
                        c.killed_for_hang ? " (killed: heartbeat stalled)" : "");
          if (WIFEXITED(status) && WEXITSTATUS(status) == kExitRestartRequested) {
            spdlog::info("{} asked to be restarted; restarting it now", BinaryName(c.component));
            c.restart_at = now;
          } else if (WIFEXITED(status) && WEXITSTATUS(status) == kExitConfigError) {
            // Restarting cannot fix a port held by someone else or a bad setting.
            spdlog::error("{} cannot start with this configuration; stopping the node",
                          BinaryName(c.component));
            ok = false;
          } else if (!ScheduleRestart(c, now)) {
            ok = false;
          }
        }
      }
    }
    return ok;
  }

  void CheckHeartbeats(Clock::time_point now) {
    for (auto& c : children) {
      if (c.pid == 0 || c.killed_for_hang) continue;
      uint64_t beat = Slot(c).heartbeat.load(std::memory_order_acquire);
      if (beat != c.heartbeat) {
        c.heartbeat = beat;
        c.beat_at = now;
        Stats(c).last_beat_mono_ns.store(MonoNanos(now), std::memory_order_relaxed);
        if (!c.beating) {
          c.beating = true;
          spdlog::info("{} (pid {}) is up", BinaryName(c.component), c.pid);
        }
        continue;
      }
      auto limit = c.beating ? options.heartbeat_timeout : options.startup_grace;
      if (now - c.beat_at > limit) {
        spdlog::error("{} (pid {}) heartbeat has not moved for {}ms{}; killing it",
                      BinaryName(c.component), c.pid, Ms(now - c.beat_at),
                      c.beating ? "" : " since it started");
        c.killed_for_hang = true;
        ::kill(c.pid, SIGKILL);
      }
    }
  }

  void AnnounceReadiness() {
    bool all = true;
    for (const auto& c : children) all = all && c.pid != 0 && c.beating;
    if (!all) {
      degraded = announced_ready;
      return;
    }
    if (!announced_ready) {
      announced_ready = true;
      spdlog::info("ready to serve client requests");
      spdlog::info("serving client traffic insecurely; this is strongly discouraged! address={}",
                   options.client_urls);
    } else if (degraded) {
      degraded = false;
      spdlog::info("all components are up again; ready to serve client requests");
    }
  }

  bool AnyRunning() const {
    for (const auto& c : children) {
      if (c.pid != 0) return true;
    }
    return false;
  }

  void SignalAll(int sig) {
    for (const auto& c : children) {
      if (c.pid != 0) ::kill(c.pid, sig);
    }
  }

  // Waits for SIGCHLD (or a stop signal) up to `timeout`; returns the signal or 0.
  int WaitSignal(milliseconds timeout) {
    sigset_t set = SupervisorSignals();
    timespec ts{static_cast<time_t>(timeout.count() / 1000),
                static_cast<long>((timeout.count() % 1000) * 1000000)};
    int sig = ::sigtimedwait(&set, nullptr, &ts);
    return sig < 0 ? 0 : sig;
  }

  void Shutdown() {
    stopping = true;
    for (auto& c : children) c.restart_at.reset();
    if (!AnyRunning()) return;
    spdlog::info("stopping the components (SIGTERM, {}ms grace)", options.shutdown_grace.count());
    SignalAll(SIGTERM);
    auto deadline = Clock::now() + options.shutdown_grace;
    while (AnyRunning() && Clock::now() < deadline) {
      auto left = duration_cast<milliseconds>(deadline - Clock::now()) + milliseconds(1);
      int sig = WaitSignal(std::min<milliseconds>(milliseconds(50), left));
      if (sig == SIGTERM || sig == SIGINT) {
        spdlog::warn("second stop signal: killing the components now");
        break;
      }
      Reap(Clock::now());
    }
    if (AnyRunning()) {
      for (const auto& c : children) {
        if (c.pid == 0) continue;
        spdlog::warn("{} (pid {}) did not stop in time; SIGKILL", BinaryName(c.component), c.pid);
      }
      SignalAll(SIGKILL);
      while (AnyRunning()) {
        WaitSignal(milliseconds(50));
        Reap(Clock::now());
      }
    }
  }
};

NodeSupervisor::NodeSupervisor(NodeSupervisorOptions options, ipc::Segment* segment)
    : state_(std::make_unique<State>(std::move(options), segment)) {}

NodeSupervisor::~NodeSupervisor() = default;

int NodeSupervisor::Run() {
  State& s = *state_;
  auto now = Clock::now();
  for (auto& c : s.children) {
    if (!s.Start(c, now)) {
      s.Shutdown();
      return 1;
    }
  }
  while (true) {
    int sig = s.WaitSignal(s.options.poll_interval);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      const char* name = sig == SIGINT ? "interrupt" : sig == SIGTERM ? "terminated" : "hangup";
      spdlog::info("received {} signal, shutting down", name);
      s.Shutdown();
      spdlog::info("stopped the node");
      return 0;
    }
    now = Clock::now();
    if (!s.Reap(now)) {
      s.Shutdown();
      return 1;
    }
    s.CheckHeartbeats(now);
    for (auto& c : s.children) {
      if (c.pid == 0 && c.restart_at && now >= *c.restart_at) {
        if (!s.Start(c, now)) {
          s.Shutdown();
          return 1;
        }
      }
    }
    s.AnnounceReadiness();
  }
}

}  // namespace rusd::supervisor
