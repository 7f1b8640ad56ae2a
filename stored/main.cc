// rusd-stored: the MVCC store process of a node (see stored/README.md).
//
// Threads: main (signals and shutdown), the apply thread (ApplyLoop), the reads thread
// (ReadDispatcher), two read workers (ReadWorkerPool), the heartbeat (ipc), and RocksDB's own.
// Exit status: 0 after SIGTERM/SIGINT (state synced, RocksDB closed); 1 on a fatal error
// (logged); 2 on bad flags.
#include <signal.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "common/component_flags.h"
#include "common/exit_codes.h"
#include "common/fault_point.h"
#include "common/logging.h"
#include "common/status.h"
#include "ipc/component_context.h"
#include "ipc/ring.h"
#include "stored/applied_index_gate.h"
#include "stored/apply_loop.h"
#include "stored/event_publisher.h"
#include "stored/lease/lease_keeper.h"
#include "stored/mvcc/kv_store.h"
#include "stored/read_dispatcher.h"
#include "stored/read_worker_pool.h"
#include "stored/reply_sender.h"
#include "stored/snapshot_directory.h"

namespace rusd::stored {
namespace {

constexpr int kReadWorkers = 2;
// After installing a snapshot stored exits with kExitRestartRequested and the supervisor
// starts it again at once on the new store: a new epoch, so raftd, the frontend and its
// watchers treat it as the stored restart it is (readers, leases and watch state are rebuilt
// from the store).
constexpr int kExitSnapshotInstalled = kExitRestartRequested;  // two cores per machine, shared with three other processes

// The signals main() waits for. SIGUSR1 is raised by a thread that hit a fatal error.
sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  return set;
}

// A fatal error seen by a worker thread, handed to main().
class FatalError {
 public:
  void Raise(Status status) {
    {
      std::lock_guard lock(mu_);
      if (status_.ok()) status_ = std::move(status);
    }
    kill(getpid(), SIGUSR1);
  }
  Status Get() const {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  mutable std::mutex mu_;
  Status status_;
};

// etcd's minimum lease TTL: ceil((3 x election ticks / 2) x heartbeat), 2 s by default.
int64_t MinLeaseTtlSeconds(const ComponentFlags& flags) {
  const uint64_t heartbeat = std::max<uint64_t>(flags.heartbeat_interval_ms, 1);
  const uint64_t ticks = flags.election_timeout_ms / heartbeat;
  const uint64_t min_ms = (3 * ticks / 2) * heartbeat;
  return static_cast<int64_t>((min_ms + 999) / 1000);
}

int Run(const ComponentFlags& flags) {
  // Every thread started from here on inherits the mask, so only sigwait() sees them.
  const sigset_t signals = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto context = ipc::ComponentContext::Start(flags, ipc::Component::kStored);
  if (!context.ok()) {
    spdlog::critical("cannot open segment '{}': {}", flags.segment,
                     context.status().ToString());
    return 1;
  }
  ipc::ComponentContext& ctx = **context;
  ipc::Segment& segment = ctx.segment();

  const std::filesystem::path member_dir = std::filesystem::path(flags.data_dir) / "member";
  std::error_code ec;
  std::filesystem::create_directories(member_dir, ec);
  if (ec) {
    spdlog::critical("cannot create {}: {}", member_dir.string(), ec.message());
    return 1;
  }
  KvStoreOptions store_options;
  store_options.member_id = flags.member_id;
  store_options.cluster_id = flags.cluster_id;
  store_options.min_lease_ttl = MinLeaseTtlSeconds(flags);
  const std::string store_dir = (member_dir / "store").string();
  if (Status rst = RecoverInterruptedInstall(member_dir.string()); !rst.ok()) {
    spdlog::critical("cannot recover an interrupted snapshot install: {}", rst.ToString());
    return 1;
  }
  SnapshotDirectory snapshots(member_dir.string());
  if (Status sst = snapshots.Load(); !sst.ok()) {
    spdlog::critical("cannot read the snapshots: {}", sst.ToString());
    return 1;
  }
  auto opened = KvStore::Open(store_dir, store_options);
  if (!opened.ok()) {
    spdlog::critical("cannot open the store at {}: {}", store_dir, opened.status().ToString());
    return 1;
  }
  std::unique_ptr<KvStore> store = std::move(opened).value();
  spdlog::info("rusd-stored up: member {:016x}, epoch {}, store {} at applied index {}, "
               "revision {}",
               flags.member_id, ctx.epoch(), store_dir, store->applied_index(),
               store->current_revision());

  // A store installed from a snapshot carries that snapshot's marker. Checkpoint it at once:
  // raftd's log now starts at that index, and should this member lead, a follower behind
  // it needs a snapshot at exactly that point (not only after --snapshot-count more).
  if (auto installed = ReadSnapshotMarker(store_dir);
      installed.ok() && installed->index == store->applied_index() &&
      (!snapshots.newest() || snapshots.newest()->index < installed->index)) {
    auto made = snapshots.Create(*store);
    if (made.ok()) {
      spdlog::info("snapshot at index {} of the installed store in {}", made->index, made->dir);
    } else {
      spdlog::warn("cannot snapshot the installed store: {}", made.status().ToString());
    }
  }

  ipc::RingWriter control(segment, ipc::RingId::kStoreControl, ctx.epoch());
  ipc::RingWriter replies_ring(segment, ipc::RingId::kStoreReplies, ctx.epoch());
  ipc::RingWriter events_ring(segment, ipc::RingId::kEvents, ctx.epoch());

  ReadWorkerPool workers(*store, replies_ring, segment, kReadWorkers);
  AppliedIndexGate gate(store->applied_index(), workers);
  ReplySender replies(replies_ring, workers);
  EventPublisher events(events_ring, 256u << 10,
                        &segment.counter(ipc::Counter::kWatchEventsWanted));
  ApplyLoopOptions apply_options;
  apply_options.member_id = flags.member_id;
  // Snapshots serve followers that fell behind the log start, and members added later. A
  // raftd with a peer listener (every node the supervisor starts, even alone: it may grow
  // with `member add`) compacts at them; one without (started by hand) compacts at the
  // durable index, and a checkpoint would only stall applying.
  const bool may_have_peers = flags.members.size() > 1 || !flags.listen_peer_urls.empty();
  apply_options.snapshot_count = may_have_peers ? flags.snapshot_count : 0;
  apply_options.snapshot_bytes = flags.snapshot_bytes;
  ApplyLoop apply(ctx, *store, gate, replies, events, control, apply_options);
  ReadDispatcher dispatcher(segment, gate, workers, *store);
  LeaseKeeperOptions lease_options;
  lease_options.member_id = flags.member_id;
  lease_options.cluster_id = flags.cluster_id;
  lease_options.promote_extend = std::chrono::milliseconds(flags.election_timeout_ms);
  lease_options.metrics = &segment.metrics();
  LeaseKeeper leases(*store, workers, control, lease_options);
  if (Status lst = leases.Recover(); !lst.ok()) {
    spdlog::critical("cannot load the leases: {}", lst.ToString());
    return 1;
  }
  apply.SetLeaseKeeper(&leases);
  apply.SetSnapshots(&snapshots);
  dispatcher.SetLeaseKeeper(&leases);
  std::thread expiry_thread([&] { leases.RunExpiry(); });

  FatalError fatal;
  std::thread apply_thread([&] {
    Status st = apply.Run();
    if (!st.ok()) {
      spdlog::critical("apply thread failed, shutting down: {}", st.ToString());
      fatal.Raise(std::move(st));
    } else if (apply.install_order()) {
      kill(getpid(), SIGUSR1);  // main() shuts down, then installs
    }
  });
  std::thread reads_thread([&] { dispatcher.Run(); });

  int sig = 0;
  sigwait(&signals, &sig);
  const Status failure = fatal.Get();
  if (failure.ok()) spdlog::info("signal {}: shutting down", sig);

  dispatcher.Stop();
  apply.Stop();
  reads_thread.join();
  apply_thread.join();
  leases.Stop();
  expiry_thread.join();
  workers.Stop();
  const Status final_failure = fatal.Get();  // the final sync may fail too
  store.reset();  // closes RocksDB
  if (!final_failure.ok()) {
    spdlog::critical("exiting after a fatal error: {}", final_failure.ToString());
    return 1;
  }
  if (const auto& order = apply.install_order()) {
    const std::string snap_dir = snapshots.snap_dir();
    Status ist = InstallSnapshotDir(
        member_dir.string(), order->dir, order->index, [&snap_dir](InstallStep step) {
          MaybeDieAtFaultPoint(snap_dir, step == InstallStep::kOldMovedAside
                                             ? "stored-install-old-moved-aside"
                                             : "stored-install-new-in-place");
          return true;
        });
    if (!ist.ok()) {
      // The old store stays (or is put back at the next start); raftd re-sends the order.
      spdlog::error("snapshot install failed: {}", ist.ToString());
      return 1;
    }
    spdlog::info("installed snapshot at index {} (term {}); restarting on it", order->index,
                 order->term);
    return kExitSnapshotInstalled;
  }
  spdlog::info("rusd-stored stopped cleanly");
  return 0;
}

}  // namespace
}  // namespace rusd::stored

int main(int argc, char** argv) {
  auto flags = rusd::ComponentFlags::Parse(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "rusd-stored: %s\n", flags.status().ToString().c_str());
    return 2;
  }
  rusd::Status st = rusd::SetUpLogging("stored", flags->log_level, flags->log_format);
  if (!st.ok()) {
    std::fprintf(stderr, "rusd-stored: %s\n", st.ToString().c_str());
    return 2;
  }
  return rusd::stored::Run(flags.value());
}
