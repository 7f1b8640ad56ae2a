// ApplyLoop: stored's apply thread. It consumes the committed ring (raftd -> stored), applies
// committed entries to the KvStore in index order, answers this member's requests on
// store-replies, publishes watch events, and keeps raftd informed on store-control:
//
// - kResumeFrom{applied}: at start, whenever raftd's epoch changes (a new raftd, or the old
//   one reaped), and when the ring shows a gap (an entry above applied + 1). raftd then
//   (re)sends from applied + 1. Entries at or below the applied index are dropped, so
//   repeats are harmless; a gap is re-reported at most once per applied index and interval
//   (stale frames already on the ring would otherwise trigger one request each).
// - kDurableApplied{index}: every sync interval in which the applied index advanced, after
//   KvStore::SyncWal made it durable (raftd trims its WAL below it).
//
// Batching: all frames available at once (up to a cap) become ONE KvStore::ApplyEntries call,
// so one RocksDB write batch carries many requests.
//
// Never blocks on a ring write: store-control and events use TryWrite (control messages that
// do not fit are retried on the next turn; they are idempotent and only the newest matters),
// replies go through ReplySender. The only waits are on the committed ring's doorbell and the
// KvStore's own I/O.
//
// Threads: Run() on the one apply thread; Stop() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rusd::internal {
class Entry;
}
namespace rusd::ipc {
class ComponentContext;
class RingReader;
class RingWriter;
}  // namespace rusd::ipc

namespace rusd::stored {

class AppliedIndexGate;
class EventPublisher;
class KvStore;
class LeaseKeeper;
class ReplySender;
class SnapshotDirectory;

// raftd's order to replace the store by a received snapshot (kInstallSnapshot). The loop
// stops when it gets one; main() closes the store, installs and exits so that the process
// restarts on the new store (snapshot_directory.h).
struct InstallOrder {
  uint64_t index = 0;
  uint64_t term = 0;
  std::string dir;
};

struct ApplyLoopOptions {
  uint64_t member_id = 0;
  std::chrono::milliseconds sync_interval{100};
  // Caps on what one ApplyEntries call takes, so replies and durability keep flowing under a
  // flood of entries.
  size_t max_batch_entries = 8192;
  size_t max_batch_bytes = 16u << 20;
  // A gap at the same applied index is re-reported to raftd at most this often.
  std::chrono::milliseconds gap_resend_interval{500};
  // A snapshot (checkpoint) every this many applied entries; 0: never.
  uint64_t snapshot_count = 0;
  // With snapshots on, also one after this many bytes of applied entry data; 0: by count only.
  uint64_t snapshot_bytes = 0;
};

class ApplyLoop {
 public:
  // Everything passed in must outlive the loop. `control` writes store-control.
  ApplyLoop(ipc::ComponentContext& context, KvStore& store, AppliedIndexGate& gate,
            ReplySender& replies, EventPublisher& events, ipc::RingWriter& control,
            const ApplyLoopOptions& options);
  ~ApplyLoop();

  // Runs until Stop(); then makes the applied state durable and reports it. Returns an error
  // only for a fatal failure (the store cannot apply or sync): the process must exit.
  Status Run();
  void Stop() { stop_.store(true, std::memory_order_release); }
  // Lease state goes here: kLeaderState frames and each batch's lease changes (optional;
  // set before Run).
  void SetLeaseKeeper(LeaseKeeper* leases) { leases_ = leases; }
  // Where snapshots are made (optional; set before Run): every snapshot_count applied
  // entries a checkpoint, announced to raftd with kSnapshotReady.
  void SetSnapshots(SnapshotDirectory* snapshots) { snapshots_ = snapshots; }
  // Set when Run stopped because raftd ordered a snapshot install (read after Run).
  const std::optional<InstallOrder>& install_order() const { return install_order_; }

 private:
  using Clock = std::chrono::steady_clock;

  // Moves the entries of the frames available now into `batch_`, keeping only those that
  // continue applied + 1 contiguously. Returns the number of frames consumed.
  size_t Collect(ipc::RingReader& committed);
  Status ApplyBatch();
  Status SyncIfDue(Clock::time_point now, bool force);
  void NoteGap(uint64_t index, uint64_t expected);
  void SendControl();
  Status MaybeSnapshot();
  void OnInstallOrder(std::string_view payload);
  // Frees the slots whose data string grew beyond kMaxKeptSlotBytes (a large entry), so that
  // what the reused slots hold stays bounded by about max_batch_entries * that.
  void ReleaseLargeSlots();
  static constexpr size_t kMaxKeptSlotBytes = 4096;

  ipc::ComponentContext& context_;
  KvStore& store_;
  AppliedIndexGate& gate_;
  ReplySender& replies_;
  EventPublisher& events_;
  ipc::RingWriter& control_;
  const ApplyLoopOptions options_;
  std::atomic<bool> stop_{false};
  LeaseKeeper* leases_ = nullptr;
  SnapshotDirectory* snapshots_ = nullptr;
  uint64_t last_snapshot_index_ = 0;   // applied index of the newest snapshot (or start)
  uint64_t bytes_since_snapshot_ = 0;  // entry data applied since then (this incarnation)
  // kSnapshotReady owed to raftd, oldest first: each new snapshot, and every kept one again
  // after each kResumeFrom (raftd compacts at the older of the two kept, see raftd).
  std::vector<uint64_t> snapshot_ready_owed_;
  std::optional<InstallOrder> install_order_;

  // The batch is batch_[0, batch_size_). The Entry objects (and their data strings) stay for
  // reuse: the next frames are decoded into them in place (entry_batch_decoder.h), so the
  // steady state allocates nothing per entry. Slots below slots_touched_ were written since
  // the last ReleaseLargeSlots.
  std::vector<internal::Entry> batch_;
  size_t batch_size_ = 0;
  size_t slots_touched_ = 0;
  size_t batch_bytes_ = 0;
  uint64_t applied_ = 0;         // the store's applied index
  uint64_t raftd_epoch_ = 0;     // last raftd epoch seen
  uint64_t frontend_epoch_ = 0;  // last frontend epoch seen (its restarts extend leases)

  bool resume_pending_ = false;       // a kResumeFrom is owed to raftd
  uint64_t last_resume_index_ = 0;    // applied index of the last kResumeFrom sent
  Clock::time_point last_resume_time_{};
  uint64_t durable_ = 0;              // highest index SyncWal covered
  bool durable_pending_ = false;      // kDurableApplied{durable_} is owed to raftd
  Clock::time_point next_sync_{};
  Clock::time_point next_store_stats_{};  // metrics: db size and keys, about once a second
};

}  // namespace rusd::stored
