// rusd-raftd: the Raft and WAL process of a rusd node (see raftd/README.md).
//
// Exit codes: 0 after SIGTERM/SIGINT, 1 for bad flags or a missing segment, 2 when the WAL
// cannot be recovered or written (the log line says which file and offset).
#include <signal.h>
#include <spdlog/spdlog.h>

#include <ctime>

#include "common/component_flags.h"
#include "common/logging.h"
#include "ipc/component_context.h"
#include "raftd/raft_process.h"
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

bool StopRequested(const sigset_t& set) {
  struct timespec zero = {0, 0};
  int sig = sigtimedwait(&set, nullptr, &zero);
  if (sig > 0) {
    spdlog::info("received signal {}, stopping", sig);
    return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t stop_signals = BlockStopSignals();  // before any thread starts
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
  rusd::raft::RecoveredState state{recovered->hard_state, recovered->prev_index,
                                   recovered->prev_term, std::move(recovered->entries)};
  rusd::raftd::RaftProcess process((*ctx)->segment(), **wal, std::move(state), options);
  spdlog::info("rusd-raftd up: member {:016x}, epoch {}, tick {} ms, election {} ticks",
               options.member_id, options.epoch, hb, options.election_ticks);

  st = process.Run([&stop_signals] { return StopRequested(stop_signals); });
  if (!st.ok()) {
    spdlog::critical("unrecoverable WAL error, exiting: {}", st.ToString());
    return kExitWal;
  }
  spdlog::info("rusd-raftd stopped cleanly");
  return 0;
}
