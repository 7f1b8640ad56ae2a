#include "stored/apply_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <span>

#include "ipc/component_context.h"
#include "ipc/ring.h"
#include "rusd/internal.pb.h"
#include "rusd/snapshot.pb.h"
#include "stored/applied_index_gate.h"
#include "stored/entry_batch_decoder.h"
#include "stored/error_reply.h"
#include "stored/event_publisher.h"
#include "stored/metrics_ops.h"
#include "stored/lease/lease_keeper.h"
#include "stored/mvcc/kv_store.h"
#include "stored/reply_sender.h"
#include "stored/snapshot_directory.h"

namespace rusd::stored {
namespace {

using std::chrono::milliseconds;

// The longest the apply thread sleeps on the committed doorbell with nothing to do. Bounds
// how late it notices a raftd epoch change if a wake-up were ever missed.
constexpr milliseconds kMaxIdleWait{50};
// While replies wait in the overflow queue, poll for ring space this often (the frontend
// drains store-replies quickly); owed control messages wait for raftd, which may be down.
constexpr milliseconds kBacklogPoll{1};
constexpr milliseconds kControlPoll{10};

}  // namespace

ApplyLoop::ApplyLoop(ipc::ComponentContext& context, KvStore& store, AppliedIndexGate& gate,
                     ReplySender& replies, EventPublisher& events, ipc::RingWriter& control,
                     const ApplyLoopOptions& options)
    : context_(context),
      store_(store),
      gate_(gate),
      replies_(replies),
      events_(events),
      control_(control),
      options_(options) {}

ApplyLoop::~ApplyLoop() = default;

Status ApplyLoop::Run() {
  ipc::Segment& segment = context_.segment();
  ipc::RingReader committed(segment, ipc::RingId::kCommitted);

  applied_ = store_.applied_index();
  segment.counter(ipc::Counter::kAppliedIndex).store(applied_, std::memory_order_relaxed);
  StartKeyCount(store_, segment.metrics());
  // What the store recovered at open may sit in the page cache only (the previous stored was
  // killed, not the machine): sync before calling it durable.
  Result<uint64_t> synced = store_.SyncWal();
  if (!synced.ok()) {
    return Status(synced.status().code(),
                  "syncing the store's WAL at start: " + synced.status().message());
  }
  durable_ = synced.value();
  durable_pending_ = true;
  raftd_epoch_ = context_.PeerEpoch(ipc::Component::kRaftd);
  frontend_epoch_ = context_.PeerEpoch(ipc::Component::kFrontend);
  resume_pending_ = true;
  last_snapshot_index_ = applied_;
  if (snapshots_ != nullptr && snapshots_->newest()) {
    last_snapshot_index_ = std::max(applied_, snapshots_->newest()->index);
  }
  next_sync_ = Clock::now() + options_.sync_interval;
  spdlog::info("apply loop: applied index {}, revision {}, raftd epoch {}; asking raftd to "
               "resume from {}",
               applied_, store_.current_revision(), raftd_epoch_, applied_ + 1);

  while (!stop_.load(std::memory_order_acquire)) {
    const uint64_t epoch = context_.PeerEpoch(ipc::Component::kRaftd);
    if (epoch != raftd_epoch_) {
      spdlog::info("raftd epoch {} -> {}: asking it to resume from {}", raftd_epoch_, epoch,
                   applied_ + 1);
      raftd_epoch_ = epoch;
      resume_pending_ = true;
    }
    // The frontend died or started again: its clients' keep-alive streams were cut.
    const uint64_t frontend = context_.PeerEpoch(ipc::Component::kFrontend);
    if (frontend != frontend_epoch_) {
      frontend_epoch_ = frontend;
      if (leases_ != nullptr) leases_->OnFrontendRestarted();
    }
    SendControl();
    // Replies already owed leave before new work adds to them.
    replies_.Drain();

    const size_t frames = Collect(committed);
    if (batch_size_ != 0) RUSD_RETURN_IF_ERROR(ApplyBatch());
    RUSD_RETURN_IF_ERROR(MaybeSnapshot());

    const Clock::time_point now = Clock::now();
    if (now >= next_store_stats_) {
      next_store_stats_ = now + std::chrono::seconds(1);
      PublishStoreStats(store_, segment.metrics());
    }
    RUSD_RETURN_IF_ERROR(SyncIfDue(now, /*force=*/false));
    SendControl();

    if (frames == 0) {
      milliseconds wait = kMaxIdleWait;
      if (replies_.has_backlog()) {
        wait = kBacklogPoll;
      } else if (resume_pending_ || durable_pending_ || !snapshot_ready_owed_.empty()) {
        wait = kControlPoll;
      } else if (applied_ > durable_) {
        wait = std::clamp(std::chrono::duration_cast<milliseconds>(next_sync_ - now),
                          milliseconds(1), kMaxIdleWait);
      }
      ipc::RingReader* readers[] = {&committed};
      ipc::WaitForMessages(segment, readers, wait);
    }
  }

  // Clean shutdown: make everything applied durable and tell raftd, so the next start
  // resumes exactly here.
  RUSD_RETURN_IF_ERROR(SyncIfDue(Clock::now(), /*force=*/true));
  SendControl();
  replies_.Drain();
  spdlog::info("apply loop stopped at applied index {} (durable {}), revision {}", applied_,
               durable_, store_.current_revision());
  return Status::Ok();
}

size_t ApplyLoop::Collect(ipc::RingReader& committed) {
  size_t frames = 0;
  uint64_t expected = applied_ + 1 + batch_size_;
  ipc::MessageView msg;
  while (batch_size_ < options_.max_batch_entries && batch_bytes_ < options_.max_batch_bytes) {
    // Read in place: a frame is decoded straight from the ring, then its space is released.
    if (!committed.Peek(&msg)) break;
    ++frames;
    if (msg.type == ipc::MessageType::kInstallSnapshot) {
      OnInstallOrder(msg.payload);
      committed.Consume();
      if (install_order_) break;  // nothing after it applies to the old store
      continue;
    }
    if (msg.type == ipc::MessageType::kLeaderState) {
      if (leases_ != nullptr) leases_->OnLeaderState(msg.payload);
      committed.Consume();
      continue;
    }
    if (msg.type != ipc::MessageType::kCommittedEntries) {
      spdlog::warn("committed ring: ignoring frame of unknown type {} (id {})",
                   static_cast<int>(msg.type), msg.id);
      committed.Consume();
      continue;
    }
    // Into the slots after the batch so far; only the contiguous ones join it below.
    const std::optional<size_t> decoded = DecodeEntryBatch(msg.payload, &batch_, batch_size_);
    const uint64_t frame_id = msg.id;
    const size_t frame_bytes = msg.payload.size();
    committed.Consume();  // msg.payload is gone from here on
    if (!decoded) {
      // The entries are lost to us; raftd still has them. Ask for them again.
      spdlog::error("committed ring: unparsable EntryBatch at index {} ({} bytes)", frame_id,
                    frame_bytes);
      slots_touched_ = batch_.size();  // the decoder may have written any slot
      NoteGap(frame_id, expected);
      continue;
    }
    const size_t end = batch_size_ + *decoded;
    slots_touched_ = std::max(slots_touched_, end);
    for (size_t i = batch_size_; i < end; ++i) {
      const uint64_t index = batch_[i].index();
      if (index < expected) continue;  // already applied (or already in the batch)
      if (index > expected) {
        NoteGap(index, expected);
        break;  // the rest of this frame follows the hole
      }
      // Slots between batch_size_ and i hold skipped entries: swap this one down.
      if (i != batch_size_) batch_[batch_size_].Swap(&batch_[i]);
      batch_bytes_ += batch_[batch_size_].data().size();
      ++batch_size_;
      ++expected;
    }
  }
  return frames;
}

void ApplyLoop::NoteGap(uint64_t index, uint64_t expected) {
  if (resume_pending_) return;
  // Frames already on the ring when raftd got our last kResumeFrom all show the same hole;
  // ask once per applied index and interval, not once per stale frame.
  const uint64_t resume_at = expected - 1;
  const Clock::time_point now = Clock::now();
  if (resume_at == last_resume_index_ && now - last_resume_time_ < options_.gap_resend_interval) {
    return;
  }
  spdlog::warn("committed ring: got index {} while expecting {}; asking raftd to resume from {}",
               index, expected, expected);
  resume_pending_ = true;
}

Status ApplyLoop::ApplyBatch() {
  const std::span<const internal::Entry> batch(batch_.data(), batch_size_);
  const uint64_t first = batch.front().index();
  const uint64_t last = batch.back().index();
  ipc::MetricsArea& metrics = context_.segment().metrics();
  for (const internal::Entry& e : batch) {
    if (e.type() == internal::Entry::NORMAL) CountMvccOps(e.data(), metrics);
  }
  // etcd_disk_backend_commit_duration_seconds: here one RocksDB write batch (apply + write).
  const Clock::time_point apply_start = Clock::now();
  Result<ApplyOutput> out = store_.ApplyEntries(batch);
  const Clock::time_point apply_end = Clock::now();
  metrics.histogram(ipc::Histogram::kBackendCommit)
      .Observe(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(apply_end - apply_start).count()));

  if (!out.ok()) {
    return Status(out.status().code(), "applying entries " + std::to_string(first) + ".." +
                                           std::to_string(last) + ": " +
                                           out.status().message());
  }
  const size_t count = batch_size_;
  batch_size_ = 0;
  ReleaseLargeSlots();
  bytes_since_snapshot_ += batch_bytes_;
  batch_bytes_ = 0;
  applied_ = out->applied_index;
  if (applied_ != last) {
    return Status::Internal("store reports applied index " + std::to_string(applied_) +
                            " after applying entries " + std::to_string(first) + ".." +
                            std::to_string(last));
  }
  context_.segment()
      .counter(ipc::Counter::kEntriesApplied)
      .fetch_add(count, std::memory_order_relaxed);
  context_.segment().counter(ipc::Counter::kAppliedIndex).store(applied_, std::memory_order_relaxed);
  gate_.Advance(applied_);
  if (leases_ != nullptr) leases_->OnApplied(applied_, out->lease_changes);
  CountKeyChanges(out->events, metrics);
  if (!out->events.empty()) events_.Publish(out->events);
  for (ApplyReply& reply : out->replies) {
    if (reply.request_id == 0 || reply.origin_member_id != options_.member_id) continue;
    if (reply.ok) {
      replies_.Send(ipc::MessageType::kResult, reply.request_id, std::move(reply.response));
    } else {
      replies_.Send(ipc::MessageType::kError, reply.request_id,
                    EncodeErrorReply(reply.error_code, reply.error_message));
    }
  }
  replies_.WakeFrontend();  // once for the whole batch (reply_sender.h)
  return Status::Ok();
}

Status ApplyLoop::SyncIfDue(Clock::time_point now, bool force) {
  if (!force && now < next_sync_) return Status::Ok();
  next_sync_ = now + options_.sync_interval;
  if (applied_ <= durable_) return Status::Ok();
  Result<uint64_t> synced = store_.SyncWal();
  if (!synced.ok()) {
    return Status(synced.status().code(), "syncing the store's WAL at applied index " +
                                              std::to_string(applied_) + ": " +
                                              synced.status().message());
  }
  durable_ = synced.value();
  durable_pending_ = true;
  return Status::Ok();
}

void ApplyLoop::ReleaseLargeSlots() {
  for (size_t i = 0; i < slots_touched_; ++i) {
    if (batch_[i].data().capacity() > kMaxKeptSlotBytes) batch_[i] = internal::Entry();
  }
  slots_touched_ = 0;
}

void ApplyLoop::OnInstallOrder(std::string_view payload) {
  internal::InstallSnapshot order;
  if (!order.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    spdlog::error("committed ring: unparsable InstallSnapshot");
    return;
  }
  if (order.index() <= applied_ + batch_size_) {
    // Already there (a repeat, or an install the previous incarnation finished): confirm.
    spdlog::info("install order for index {} ignored: applied index is {}", order.index(),
                 applied_);
    resume_pending_ = true;
    return;
  }
  spdlog::info("raftd orders the install of snapshot {} (index {}, term {}); applied index {}",
               order.dir(), order.index(), order.term(), applied_);
  install_order_ = InstallOrder{order.index(), order.term(), order.dir()};
  Stop();
}

Status ApplyLoop::MaybeSnapshot() {
  if (snapshots_ == nullptr || options_.snapshot_count == 0) return Status::Ok();
  const bool by_bytes = options_.snapshot_bytes != 0 &&
                        bytes_since_snapshot_ >= options_.snapshot_bytes &&
                        applied_ > last_snapshot_index_;
  if (applied_ < last_snapshot_index_ + options_.snapshot_count && !by_bytes) {
    return Status::Ok();
  }
  const Clock::time_point start = Clock::now();
  Result<SnapshotInfo> made = snapshots_->Create(store_);
  last_snapshot_index_ = applied_;  // a failure is not retried at every batch
  bytes_since_snapshot_ = 0;
  if (!made.ok()) {
    spdlog::error("snapshot at applied index {} failed: {}", applied_, made.status().ToString());
    return Status::Ok();  // the log keeps growing in raftd; not fatal to serving
  }
  spdlog::info("snapshot at index {} (term {}) in {} ({} ms)", made->index, made->term,
               made->dir,
               std::chrono::duration_cast<milliseconds>(Clock::now() - start).count());
  snapshot_ready_owed_.push_back(made->index);
  return Status::Ok();
}

void ApplyLoop::SendControl() {
  if (resume_pending_) {
    internal::ResumeFrom resume;
    resume.set_applied_index(applied_);
    Status st = control_.TryWrite(ipc::MessageType::kResumeFrom, 0, resume.SerializeAsString());
    if (st.ok()) {
      resume_pending_ = false;
      last_resume_index_ = applied_;
      last_resume_time_ = Clock::now();
      spdlog::debug("sent kResumeFrom{{{}}}", applied_);
      // The ring may have lost announcements, or raftd restarted: repeat every kept one.
      snapshot_ready_owed_.clear();
      if (snapshots_ != nullptr) {
        for (const SnapshotInfo& info : snapshots_->all()) snapshot_ready_owed_.push_back(info.index);
      }
    }
  }
  while (!snapshot_ready_owed_.empty() && snapshots_ != nullptr) {
    const uint64_t index = snapshot_ready_owed_.front();
    const SnapshotInfo* info = nullptr;
    for (const SnapshotInfo& s : snapshots_->all()) {
      if (s.index == index) info = &s;
    }
    if (info != nullptr) {
      internal::SnapshotReady ready;
      ready.set_index(info->index);
      ready.set_term(info->term);
      ready.set_dir(info->dir);
      if (!control_.TryWrite(ipc::MessageType::kSnapshotReady, info->index,
                             ready.SerializeAsString())
               .ok()) {
        break;  // ring full: next turn
      }
    }
    snapshot_ready_owed_.erase(snapshot_ready_owed_.begin());  // sent, or pruned meanwhile
  }
  if (durable_pending_) {
    internal::DurableApplied durable;
    durable.set_index(durable_);
    Status st =
        control_.TryWrite(ipc::MessageType::kDurableApplied, 0, durable.SerializeAsString());
    if (st.ok()) durable_pending_ = false;
  }
}

}  // namespace rusd::stored
