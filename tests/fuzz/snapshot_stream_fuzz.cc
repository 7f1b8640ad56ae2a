// Fuzz target: a snapshot stream as a peer (anyone who reaches --listen-peer-urls) sends it,
// through SnapshotTransfer's receiver (raftd/snapshot/snapshot_transfer.h): the header,
// file, chunk, file-end and done frames. The whole input is handed over as the bytes the
// transport already read, on a socket whose other end has shut down its writing side, so
// the stream ends where the input does.
//
// The receiver is cluster 0x1 member 0x2 (inputs must match to get past the header).
// Invariants: no crash; a received snapshot only ever lands inside snap_dir.
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "raftd/snapshot/snapshot_transfer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rusd::fuzz::ScratchDir scratch;
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);  // one warning per refused stream otherwise
    return true;
  }();
  (void)quiet;
  scratch.Clear();
  const std::string snap_dir = scratch.path() + "/snap";
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) std::abort();
  ::shutdown(fds[1], SHUT_WR);
  std::vector<rusd::raft::Message> received;
  {
    rusd::raftd::SnapshotTransferOptions options;
    options.cluster_id = 1;
    options.member_id = 2;
    options.snap_dir = snap_dir;
    rusd::raftd::SnapshotTransfer transfer(std::move(options));
    transfer.Accept(fds[0], std::string(reinterpret_cast<const char*>(data), size));
    // The destructor waits for the receiving thread; the stream ends with the input.
  }
  ::close(fds[1]);
  // Nothing escapes the scratch directory: only snap/ (and what is under it) exists.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(scratch.path(), ec)) {
    RUSD_FUZZ_CHECK(e.path().filename() == "snap");
  }
  return 0;
}
