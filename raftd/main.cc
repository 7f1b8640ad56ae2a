// rusd-raftd: the Raft and WAL process of a rusd node (see raftd/README.md).
//
// Exit codes: 0 after SIGTERM/SIGINT, 1 for bad flags or a missing segment, 2 when the WAL
// cannot be recovered or written (the log line says which file and offset).
#include <signal.h>
#include <spdlog/spdlog.h>

#include <linux/futex.h>
#include <malloc.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <ctime>

#include "common/component_flags.h"
#include "common/exit_codes.h"
#include "common/logging.h"
#include "ipc/component_context.h"
#include "raftd/raft_process.h"
#include "raftd/snapshot/snapshot_point.h"
#include "raftd/snapshot/snapshot_transfer.h"
#include "raftd/wal/wal_reader.h"
#include "raftd/wal/wal_writer.h"

namespace {

constexpr int kExitUsage = 1;
constexpr int kExitWal = 2;

// SIGTERM and SIGINT stay blocked in every thread and are collected by polling, so no
// signal handler (and no global flag) is needed; the main loop polls at least every tick.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Rings the main loop's doorbell (the one the proposals and store-control rings ring), so
// that peer messages wake it like ring records do. Always bumping the word closes the race
// with a loop about to sleep: WaitForMessages sleeps only while the word is unchanged.
void WakeMainLoop(rusd::ipc::Segment& segment) {
  rusd::ipc::Doorbell& bell = segment.doorbell(rusd::ipc::DoorbellId::kRaftdMain);
  bell.word.fetch_add(1, std::memory_order_seq_cst);
  if (bell.sleeping.load(std::memory_order_seq_cst) != 0 &&
      bell.sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
    bell.wakes.fetch_add(1, std::memory_order_relaxed);
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&bell.word), FUTEX_WAKE, INT_MAX, nullptr,
              nullptr, 0);
  }
}

// Asks the kernel for a pending stop signal at most every kStopCheckInterval: the Raft
// loop calls it every turn (thousands of turns a second under load, each a system call
// otherwise). A stop is still seen well within the loop's own sleep (one tick).
class StopSignalCheck {
 public:
  explicit StopSignalCheck(const sigset_t& set) : set_(set) {}
  bool operator()();

 private:
  static constexpr std::chrono::milliseconds kStopCheckInterval{5};
  const sigset_t& set_;
  std::chrono::steady_clock::time_point next_check_{};
  bool stop_ = false;
};

bool StopRequested(const sigset_t& set) {
  struct timespec zero = {0, 0};
  int sig = sigtimedwait(&set, nullptr, &zero);
  if (sig > 0) {
    spdlog::info("received signal {}, stopping", sig);
    return true;
  }
  return false;
}

bool StopSignalCheck::operator()() {
  if (stop_) return true;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_check_) return false;
  next_check_ = now + kStopCheckInterval;
  stop_ = StopRequested(set_);
  return stop_;
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t stop_signals = BlockStopSignals();  // before any thread starts
  // One malloc arena for every thread. A follower's log entries are decoded (allocated) on
  // the transport's I/O thread; in that thread's own arena glibc grows the heap one page
  // at a time with an mprotect each (non-main arenas ignore M_TOP_PAD): ~1.3 mprotect per
  // WAL group, 3 % of a loaded follower's CPU. The main arena grows by brk in 128 KiB
  // steps. The two busy threads allocate mostly from their tcache, so the shared arena
  // lock is rarely taken.
  mallopt(M_ARENA_MAX, 1);
  auto flags = rusd::ComponentFlags::Parse(argc, argv);
  if (!flags.ok()) {
    fprintf(stderr, "rusd-raftd: %s\n", flags.status().ToString().c_str());
    return kExitUsage;
  }
  rusd::Status st = rusd::SetUpLogging("raftd", flags->log_level, flags->log_format);
  if (!st.ok()) {
    fprintf(stderr, "rusd-raftd: %s\n", st.ToString().c_str());
    return kExitUsage;
  }
  if (flags->data_dir.empty()) {
    spdlog::critical("--data-dir is required");
    return kExitUsage;
  }
  auto ctx = rusd::ipc::ComponentContext::Start(*flags, rusd::ipc::Component::kRaftd);
  if (!ctx.ok()) {
    spdlog::critical("cannot open the segment: {}", ctx.status().ToString());
    return kExitUsage;
  }

  const std::string wal_dir = flags->data_dir + "/member/wal";
  auto recovered = rusd::wal::ReadWal(wal_dir);
  if (!recovered.ok()) {
    spdlog::critical("WAL recovery failed, refusing to start: {}", recovered.status().ToString());
    return kExitWal;
  }
  if (recovered->torn_tail) {
    spdlog::warn("WAL: cutting a torn tail of {} at offset {} (a write the crash interrupted)",
                 recovered->segments.back().path, recovered->tail_offset);
  }
  const std::string snap_dir = flags->data_dir + "/member/snap";
  std::string point_members;
  auto point = rusd::raftd::ReadSnapshotPoint(snap_dir, &point_members);
  if (!point.ok()) {
    spdlog::critical("snapshot point unreadable, refusing to start: {}", point.status().ToString());
    return kExitWal;
  }
  auto wal = rusd::wal::WalWriter::Open(wal_dir, *recovered);
  if (!wal.ok()) {
    spdlog::critical("cannot open the WAL for writing: {}", wal.status().ToString());
    return kExitWal;
  }
  spdlog::info("WAL {}: {} segments, hard state term {} vote {:x} commit {}, entries ({}, {}]",
               wal_dir, recovered->segments.size(), recovered->hard_state.term,
               recovered->hard_state.vote, recovered->hard_state.commit, recovered->prev_index,
               recovered->prev_index + recovered->entries.size());

  rusd::raftd::RaftProcessOptions options;
  options.member_id = flags->member_id != 0 ? flags->member_id : 1;
  options.epoch = (*ctx)->epoch();
  const uint32_t hb = std::max<uint32_t>(1, flags->heartbeat_interval_ms);
  options.tick_interval = std::chrono::milliseconds(hb);
  options.election_ticks = static_cast<int>(std::max<uint32_t>(1, flags->election_timeout_ms / hb));
  // etcd's request timeout (5 s + 2 election timeouts): a read index unanswered that long
  // fails with "request timed out" instead of waiting forever (read_index_waiters.h).
  options.read_timeout =
      std::chrono::milliseconds(5000 + 2 * static_cast<uint64_t>(flags->election_timeout_ms));
  // A request waiting for a leader gives up before the deadline its frame carries (the
  // frontend's request timeout, ipc/request_trailer.h), so that it is not proposed after its
  // client was told it timed out and the client gets raftd's answer, etcd's
  // (leader_wait_queue.h). The margin covers two ticks (expiry runs on a tick and before
  // every release) and 250 ms of headroom for the reply's trip through the ring and a
  // loaded machine: the client must get raftd's Unknown "context deadline exceeded" (etcd
  // 3.4's answer, e2e TestClusterProposalWithoutALeader), not the frontend's own
  // Unavailable "request timed out", which it sends at the deadline.
  options.leader_wait_margin = std::min<std::chrono::milliseconds>(
      2 * options.tick_interval + std::chrono::milliseconds(250), options.read_timeout / 2);
  // Only for a frame without a deadline (none from the frontend): the same wait, counted
  // from when raftd reads it.
  options.leader_wait = options.read_timeout - options.leader_wait_margin;
  options.members = flags->members;
  options.client_urls = flags->advertise_client_urls;
  options.name = flags->name;
  options.strict_reconfig_check = flags->strict_reconfig_check;
  // The member list: bootstrap members, then every applied change (members.pb + the WAL).
  rusd::raftd::MembershipRegistry membership(options.member_id, flags->members,
                                             flags->data_dir + "/member");
  if (rusd::Status ms = membership.Load(); !ms.ok()) {
    spdlog::critical("membership: {}", ms.ToString());
    return kExitWal;
  }
  membership.Replay(recovered->entries, recovered->hard_state.commit);
  if (membership.self_removed()) {
    spdlog::critical("member {:016x} was removed from the cluster; not starting (remove its "
                     "data directory to add it again as a new member)",
                     options.member_id);
    return rusd::kExitConfigError;
  }
  options.membership = &membership;
  std::vector<rusd::ClusterMember> current_members;
  for (const auto& r : membership.members()) {
    current_members.push_back({r.id(), r.name(), {r.peer_urls().begin(), r.peer_urls().end()}});
  }
  // Not among --members: a member joining a running cluster (the supervisor asked it for
  // the members); it is a voter or learner once the log's conf change adding it applies.
  bool joining = !flags->members.empty();
  for (const rusd::ClusterMember& m : flags->members) joining &= m.id != options.member_id;
  if (joining && membership.Find(options.member_id) == nullptr) {
    spdlog::info("joining the cluster as member {:016x}: waiting for the leader's log",
                 options.member_id);
  }
  // Declared first so that it outlives the transport, which hands it accepted streams.
  std::unique_ptr<rusd::raftd::SnapshotTransfer> snapshots;
  std::unique_ptr<rusd::transport::PeerTransport> transport;
  options.snap_dir = snap_dir;
  options.snapshot_members = std::move(point_members);
  // The peer listener runs whenever the supervisor gives one (always, as etcd listens on
  // --listen-peer-urls even alone): a node started alone can then grow with `member add`.
  // Without it (a raftd started by hand or by a test) only a single member can run.
  if (!flags->listen_peer_urls.empty() || flags->members.size() > 1 || joining) {
    rusd::transport::TransportOptions t;
    t.cluster_id = flags->cluster_id;
    t.member_id = options.member_id;
    t.name = flags->name;
    t.listen_urls = flags->listen_peer_urls;
    t.client_urls = flags->advertise_client_urls;
    bool self_listed = false;
    for (const rusd::ClusterMember& m : current_members) {
      self_listed |= m.id == options.member_id;
      if (m.id != options.member_id) t.peers.push_back({m.id, m.name, m.peer_urls});
    }
    if (!self_listed && !joining) {
      spdlog::critical("member {:x} is not in the cluster's member list", options.member_id);
      return rusd::kExitConfigError;
    }
    rusd::ipc::Segment* segment = &(*ctx)->segment();
    t.on_receive = [segment] { WakeMainLoop(*segment); };
    rusd::raftd::SnapshotTransferOptions so;
    so.cluster_id = flags->cluster_id;
    so.member_id = options.member_id;
    so.snap_dir = snap_dir;
    for (const auto& p : t.peers) so.peers.emplace_back(p.id, p.peer_urls);
    so.on_event = [segment] { WakeMainLoop(*segment); };
    snapshots = std::make_unique<rusd::raftd::SnapshotTransfer>(std::move(so));
    rusd::raftd::SnapshotTransfer* receiver = snapshots.get();
    t.on_snapshot_stream = [receiver](int fd, std::string head) {
      receiver->Accept(fd, std::move(head));
    };
    // Members removed since bootstrap are refused as such (they stop themselves).
    std::vector<uint64_t> removed_ids = membership.removed_ids();
    const std::vector<rusd::transport::PeerAddress> t_peers = t.peers;
    auto started = rusd::transport::PeerTransport::Start(std::move(t));
    if (!started.ok()) {
      // Restarting cannot free a port another process holds: stop the node (as etcd exits).
      spdlog::critical("peer transport: {}", started.status().ToString());
      return rusd::kExitConfigError;
    }
    transport = std::move(*started);
    if (!removed_ids.empty()) transport->UpdatePeers(t_peers, removed_ids);
    options.transport = transport.get();
    options.snapshots = snapshots.get();
    options.compact_on_snapshot = true;
    for (const auto& u : flags->listen_peer_urls) spdlog::info("listening for peers on {}", u);
  }
  rusd::raftd::MergedRecovery merged =
      rusd::raftd::MergeSnapshotPoint(std::move(*recovered), *point);
  if (merged.wal_needs_reset) {
    // A follower persisted an installed snapshot's point and crashed before its WAL
    // restarted there: restart it now.
    spdlog::warn("WAL does not reach the snapshot point {}: restarting the log there",
                 merged.state.prev_index);
    st = (*wal)->ResetTo(merged.state.prev_index, merged.state.prev_term);
    if (st.ok()) {
      (*wal)->AddHardState(merged.state.hard_state);
      st = (*wal)->Flush(/*sync=*/true);
    }
    if (!st.ok()) {
      spdlog::critical("cannot restart the WAL at the snapshot point: {}", st.ToString());
      return kExitWal;
    }
  }
  if (*point) {
    spdlog::info("snapshot point: index {} term {}, {} voters; log ({}, {}]", (*point)->index,
                 (*point)->term, (*point)->conf.voters.size(), merged.state.prev_index,
                 merged.state.prev_index + merged.state.entries.size());
  }
  rusd::raft::RecoveredState state = std::move(merged.state);
  if (!state.conf_state && state.prev_index > 0 && membership.applied_index() > 0) {
    // The WAL was trimmed past the bootstrap with no snapshot point to say the
    // configuration there: start the core from the persisted members (changes still in the
    // log replay on top of it; they are idempotent).
    rusd::raft::ConfState conf;
    for (const auto& r : membership.members()) {
      (r.is_learner() ? conf.learners : conf.voters).push_back(r.id());
    }
    std::sort(conf.voters.begin(), conf.voters.end());
    std::sort(conf.learners.begin(), conf.learners.end());
    state.conf_state = conf;
  }
  rusd::raftd::RaftProcess process((*ctx)->segment(), **wal, std::move(state), options);
  spdlog::info("rusd-raftd up: member {:016x}, epoch {}, tick {} ms, election {} ticks",
               options.member_id, options.epoch, hb, options.election_ticks);

  StopSignalCheck stop_check(stop_signals);
  st = process.Run([&stop_check] { return stop_check(); });
  if (st.ok() && process.removed()) return rusd::kExitConfigError;  // logged why
  if (!st.ok()) {
    spdlog::critical("unrecoverable WAL error, exiting: {}", st.ToString());
    return kExitWal;
  }
  spdlog::info("rusd-raftd stopped cleanly");
  return 0;
}
