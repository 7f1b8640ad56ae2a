// Fuzz target: a snapshot stream as a peer (anyone who reaches --listen-peer-urls) sends it,
// through SnapshotTransfer's receiver (raftd/snapshot/snapshot_transfer.h): the header,
// file, chunk, file-end and done frames. The whole input is handed over as the bytes the
// transport already read, on a socket whose other end has shut down its writing side, so
// the stream ends where the input does.
//
// The receiver is cluster 0x1 member 0x2 (inputs must match to get past the header).
// Invariants: no crash; nothing is written outside snap_dir; a snapshot the receiver
// accepts holds every byte its File frames announced (no file left unfinished).
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "raftd/snapshot/snapshot_transfer.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// The bytes the File frames before the first Done frame announce, read with the framing
// of snapshot_transfer.h (u32 length | u8 kind | body; File body: string name | u64 size).
uint64_t AnnouncedBytes(std::string_view in) {
  uint64_t total = 0;
  while (in.size() >= 5) {
    uint32_t len = 0;
    std::memcpy(&len, in.data(), 4);
    if (len < 1 || in.size() - 4 < len) break;
    const auto kind = static_cast<uint8_t>(in[4]);
    std::string_view body = in.substr(5, len - 1);
    in.remove_prefix(4 + static_cast<size_t>(len));
    if (kind == 20) break;
    uint32_t name_len = 0;
    if (kind != 17 || body.size() < 4) continue;
    std::memcpy(&name_len, body.data(), 4);
    if (body.size() - 4 < name_len || body.size() - 4 - name_len < 8) continue;
    uint64_t size = 0;
    std::memcpy(&size, body.data() + 4 + name_len, 8);
    total += size;
  }
  return total;
}

}  // namespace

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
  for (const auto& e : std::filesystem::directory_iterator(snap_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with("recv-") || name.ends_with(".tmp")) continue;
    uint64_t on_disk = 0;
    for (const auto& f : std::filesystem::directory_iterator(e.path(), ec)) {
      on_disk += f.file_size(ec);
    }
    RUSD_FUZZ_CHECK(on_disk == AnnouncedBytes(std::string_view(
                                   reinterpret_cast<const char*>(data), size)));
  }
  return 0;
}
