#include "frontend/ring_client.h"

#include <spdlog/spdlog.h>

#include <array>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "frontend/connection_cork.h"
#include "frontend/etcd_errors.h"
#include "frontend/grpc_status.h"
#include "ipc/message_type.h"
#include "ipc/metrics_area.h"
#include "ipc/request_trailer.h"
#include "ipc/ring.h"
#include "ipc/segment.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "rusd/internal.pb.h"

namespace rusd::frontend {
namespace {

using Clock = std::chrono::steady_clock;
using ipc::MessageType;

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// How far along a pending request is; decides what a re-send writes.
enum class Stage : uint8_t {
  kProposed,           // kPropose written; waits for stored's kResult (never re-sent)
  kAwaitingReadIndex,  // kReadIndex written; waits for raftd's kReadIndexReply
  kReading,            // kRangeRead written; waits for stored's kResult
};

struct Pending {
  Stage stage = Stage::kProposed;
  Clock::time_point deadline;
  RequestCallback done;
  std::string range_request;  // reads: the serialized RangeRequest, kept for re-sends
  uint64_t read_index = 0;    // reads: the minimum applied index stored must reach
  ipc::GaugeHold in_flight;   // proposals: etcd_server_proposals_pending while it waits
  // A Propose (not a SubmitToRaft): counted in etcd_server_proposals_failed_total if it
  // times out or raftd refuses it. Counted here only, once per request: raftd does not
  // count what it answers (the answer may come after this deadline).
  bool is_proposal = false;
  // reads: the reads-ring frame to send. A kRangeRead, or another query, goes in a
  // RangeRead envelope {read_index, range_request}; a raw one (ReadStore) as range_request.
  MessageType read_type = MessageType::kRangeRead;
  bool raw_payload = false;
};

// Pending requests by id, sharded so that gRPC threads registering requests rarely contend
// with each other or with the reply thread.
class PendingTable {
 public:
  static constexpr size_t kShards = 32;

  void Insert(uint64_t id, Pending p) {
    Shard& s = shard(id);
    std::lock_guard lock(s.mu);
    if (s.spare.empty()) {
      s.map.emplace(id, std::move(p));
      return;
    }
    Map::node_type node = std::move(s.spare.back());
    s.spare.pop_back();
    node.key() = id;
    node.mapped() = std::move(p);
    s.map.insert(std::move(node));  // ids are unique; a duplicate is dropped, as by emplace
  }

  // Removes and returns the request, if still pending.
  std::optional<Pending> Take(uint64_t id) {
    Shard& s = shard(id);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(id);
    if (it == s.map.end()) return std::nullopt;
    Pending p = std::move(it->second);
    if (s.spare.size() < kSpareNodes) {
      Map::node_type node = s.map.extract(it);
      node.mapped() = Pending();  // holds nothing while spare
      s.spare.push_back(std::move(node));
    } else {
      s.map.erase(it);
    }
    return p;
  }

  // Runs fn(Pending&) under the shard lock if `id` is pending; returns whether it was.
  template <typename Fn>
  bool With(uint64_t id, Fn&& fn) {
    Shard& s = shard(id);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(id);
    if (it == s.map.end()) return false;
    fn(it->second);
    return true;
  }

  // Calls fn(id, Pending&) for every pending request, one shard lock at a time.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (Shard& s : shards_) {
      std::lock_guard lock(s.mu);
      for (auto& [id, p] : s.map) fn(id, p);
    }
  }

  // Removes the requests whose deadline passed (or all, if `all`), returning them.
  std::vector<Pending> TakeExpired(Clock::time_point now, bool all) {
    std::vector<Pending> out;
    for (Shard& s : shards_) {
      std::lock_guard lock(s.mu);
      for (auto it = s.map.begin(); it != s.map.end();) {
        if (all || it->second.deadline <= now) {
          out.push_back(std::move(it->second));
          it = s.map.erase(it);
        } else {
          ++it;
        }
      }
    }
    return out;
  }

  size_t Size() {
    size_t n = 0;
    for (Shard& s : shards_) {
      std::lock_guard lock(s.mu);
      n += s.map.size();
    }
    return n;
  }

 private:
  using Map = std::unordered_map<uint64_t, Pending>;
  // Map nodes of taken requests, reused by the next inserts: a node is allocated on the
  // thread that registers a request and was freed on the reply thread, which glibc's
  // per-thread caches do not serve.
  static constexpr size_t kSpareNodes = 16;
  struct alignas(64) Shard {
    std::mutex mu;
    Map map;
    std::vector<Map::node_type> spare;
  };
  // Request ids are consecutive: the low bits spread them evenly.
  Shard& shard(uint64_t id) { return shards_[id % kShards]; }
  std::array<Shard, kShards> shards_;
};

}  // namespace

std::string EncodeRangeRead(uint64_t min_applied_index, std::string_view range_request) {
  std::string out;
  out.reserve(range_request.size() + 24);
  if (min_applied_index != 0) {
    out.push_back(0x08);  // field 1 (min_applied_index), varint
    AppendVarint(&out, min_applied_index);
  }
  out.push_back(0x12);  // field 2 (request), length-delimited
  AppendVarint(&out, range_request.size());
  out.append(range_request);
  return out;
}

struct RingClient::Impl {
  Impl(ipc::Segment& seg, const RingClientOptions& opts)
      : segment(seg),
        options(opts),
        proposals(seg, ipc::RingId::kProposals, opts.own_epoch),
        reads(seg, ipc::RingId::kReads, opts.own_epoch),
        raft_replies(seg, ipc::RingId::kRaftReplies),
        store_replies(seg, ipc::RingId::kStoreReplies) {}

  void Run();
  // `from_raftd`: m came on raft-replies (a kError there is raftd refusing the request).
  void Handle(ipc::Message& m, bool from_raftd);
  void OnReadIndexReply(uint64_t id, const std::string& payload);
  void CheckEpochs();
  void RetryBacklog();
  void SendRangeRead(uint64_t id);
  void SendReadIndex(uint64_t id);
  // Fails the requests past their deadline (all: every one) with `why`; `count_failed`:
  // proposals among them count as failed (a timeout; not a shutdown: etcd's ErrStopped
  // path does not count).
  void FailExpired(bool all, const Status& why, bool count_failed);
  // Registers read `id` and sends its first frame; `raw`: `request` is the whole reads-ring
  // payload, else it goes in a RangeRead envelope {min_applied_index, request}.
  void StartRead(uint64_t id, MessageType type, std::string request, bool raw,
                 bool linearizable, RequestCallback done);

  ipc::Segment& segment;
  const RingClientOptions options;
  ipc::RingWriter proposals;
  ipc::RingWriter reads;
  PendingTable pending;

  std::atomic<uint64_t> leader_id{0};
  std::atomic<uint64_t> leader_term{0};
  mutable std::mutex members_mu;
  std::string members;  // kMemberList payload, under members_mu
  std::atomic<uint64_t> members_version{0};  // bumped after `members` changes
  std::atomic<bool> is_learner{false};  // this member is a learner in `members`
  std::atomic<bool> stop{false};
  std::atomic<bool> stopped{false};  // Stop() ran: requests fail at once
  std::thread thread;
  // The reply thread's id, set by Run before it handles anything. A request issued from a
  // callback (on the reply thread) must not wait for ring space: the reply thread is what
  // frees it, by consuming the replies raftd and stored are waiting to write.
  std::atomic<std::thread::id> reply_thread{};
  bool OnReplyThread() const {
    return reply_thread.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }

  // Registers a request, unless the client is stopped; then `done` fails at once. False if
  // the request must not be written.
  bool Register(uint64_t id, Pending p);
  // Fails `id` with `why` if it is still pending.
  void Fail(uint64_t id, const Status& why);

  // Owned by the reply thread.
  ipc::RingReader raft_replies;
  ipc::RingReader store_replies;
  uint64_t raftd_epoch = 0;
  uint64_t stored_epoch = 0;
  struct Retry {
    Stage stage;  // kAwaitingReadIndex: re-send kReadIndex; kReading: re-send kRangeRead
    uint64_t id;
  };
  std::deque<Retry> backlog;
  // A callback corked the client connections (CorkConnections): Run uncorks them at the
  // end of the current batch of replies, as it does those it corked itself.
  bool callback_corked = false;
  void CorkConnections() {
    if (options.cork == nullptr) return;
    if (callback_corked) {
      options.cork->Uncork();  // again: what they queued leaves first
      options.cork->Cork();
    } else if (!options.cork->batch_open()) {
      options.cork->Cork();
    }
    callback_corked = true;
    options.cork->TouchAll();
  }
};

void RingClient::Impl::Run() {
  reply_thread.store(std::this_thread::get_id(), std::memory_order_relaxed);
  raftd_epoch = segment.component(ipc::Component::kRaftd).epoch.load(std::memory_order_acquire);
  stored_epoch = segment.component(ipc::Component::kStored).epoch.load(std::memory_order_acquire);
  std::array<ipc::RingReader*, 2> readers = {&raft_replies, &store_replies};
  ipc::Message m;
  Clock::time_point next_sweep = Clock::now();
  while (!stop.load(std::memory_order_acquire)) {
    // Bounded batches so that one busy ring cannot starve the other or the epoch checks.
    int handled = 0;
    bool corked = false;
    // The first reply of a batch leaves at once (a lone reply gains nothing from corking);
    // from the second on, the connections stay corked until the batch is done.
    auto handle = [&](bool from_raftd) {
      if (handled == 1 && options.cork != nullptr) {
        options.cork->Cork();
        corked = true;
      }
      Handle(m, from_raftd);
      ++handled;
    };
    for (int i = 0; i < 256 && raft_replies.TryRead(&m); ++i) handle(true);
    for (int i = 0; i < 256 && store_replies.TryRead(&m); ++i) handle(false);
    if (corked || callback_corked) options.cork->Uncork();
    callback_corked = false;
    CheckEpochs();
    if (!backlog.empty()) RetryBacklog();
    Clock::time_point now = Clock::now();
    if (now >= next_sweep) {
      FailExpired(false, etcd_errors::RequestTimedOut(), /*count_failed=*/true);
      if (options.cork != nullptr) options.cork->Prune();
      next_sweep = now + std::chrono::milliseconds(50);
    }
    if (options.batch_hook != nullptr) options.batch_hook->ReplyBatchEnd();
    if (handled == 0) {
      auto wait = backlog.empty() ? std::chrono::milliseconds(50) : std::chrono::milliseconds(1);
      ipc::WaitForMessages(segment, readers, wait);
    }
  }
}

void RingClient::Impl::Handle(ipc::Message& m, bool from_raftd) {
  switch (m.type) {
    case MessageType::kResult: {
      std::optional<Pending> p = pending.Take(m.id);
      if (!p) return;  // not ours (an older frontend's) or already timed out
      p->done(Status::Ok(), std::move(m.payload));
      return;
    }
    case MessageType::kError: {
      std::optional<Pending> p = pending.Take(m.id);
      if (!p) return;
      // raftd refused the proposal (no leader, context deadline exceeded, ...); stored's
      // errors are the request's own outcome (e.g. compacted), not a failed proposal.
      if (from_raftd && p->is_proposal) segment.metrics().Add(ipc::Metric::kProposalsFailed);
      internal::ErrorReply err;
      if (!err.ParseFromString(m.payload)) {
        p->done(Status::Internal("rusd: malformed error reply"), std::string());
        return;
      }
      p->done(StatusFromWire(err.code(), std::move(*err.mutable_message())), std::string());
      return;
    }
    case MessageType::kReadIndexReply:
      OnReadIndexReply(m.id, m.payload);
      return;
    case MessageType::kLeaderInfo: {
      internal::LeaderInfo info;
      if (!info.ParseFromString(m.payload)) return;
      leader_id.store(info.leader_id(), std::memory_order_relaxed);
      leader_term.store(info.term(), std::memory_order_relaxed);
      return;
    }
    case MessageType::kMemberList: {
      etcdserverpb::MemberListResponse list;
      if (list.ParseFromString(m.payload)) {
        bool learner = false;
        for (const auto& member : list.members()) {
          learner |= member.id() == options.member_id && member.islearner();
        }
        is_learner.store(learner, std::memory_order_relaxed);
      }
      std::lock_guard lock(members_mu);
      members = std::move(m.payload);
      members_version.fetch_add(1, std::memory_order_release);
      return;
    }
    default:
      spdlog::debug("dropping unexpected frame type {} id {}",
                    static_cast<int>(m.type), m.id);
      return;
  }
}

void RingClient::Impl::OnReadIndexReply(uint64_t id, const std::string& payload) {
  internal::ReadIndexReply reply;
  if (!reply.ParseFromString(payload)) return;
  bool advanced = false;
  pending.With(id, [&](Pending& p) {
    if (p.stage != Stage::kAwaitingReadIndex) return;  // a duplicate reply
    p.stage = Stage::kReading;
    p.read_index = reply.read_index();
    advanced = true;
  });
  if (advanced) SendRangeRead(id);
}

// Writes the kRangeRead of pending read `id` without blocking; queues it on failure.
void RingClient::Impl::SendRangeRead(uint64_t id) {
  std::string payload;
  MessageType type = MessageType::kRangeRead;
  bool found = pending.With(id, [&](Pending& p) {
    if (p.stage != Stage::kReading) return;
    type = p.read_type;
    payload = p.raw_payload ? p.range_request : EncodeRangeRead(p.read_index, p.range_request);
  });
  if (!found || payload.empty()) return;
  if (!reads.TryWrite(type, id, payload).ok()) {
    backlog.push_back({Stage::kReading, id});
  }
}

void RingClient::Impl::SendReadIndex(uint64_t id) {
  if (!proposals.TryWrite(MessageType::kReadIndex, id, std::string_view()).ok()) {
    backlog.push_back({Stage::kAwaitingReadIndex, id});
  }
}

void RingClient::Impl::CheckEpochs() {
  uint64_t r = segment.component(ipc::Component::kRaftd).epoch.load(std::memory_order_acquire);
  uint64_t s = segment.component(ipc::Component::kStored).epoch.load(std::memory_order_acquire);
  if (r != raftd_epoch) {
    raftd_epoch = r;
    std::vector<uint64_t> ids;
    pending.ForEach([&](uint64_t id, Pending& p) {
      if (p.stage == Stage::kAwaitingReadIndex) ids.push_back(id);
    });
    spdlog::info("raftd epoch is now {}; re-sending {} read-index requests", r,
                 ids.size());
    for (uint64_t id : ids) SendReadIndex(id);
  }
  if (s != stored_epoch) {
    stored_epoch = s;
    std::vector<uint64_t> ids;
    pending.ForEach([&](uint64_t id, Pending& p) {
      if (p.stage == Stage::kReading) ids.push_back(id);
    });
    spdlog::info("stored epoch is now {}; re-sending {} reads", s, ids.size());
    for (uint64_t id : ids) SendRangeRead(id);
  }
}

void RingClient::Impl::RetryBacklog() {
  std::deque<Retry> todo;
  todo.swap(backlog);
  for (const Retry& r : todo) {
    bool still = false;
    pending.With(r.id, [&](Pending& p) { still = p.stage == r.stage; });
    if (!still) continue;
    if (r.stage == Stage::kReading) {
      SendRangeRead(r.id);
    } else {
      SendReadIndex(r.id);
    }
  }
}

void RingClient::Impl::FailExpired(bool all, const Status& why, bool count_failed) {
  std::vector<Pending> expired = pending.TakeExpired(Clock::now(), all);
  for (Pending& p : expired) {
    // etcd counts a proposal that timed out as failed.
    if (count_failed && p.is_proposal) segment.metrics().Add(ipc::Metric::kProposalsFailed);
    p.done(why, std::string());
  }
}

RingClient::RingClient(ipc::Segment& segment, const RingClientOptions& options)
    : impl_(std::make_unique<Impl>(segment, options)),
      options_(options),
      ids_(options.member_id,
           static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count())) {}

bool RingClient::Impl::Register(uint64_t id, Pending p) {
  if (stopped.load(std::memory_order_seq_cst)) {
    p.done(etcd_errors::ServerStopped(), std::string());
    return false;
  }
  pending.Insert(id, std::move(p));
  // Stop() may have swept the table between the check above and the insert: look again
  // (seq_cst on both sides: either its sweep saw our entry, or we see its flag).
  if (stopped.load(std::memory_order_seq_cst)) {
    Fail(id, etcd_errors::ServerStopped());
    return false;
  }
  return true;
}

void RingClient::Impl::Fail(uint64_t id, const Status& why) {
  std::optional<Pending> p = pending.Take(id);
  if (p) p->done(why, std::string());
}

RingClient::~RingClient() { Stop(); }

void RingClient::Stop() {
  impl_->stopped.store(true, std::memory_order_seq_cst);
  impl_->stop.store(true, std::memory_order_release);
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->FailExpired(true, etcd_errors::ServerStopped(), /*count_failed=*/false);
}

void RingClient::Start() {
  impl_->thread = std::thread([this] { impl_->Run(); });
}

void RingClient::Propose(uint64_t request_id, std::string_view command, RequestCallback done) {
  impl_->segment.counter(ipc::Counter::kFrontendRequests).fetch_add(1, std::memory_order_relaxed);
  Pending p;
  p.stage = Stage::kProposed;
  p.is_proposal = true;
  p.in_flight = ipc::GaugeHold(impl_->segment.metrics().at(ipc::Metric::kProposalsPending));
  p.deadline = Clock::now() + options_.request_timeout;
  const Clock::time_point deadline = p.deadline;
  p.done = std::move(done);
  // Registered before the write: the reply may arrive before Write returns.
  if (!impl_->Register(request_id, std::move(p))) return;
  // The frame carries the deadline (request_trailer.h): raftd never proposes it if it reads
  // it at or after the deadline (ring_client.h). Built in a per-thread buffer (after Register,
  // whose failure callback may propose again on this thread): one copy of the command, no
  // allocation once the buffer is large enough.
  thread_local std::string frame;
  frame.assign(command);
  ipc::AppendRequestTrailer(&frame, deadline);
  Status st = impl_->proposals.Write(MessageType::kPropose, request_id, frame,
                                     options_.ring_write_timeout);
  // A rare huge request must not pin its memory in every gRPC thread for good.
  if (frame.capacity() > (1u << 20)) std::string().swap(frame);
  if (!st.ok()) impl_->Fail(request_id, etcd_errors::TooManyRequests());
}

void RingClient::SubmitToRaft(ipc::MessageType type, std::string_view payload,
                              RequestCallback done) {
  const uint64_t request_id = NextRequestId();
  Pending p;
  p.stage = Stage::kProposed;
  p.deadline = Clock::now() + options_.request_timeout;
  std::string frame(payload);
  ipc::AppendRequestTrailer(&frame, p.deadline);  // as Propose's (request_trailer.h)
  p.done = std::move(done);
  if (!impl_->Register(request_id, std::move(p))) return;
  Status st = impl_->proposals.Write(type, request_id, frame, options_.ring_write_timeout);
  if (!st.ok()) impl_->Fail(request_id, etcd_errors::TooManyRequests());
}

void RingClient::Read(std::string range_request, bool linearizable, RequestCallback done) {
  ReadAs(static_cast<uint16_t>(MessageType::kRangeRead), std::move(range_request), linearizable,
         std::move(done));
}

void RingClient::ReadAs(uint16_t read_type, std::string range_request, bool linearizable,
                        RequestCallback done) {
  impl_->segment.counter(ipc::Counter::kFrontendRequests).fetch_add(1, std::memory_order_relaxed);
  impl_->StartRead(NextRequestId(), static_cast<MessageType>(read_type), std::move(range_request),
                   /*raw=*/false, linearizable, std::move(done));
}

bool RingClient::is_learner() const {
  return impl_->is_learner.load(std::memory_order_relaxed);
}

std::string RingClient::member_list() const {
  std::lock_guard lock(impl_->members_mu);
  return impl_->members;
}

uint64_t RingClient::member_list_version() const {
  return impl_->members_version.load(std::memory_order_acquire);
}

void RingClient::ReadStore(ipc::MessageType type, std::string payload, RequestCallback done) {
  impl_->StartRead(NextRequestId(), type, std::move(payload), /*raw=*/true,
                   /*linearizable=*/false, std::move(done));
}

// The one path of every store read (ranges, lease queries, watch catch-up): registered as
// pending, then a kReadIndex (linearizable: the frame follows on kReadIndexReply, built by
// SendRangeRead) or the reads frame at once. Replies, re-sends on a stored restart and
// timeouts are the same for all of them.
void RingClient::Impl::StartRead(uint64_t id, MessageType type, std::string request, bool raw,
                                 bool linearizable, RequestCallback done) {
  Pending p;
  p.read_type = type;
  p.raw_payload = raw;
  p.deadline = Clock::now() + options.request_timeout;
  p.done = std::move(done);
  Status st;
  if (linearizable) {
    p.stage = Stage::kAwaitingReadIndex;
    p.range_request = std::move(request);
    if (!Register(id, std::move(p))) return;
    // From a callback: TryWrite, and on a full ring the backlog the reply thread retries
    // (every 1 ms) until the request's deadline, as its own follow-up writes.
    if (OnReplyThread()) return SendReadIndex(id);
    st = proposals.Write(MessageType::kReadIndex, id, std::string_view(),
                         options.ring_write_timeout);
  } else {
    p.stage = Stage::kReading;
    std::string payload = raw ? request : EncodeRangeRead(0, request);
    p.range_request = std::move(request);  // kept for re-sends
    if (!Register(id, std::move(p))) return;
    if (OnReplyThread()) {
      if (!reads.TryWrite(type, id, payload).ok()) backlog.push_back({Stage::kReading, id});
      return;
    }
    st = reads.Write(type, id, payload, options.ring_write_timeout);
  }
  if (!st.ok()) Fail(id, etcd_errors::TooManyRequests());
}

LeaderState RingClient::leader() const {
  return LeaderState{impl_->leader_id.load(std::memory_order_relaxed),
                     impl_->leader_term.load(std::memory_order_relaxed)};
}

uint64_t RingClient::committed_index() const {
  return impl_->segment.counter(ipc::Counter::kRaftCommittedIndex).load(std::memory_order_relaxed);
}

uint64_t RingClient::applied_index() const {
  return impl_->segment.counter(ipc::Counter::kAppliedIndex).load(std::memory_order_relaxed);
}

uint64_t RingClient::db_size() const {
  return impl_->segment.metrics().Get(ipc::Metric::kDbTotalSize);
}

uint64_t RingClient::db_size_in_use() const {
  return impl_->segment.metrics().Get(ipc::Metric::kDbInUseSize);
}

size_t RingClient::PendingCount() const { return impl_->pending.Size(); }

bool RingClient::OnReplyThread() const { return impl_->OnReplyThread(); }

void RingClient::CorkConnections() {
  if (impl_->OnReplyThread()) impl_->CorkConnections();
}

}  // namespace rusd::frontend
