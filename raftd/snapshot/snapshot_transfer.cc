#include "raftd/snapshot/snapshot_transfer.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "common/durable_file.h"
#include "common/url.h"
#include "common/crc32c.h"
#include "raftd/wal/wal_format.h"

namespace rusd::raftd {
namespace fs = std::filesystem;
namespace {

// 2: the header carries the member list. A sender with no list writes version 1, which a
// receiver that predates version 2 still reads (a rolling upgrade's old followers).
constexpr uint8_t kWireVersion = 2;
enum Kind : uint8_t { kHeader = 16, kFile = 17, kChunk = 18, kFileEnd = 19, kDone = 20, kAck = 21 };
constexpr uint32_t kMaxFrame = 64u << 20;
constexpr int kIoTimeoutSeconds = 30;

std::string Errno(const std::string& what) {
  std::string s = what;
  s.append(": ").append(std::strerror(errno));
  return s;
}

void PutString(std::string* out, const std::string& s) {
  wal::AppendU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

// Bounds-checked reading of a frame body.
struct BodyReader {
  std::string_view b;
  bool ok = true;
  bool Need(size_t n) {
    if (b.size() < n) ok = false;
    return ok;
  }
  uint8_t U8() {
    if (!Need(1)) return 0;
    uint8_t v = static_cast<uint8_t>(b[0]);
    b.remove_prefix(1);
    return v;
  }
  uint32_t U32() {
    if (!Need(4)) return 0;
    uint32_t v = wal::GetU32(b.data());
    b.remove_prefix(4);
    return v;
  }
  uint64_t U64() {
    if (!Need(8)) return 0;
    uint64_t v = wal::GetU64(b.data());
    b.remove_prefix(8);
    return v;
  }
  std::string String() {
    uint32_t n = U32();
    if (!Need(n)) return {};
    std::string s(b.substr(0, n));
    b.remove_prefix(n);
    return s;
  }
};

Status WriteAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Unavailable(Errno("snapshot stream write"));
    }
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status WriteFrame(int fd, uint8_t kind, const std::string& body) {
  std::string frame;
  frame.reserve(5 + body.size());
  wal::AppendU32(&frame, static_cast<uint32_t>(body.size() + 1));
  frame.push_back(static_cast<char>(kind));
  frame.append(body);
  return WriteAll(fd, frame);
}

// Reads frames from a blocking socket, starting with bytes already read.
class FrameReader {
 public:
  FrameReader(int fd, std::string head) : fd_(fd), buf_(std::move(head)) {}
  Status Next(uint8_t* kind, std::string* body) {
    RUSD_RETURN_IF_ERROR(Fill(5));
    const uint32_t len = wal::GetU32(buf_.data());
    if (len < 1 || len > kMaxFrame) {
      return Status::InvalidArgument("snapshot frame length " + std::to_string(len));
    }
    RUSD_RETURN_IF_ERROR(Fill(4 + static_cast<size_t>(len)));
    *kind = static_cast<uint8_t>(buf_[4]);
    body->assign(buf_, 5, len - 1);
    buf_.erase(0, 4 + static_cast<size_t>(len));
    return Status::Ok();
  }

 private:
  Status Fill(size_t n) {
    char tmp[64 * 1024];
    while (buf_.size() < n) {
      ssize_t r = ::recv(fd_, tmp, sizeof tmp, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::Unavailable(Errno("snapshot stream read"));
      if (r == 0) return Status::Unavailable("snapshot stream closed early");
      buf_.append(tmp, static_cast<size_t>(r));
    }
    return Status::Ok();
  }
  int fd_;
  std::string buf_;
};

void SetTimeouts(int fd) {
  timeval tv{kIoTimeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// "http://host:port" -> connected blocking socket.
Result<int> Dial(const std::string& url) {
  Result<Url> parsed = ParsePeerUrl(url);
  if (!parsed.ok()) return parsed.status();
  const std::string& host = parsed->host;
  const std::string& port = parsed->port;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return Status::Unavailable("cannot resolve " + url);
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(res);
    return Status::Internal(Errno("socket"));
  }
  SetTimeouts(fd);
  const int rc = ::connect(fd, res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  if (rc != 0) {
    Status st = Status::Unavailable(Errno("connect " + url));
    ::close(fd);
    return st;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool ValidFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// Where a stream writes before its data is verified: never a "*.tmp" name, which stored
// removes as its own leftovers whenever it starts (it restarts after every install).
constexpr char kPartialSuffix[] = ".partial";

// The index of a "recv-<index:016x>" directory or of its partial copy; nullopt otherwise.
std::optional<uint64_t> ReceivedIndexOf(const std::string& name) {
  constexpr size_t kPrefix = 5, kHex = 16;
  if (!name.starts_with("recv-") || name.size() < kPrefix + kHex) return std::nullopt;
  const std::string_view rest = std::string_view(name).substr(kPrefix + kHex);
  if (!rest.empty() && rest != kPartialSuffix) return std::nullopt;
  uint64_t index = 0;
  for (char c : std::string_view(name).substr(kPrefix, kHex)) {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    index = index << 4 | static_cast<uint64_t>(digit);
  }
  return index;
}

}  // namespace

std::string ReceivedSnapshotDir(const std::string& snap_dir, uint64_t index) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "/recv-%016" PRIx64, index);
  return snap_dir + buf;
}

struct SnapshotTransfer::Impl {
  SnapshotTransferOptions options;
  std::mutex mu;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
  };
  std::list<Worker> threads;              // under mu
  std::set<uint64_t> sending;             // peers with a transfer in flight, under mu
  // Indexes with a stream in flight or their complete copy being removed, under mu.
  std::set<uint64_t> receiving;
  std::set<uint64_t> complete;            // complete recv-<index> directories, under mu
  std::set<int> open_fds;                 // sockets in use, shut down at destruction
  std::vector<std::pair<uint64_t, bool>> reports;
  std::vector<Received> received;
  std::atomic<bool> events{false};
  std::atomic<bool> stopping{false};

  // Joins workers that finished (with mu held: a finished worker no longer takes it).
  void ReapFinished() {
    for (auto it = threads.begin(); it != threads.end();) {
      if (it->done->load(std::memory_order_acquire)) {
        it->thread.join();
        it = threads.erase(it);
      } else {
        ++it;
      }
    }
  }

  void Notify() {
    events.store(true, std::memory_order_release);
    if (options.on_event) options.on_event();
  }
  void TrackFd(int fd, bool add) {
    std::lock_guard lock(mu);
    if (add) {
      open_fds.insert(fd);
    } else {
      open_fds.erase(fd);
    }
  }

  Status SendFiles(int fd, const raft::Message& m, const std::string& dir,
                   const std::string& members) {
    std::string body;
    const uint8_t version = members.empty() ? 1 : kWireVersion;
    body.push_back(static_cast<char>(version));
    wal::AppendU64(&body, options.cluster_id);
    wal::AppendU64(&body, options.member_id);
    wal::AppendU64(&body, m.to);
    wal::AppendU64(&body, m.term);
    wal::AppendU64(&body, m.snapshot.index);
    wal::AppendU64(&body, m.snapshot.term);
    wal::AppendU32(&body, static_cast<uint32_t>(m.snapshot.conf.voters.size()));
    for (uint64_t v : m.snapshot.conf.voters) wal::AppendU64(&body, v);
    wal::AppendU32(&body, static_cast<uint32_t>(m.snapshot.conf.learners.size()));
    for (uint64_t v : m.snapshot.conf.learners) wal::AppendU64(&body, v);
    if (version >= 2) PutString(&body, members);
    RUSD_RETURN_IF_ERROR(WriteFrame(fd, kHeader, body));

    // Open every file first: stored may prune this checkpoint while it streams (it keeps
    // the newest two), and an open descriptor keeps a file's data whatever happens to its
    // name, so the follower still gets one consistent checkpoint.
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& de : fs::directory_iterator(dir, ec)) {
      if (de.is_regular_file()) names.push_back(de.path().filename().string());
    }
    if (ec) return Status::NotFound("snapshot " + dir + ": " + ec.message());
    std::sort(names.begin(), names.end());
    struct OpenFile {
      std::string name;
      int fd = -1;
      uint64_t size = 0;
    };
    std::vector<OpenFile> files;
    auto close_all = [&files] {
      for (OpenFile& f : files) ::close(f.fd);
    };
    for (const std::string& name : names) {
      const std::string path = dir + "/" + name;
      int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (in < 0) {
        close_all();
        return Status::NotFound(Errno("open " + path));
      }
      struct stat st {};
      ::fstat(in, &st);
      files.push_back(OpenFile{name, in, static_cast<uint64_t>(st.st_size)});
    }
    std::string chunk(options.chunk_bytes, '\0');
    Status s = Status::Ok();
    for (const OpenFile& f : files) {
      body.clear();
      PutString(&body, f.name);
      wal::AppendU64(&body, f.size);
      s = WriteFrame(fd, kFile, body);
      uint32_t file_crc = 0;
      uint64_t sent = 0;
      while (s.ok() && sent < f.size) {
        ssize_t n = ::read(f.fd, chunk.data(), std::min<uint64_t>(chunk.size(), f.size - sent));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          s = Status::IoError(Errno("read " + dir + "/" + f.name));
          break;
        }
        const size_t len = static_cast<size_t>(n);
        file_crc = Crc32cExtend(file_crc, chunk.data(), len);
        body.clear();
        wal::AppendU32(&body, Crc32c(chunk.data(), len));
        body.append(chunk.data(), len);
        s = WriteFrame(fd, kChunk, body);
        sent += len;
      }
      if (!s.ok()) break;
      body.clear();
      wal::AppendU32(&body, file_crc);
      s = WriteFrame(fd, kFileEnd, body);
      if (!s.ok()) break;
    }
    close_all();
    RUSD_RETURN_IF_ERROR(s);
    RUSD_RETURN_IF_ERROR(WriteFrame(fd, kDone, ""));
    FrameReader reader(fd, "");
    uint8_t kind = 0;
    RUSD_RETURN_IF_ERROR(reader.Next(&kind, &body));
    BodyReader r{body};
    const bool ok = kind == kAck && r.U8() == 1;
    const std::string error = r.String();
    if (!ok) return Status::Unavailable("follower refused the snapshot: " + error);
    return Status::Ok();
  }

  void RunSend(raft::Message m, std::string dir, const std::string& members) {
    const uint64_t to = m.to;
    Status st = Status::Unavailable("no peer URL for member");
    std::vector<std::string> urls;
    {
      std::lock_guard lock(mu);  // UpdatePeers may change the list meanwhile
      for (const auto& [id, peer_urls] : options.peers) {
        if (id == to) urls = peer_urls;
      }
    }
    for (const std::string& url : urls) {
      Result<int> fd = Dial(url);
      if (!fd.ok()) {
        st = fd.status();
        continue;
      }
      TrackFd(*fd, true);
      const auto start = std::chrono::steady_clock::now();
      st = stopping.load() ? Status::Unavailable("stopping") : SendFiles(*fd, m, dir, members);
      TrackFd(*fd, false);
      ::close(*fd);
      if (st.ok()) {
        spdlog::info("snapshot {} (index {}) streamed to {:x} in {} ms", dir, m.snapshot.index,
                     to,
                     std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - start)
                         .count());
      }
      break;
    }
    if (!st.ok()) spdlog::warn("snapshot to {:x} failed: {}", to, st.ToString());
    {
      std::lock_guard lock(mu);
      sending.erase(to);
      reports.emplace_back(to, st.ok());
    }
    Notify();
  }

  Status Receive(int fd, std::string head, Received* out) {
    FrameReader reader(fd, std::move(head));
    uint8_t kind = 0;
    std::string body;
    RUSD_RETURN_IF_ERROR(reader.Next(&kind, &body));
    if (kind != kHeader) return Status::InvalidArgument("snapshot stream without a header");
    BodyReader r{body};
    const uint8_t version = r.U8();
    const uint64_t cluster = r.U64();
    raft::Message m;
    m.type = raft::MessageType::kSnapshot;
    m.from = r.U64();
    m.to = r.U64();
    m.term = r.U64();
    m.snapshot.index = r.U64();
    m.snapshot.term = r.U64();
    uint32_t n = r.U32();
    for (uint32_t i = 0; i < n && r.ok; ++i) m.snapshot.conf.voters.push_back(r.U64());
    n = r.U32();
    for (uint32_t i = 0; i < n && r.ok; ++i) m.snapshot.conf.learners.push_back(r.U64());
    std::string members;
    if (version >= 2) members = r.String();
    if (!r.ok || !r.b.empty() || version < 1 || version > kWireVersion) {
      return Status::InvalidArgument("bad snapshot header");
    }
    if (cluster != options.cluster_id || m.to != options.member_id) {
      return Status::FailedPrecondition(fmt::format(
          "snapshot for cluster {:x} member {:x} refused (this is member {:x} of cluster {:x}: "
          "cluster ID or member ID mismatch)",
          cluster, m.to, options.member_id, options.cluster_id));
    }
    // One stream per index at a time: they would share the temporary directory, and one
    // could rename the other's half-written files into place (a leader that reconnects
    // and re-sends, or a new leader, while the first stream is still open). The second is
    // refused; its leader reports the snapshot failed and Raft retries after the first.
    const uint64_t index = m.snapshot.index;
    {
      std::lock_guard lock(mu);
      if (!receiving.insert(index).second) {
        return Status::Unavailable(fmt::format(
            "a snapshot at index {} is already being received; try again later", index));
      }
    }
    struct InFlight {
      Impl* impl;
      uint64_t index;
      ~InFlight() {
        std::lock_guard lock(impl->mu);
        impl->receiving.erase(index);
      }
    } in_flight{this, index};
    const std::string final_dir = ReceivedSnapshotDir(options.snap_dir, index);
    const std::string tmp = final_dir + kPartialSuffix;
    std::error_code ec;
    fs::create_directories(options.snap_dir, ec);
    fs::remove_all(tmp, ec);  // a stream of this index that a crash interrupted
    if (!fs::create_directories(tmp, ec)) return Status::IoError("create " + tmp);
    auto fail = [&](Status s) {
      fs::remove_all(tmp, ec);
      return s;
    };
    int out_fd = -1;
    std::string name;
    uint64_t size = 0;
    uint64_t written = 0;
    uint32_t crc = 0;
    uint64_t files = 0;
    uint64_t bytes = 0;
    for (;;) {
      Status st = reader.Next(&kind, &body);
      if (!st.ok()) {
        if (out_fd >= 0) ::close(out_fd);
        return fail(st);
      }
      BodyReader b{body};
      if (kind == kFile) {
        if (out_fd >= 0) {  // the previous file never got its FileEnd: it is unverified
          ::close(out_fd);
          return fail(Status::InvalidArgument("file " + name + " not finished before the next"));
        }
        name = b.String();
        size = b.U64();
        if (!b.ok || !ValidFileName(name)) return fail(Status::InvalidArgument("bad file name"));
        out_fd = ::open((tmp + "/" + name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                        0600);
        if (out_fd < 0) return fail(Status::IoError(Errno("create " + name)));
        written = 0;
        crc = 0;
      } else if (kind == kChunk) {
        const uint32_t chunk_crc = b.U32();
        if (out_fd < 0 || !b.ok) return fail(Status::InvalidArgument("chunk outside a file"));
        if (Crc32c(b.b.data(), b.b.size()) != chunk_crc) {
          ::close(out_fd);
          return fail(Status::DataLoss("chunk checksum mismatch in " + name));
        }
        if (written + b.b.size() > size ||
            ::write(out_fd, b.b.data(), b.b.size()) != static_cast<ssize_t>(b.b.size())) {
          ::close(out_fd);
          return fail(Status::DataLoss("cannot write " + name));
        }
        crc = Crc32cExtend(crc, b.b.data(), b.b.size());
        written += b.b.size();
      } else if (kind == kFileEnd) {
        const uint32_t file_crc = b.U32();
        if (out_fd < 0) return fail(Status::InvalidArgument("file end outside a file"));
        const bool synced = ::fsync(out_fd) == 0;
        ::close(out_fd);
        out_fd = -1;
        if (!b.ok || file_crc != crc || written != size || !synced) {
          return fail(Status::DataLoss("file " + name + " does not verify"));
        }
        ++files;
        bytes += size;
      } else if (kind == kDone) {
        if (out_fd >= 0) {
          ::close(out_fd);
          return fail(Status::InvalidArgument("stream ended inside a file"));
        }
        // A snapshot is a RocksDB checkpoint: never zero files. Installing an empty
        // directory would make stored open an empty store at `index`, losing the data.
        if (files == 0) {
          return fail(Status::InvalidArgument(
              fmt::format("snapshot stream at index {} has no files", index)));
        }
        break;
      } else {
        if (out_fd >= 0) ::close(out_fd);
        return fail(Status::InvalidArgument("unexpected snapshot frame " + std::to_string(kind)));
      }
    }
    Status st = SyncPath(tmp, true);
    if (!st.ok()) return fail(st);
    if (fs::exists(final_dir, ec)) {
      // An earlier stream delivered this index whole (the name is given only by the rename
      // of a verified, synced copy). stored may be installing it right now (renaming it
      // into place), so it is never replaced: this copy is dropped and the message handed
      // over again (the core ignores a snapshot it already holds).
      fs::remove_all(tmp, ec);
    } else {
      if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
        return fail(Status::IoError(Errno("rename " + tmp)));
      }
      {
        std::lock_guard lock(mu);
        complete.insert(index);
      }
      RUSD_RETURN_IF_ERROR(SyncPath(options.snap_dir, true));
    }
    spdlog::info("received snapshot at index {} from {:x}: {} files, {} bytes", m.snapshot.index,
                 m.from, files, bytes);
    out->message = std::move(m);
    out->members = std::move(members);
    return Status::Ok();
  }

  void RunReceive(int fd, std::string head) {
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    SetTimeouts(fd);
    Received m;
    Status st = Receive(fd, std::move(head), &m);
    std::string ack;
    ack.push_back(st.ok() ? 1 : 0);
    PutString(&ack, st.ok() ? "" : st.message());
    (void)WriteFrame(fd, kAck, ack);
    TrackFd(fd, false);
    ::close(fd);
    if (!st.ok()) {
      spdlog::warn("snapshot stream refused: {}", st.ToString());
      return;
    }
    {
      std::lock_guard lock(mu);
      received.push_back(std::move(m));
    }
    Notify();
  }
};

SnapshotTransfer::SnapshotTransfer(SnapshotTransferOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  // Partial streams a crash interrupted: nothing receives yet, so none is in use. Complete
  // ones are remembered for RemoveReceivedUpTo.
  std::error_code ec;
  for (const auto& de : fs::directory_iterator(impl_->options.snap_dir, ec)) {
    const std::string name = de.path().filename().string();
    const std::optional<uint64_t> index = ReceivedIndexOf(name);
    if (!index) continue;
    if (name.ends_with(kPartialSuffix)) {
      fs::remove_all(de.path(), ec);
    } else {
      impl_->complete.insert(*index);
    }
  }
}

SnapshotTransfer::~SnapshotTransfer() {
  impl_->stopping.store(true);
  std::list<Impl::Worker> threads;
  {
    std::lock_guard lock(impl_->mu);
    for (int fd : impl_->open_fds) ::shutdown(fd, SHUT_RDWR);
    threads.swap(impl_->threads);
  }
  for (Impl::Worker& w : threads) w.thread.join();
}

void SnapshotTransfer::UpdatePeers(
    std::vector<std::pair<uint64_t, std::vector<std::string>>> peers) {
  std::lock_guard lock(impl_->mu);
  impl_->options.peers = std::move(peers);
}

void SnapshotTransfer::Send(raft::Message m, std::string dir, std::string members) {
  std::lock_guard lock(impl_->mu);
  if (impl_->stopping.load() || !impl_->sending.insert(m.to).second) {
    impl_->reports.emplace_back(m.to, false);
    impl_->events.store(true);
    return;
  }
  impl_->ReapFinished();
  Impl::Worker& w = impl_->threads.emplace_back();
  w.thread = std::thread([impl = impl_.get(), done = w.done, m = std::move(m),
                          dir = std::move(dir), members = std::move(members)]() mutable {
    impl->RunSend(std::move(m), std::move(dir), members);
    done->store(true, std::memory_order_release);
  });
}

void SnapshotTransfer::Accept(int fd, std::string head) {
  std::lock_guard lock(impl_->mu);
  if (impl_->stopping.load()) {
    ::close(fd);
    return;
  }
  impl_->open_fds.insert(fd);
  impl_->ReapFinished();
  Impl::Worker& w = impl_->threads.emplace_back();
  w.thread = std::thread(
      [impl = impl_.get(), done = w.done, fd, head = std::move(head)]() mutable {
        impl->RunReceive(fd, std::move(head));
        done->store(true, std::memory_order_release);
      });
}

void SnapshotTransfer::RemoveReceivedUpTo(uint64_t index, std::optional<uint64_t> keep) {
  std::vector<uint64_t> doomed;
  std::lock_guard lock(impl_->mu);
  if (impl_->stopping.load()) return;
  for (auto it = impl_->complete.begin(); it != impl_->complete.end() && *it <= index;) {
    // A stream of that index in flight hands it over again when it ends: removed on a
    // later call instead.
    if (*it == keep || impl_->receiving.contains(*it)) {
      ++it;
      continue;
    }
    impl_->receiving.insert(*it);  // refuses its streams until the copy is gone
    doomed.push_back(*it);
    it = impl_->complete.erase(it);
  }
  if (doomed.empty()) return;
  impl_->ReapFinished();
  Impl::Worker& w = impl_->threads.emplace_back();
  w.thread = std::thread([impl = impl_.get(), done = w.done, index,
                          doomed = std::move(doomed)] {
    for (uint64_t i : doomed) {
      const std::string dir = ReceivedSnapshotDir(impl->options.snap_dir, i);
      spdlog::info("removing received snapshot {} (the store is at index {})", dir, index);
      std::error_code ec;
      fs::remove_all(dir, ec);
      if (ec) spdlog::warn("cannot remove {}: {}", dir, ec.message());
      std::lock_guard lock(impl->mu);
      impl->receiving.erase(i);
    }
    done->store(true, std::memory_order_release);
  });
}

void SnapshotTransfer::TakeReports(std::vector<std::pair<uint64_t, bool>>* out) {
  std::lock_guard lock(impl_->mu);
  for (auto& r : impl_->reports) out->push_back(r);
  impl_->reports.clear();
  impl_->events.store(!impl_->received.empty());
}

void SnapshotTransfer::TakeReceived(std::vector<Received>* out) {
  std::lock_guard lock(impl_->mu);
  for (auto& m : impl_->received) out->push_back(std::move(m));
  impl_->received.clear();
  impl_->events.store(!impl_->reports.empty());
}

bool SnapshotTransfer::HasEvents() const { return impl_->events.load(std::memory_order_acquire); }

}  // namespace rusd::raftd
