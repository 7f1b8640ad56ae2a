#include "raftd/transport/wire_format.h"

#include <cstring>

namespace rusd::transport {
namespace {

constexpr uint8_t kMaxEntryType = static_cast<uint8_t>(raft::EntryType::kEmpty);

void PutU8(uint8_t v, std::string* out) { out->push_back(static_cast<char>(v)); }
void PutU32(uint32_t v, std::string* out) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}
void PutU64(uint64_t v, std::string* out) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}
void PutString(std::string_view s, std::string* out) {
  PutU32(static_cast<uint32_t>(s.size()), out);
  out->append(s);
}

// Starts a frame; FinishFrame fills in its length once the body is written.
size_t BeginFrame(FrameKind kind, std::string* out) {
  const size_t at = out->size();
  PutU32(0, out);
  PutU8(static_cast<uint8_t>(kind), out);
  return at;
}
void FinishFrame(size_t at, std::string* out) {
  const uint32_t len = static_cast<uint32_t>(out->size() - at - 4);
  for (int i = 0; i < 4; ++i) (*out)[at + i] = static_cast<char>(len >> (8 * i));
}

// Bounds-checked reader over one frame body.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) {
    if (in_.size() < 1) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* v) {
    if (in_.size() < 4) return false;
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i) x |= static_cast<uint32_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
    *v = x;
    in_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (in_.size() < 8) return false;
    uint64_t x = 0;
    for (int i = 0; i < 8; ++i) x |= static_cast<uint64_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
    *v = x;
    in_.remove_prefix(8);
    return true;
  }
  bool String(std::string* s) {
    uint32_t n = 0;
    if (!U32(&n) || in_.size() < n) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool Strings(std::vector<std::string>* v) {
    uint32_t n = 0;
    if (!U32(&n) || n > in_.size() / 4) return false;  // each string needs >= 4 bytes
    v->resize(n);
    for (auto& s : *v) {
      if (!String(&s)) return false;
    }
    return true;
  }
  size_t remaining() const { return in_.size(); }

 private:
  std::string_view in_;
};

// A message's snapshot description, when the core's Message has one (a later core adds
// `snapshot` {index, term, conf {voters, learners}}); this branch's core has none and writes
// "absent". Decoding skips a description the Message cannot hold. Templates, so that the
// `requires` checks are made against whichever Message the build has.
template <typename M>
void PutSnapshot(const M& m, std::string* out) {
  if constexpr (requires { m.snapshot.index; m.snapshot.term; m.snapshot.conf.voters; m.snapshot.conf.learners; }) {
    const auto& s = m.snapshot;
    if (s.index == 0 && s.term == 0 && s.conf.voters.empty() && s.conf.learners.empty()) {
      PutU8(0, out);
      return;
    }
    PutU8(1, out);
    PutU64(s.index, out);
    PutU64(s.term, out);
    PutU32(static_cast<uint32_t>(s.conf.voters.size()), out);
    for (uint64_t v : s.conf.voters) PutU64(v, out);
    PutU32(static_cast<uint32_t>(s.conf.learners.size()), out);
    for (uint64_t v : s.conf.learners) PutU64(v, out);
  } else {
    PutU8(0, out);
  }
}

template <typename M>
size_t SnapshotSize(const M& m) {
  if constexpr (requires { m.snapshot.index; m.snapshot.term; m.snapshot.conf.voters; m.snapshot.conf.learners; }) {
    const auto& s = m.snapshot;
    if (s.index == 0 && s.term == 0 && s.conf.voters.empty() && s.conf.learners.empty()) return 1;
    return 1 + 8 + 8 + 4 + 4 + 8 * (s.conf.voters.size() + s.conf.learners.size());
  } else {
    return 1;
  }
}

Status Malformed(const char* what) {
  return Status::InvalidArgument(std::string("malformed peer frame: ") + what);
}

}  // namespace

void AppendHelloFrame(const Hello& h, std::string* out) {
  const size_t at = BeginFrame(FrameKind::kHello, out);
  PutU8(h.version, out);
  PutU64(h.cluster_id, out);
  PutU64(h.from_member, out);
  PutU64(h.to_member, out);
  PutString(h.name, out);
  PutU32(static_cast<uint32_t>(h.client_urls.size()), out);
  for (const auto& u : h.client_urls) PutString(u, out);
  FinishFrame(at, out);
}

void AppendHelloReplyFrame(const HelloReply& r, std::string* out) {
  const size_t at = BeginFrame(FrameKind::kHelloReply, out);
  PutU8(r.version, out);
  PutU8(r.accepted ? 1 : 0, out);
  PutString(r.error, out);
  PutU64(r.member_id, out);
  PutString(r.name, out);
  PutU32(static_cast<uint32_t>(r.client_urls.size()), out);
  for (const auto& u : r.client_urls) PutString(u, out);
  FinishFrame(at, out);
}

size_t EncodedMessageSize(const raft::Message& m) {
  size_t n = 1 + 8 * 6 + 1 + 8 * 2 + 4 + SnapshotSize(m);
  for (const raft::Entry& e : m.entries) n += 8 + 8 + 1 + 4 + e.data.size();
  return n;
}

void AppendMessagesFrame(const std::vector<raft::Message>& msgs, size_t begin, size_t end,
                         std::string* out) {
  size_t bytes = 4;
  for (size_t i = begin; i < end; ++i) bytes += EncodedMessageSize(msgs[i]);
  out->reserve(out->size() + kFrameHeaderBytes + bytes);
  const size_t at = BeginFrame(FrameKind::kMessages, out);
  PutU32(static_cast<uint32_t>(end - begin), out);
  for (size_t i = begin; i < end; ++i) {
    const raft::Message& m = msgs[i];
    PutU8(static_cast<uint8_t>(m.type), out);
    PutU64(m.to, out);
    PutU64(m.from, out);
    PutU64(m.term, out);
    PutU64(m.log_term, out);
    PutU64(m.index, out);
    PutU64(m.commit, out);
    PutU8(m.reject ? 1 : 0, out);
    PutU64(m.reject_hint, out);
    PutU64(m.context, out);
    PutU32(static_cast<uint32_t>(m.entries.size()), out);
    for (const raft::Entry& e : m.entries) {
      PutU64(e.index, out);
      PutU64(e.term, out);
      PutU8(static_cast<uint8_t>(e.type), out);
      PutString(e.data, out);
    }
    PutSnapshot(m, out);
  }
  FinishFrame(at, out);
}

void SplitAppend(raft::Message&& m, size_t max_bytes, std::vector<raft::Message>* out) {
  if (m.type != raft::MessageType::kAppend || m.entries.size() < 2 ||
      EncodedMessageSize(m) <= max_bytes) {
    out->push_back(std::move(m));
    return;
  }
  raft::Message header = m;  // copies everything but the entries below
  header.entries.clear();
  const size_t base = EncodedMessageSize(header);
  size_t i = 0;
  uint64_t prev_index = m.index, prev_term = m.log_term;
  while (i < m.entries.size()) {
    raft::Message part = header;
    part.index = prev_index;
    part.log_term = prev_term;
    size_t bytes = base;
    while (i < m.entries.size()) {
      const size_t sz = 8 + 8 + 1 + 4 + m.entries[i].data.size();
      if (!part.entries.empty() && bytes + sz > max_bytes) break;
      bytes += sz;
      part.entries.push_back(std::move(m.entries[i]));
      ++i;
    }
    prev_index = part.entries.back().index;
    prev_term = part.entries.back().term;
    out->push_back(std::move(part));
  }
}

Result<size_t> SplitFrame(std::string_view buffer, FrameView* frame, uint32_t max_bytes) {
  if (buffer.size() < kFrameHeaderBytes) return size_t{0};
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(static_cast<uint8_t>(buffer[i])) << (8 * i);
  if (len < 1 || len > max_bytes) {
    return Status::InvalidArgument("peer frame length " + std::to_string(len) +
                                   " out of range (not a rusd peer, or a corrupt stream)");
  }
  const uint8_t kind = static_cast<uint8_t>(buffer[4]);
  if (kind < static_cast<uint8_t>(FrameKind::kHello) ||
      kind > static_cast<uint8_t>(FrameKind::kMessages)) {
    return Status::InvalidArgument("unknown peer frame kind " + std::to_string(kind));
  }
  if (buffer.size() < 4 + static_cast<size_t>(len)) return size_t{0};
  frame->kind = static_cast<FrameKind>(kind);
  frame->body = buffer.substr(kFrameHeaderBytes, len - 1);
  return 4 + static_cast<size_t>(len);
}

Result<Hello> DecodeHello(std::string_view body) {
  Reader r(body);
  Hello h;
  if (!r.U8(&h.version)) return Malformed("hello: truncated");
  if (h.version != kWireVersion) {
    return Status::FailedPrecondition("peer speaks wire version " + std::to_string(h.version) +
                                      ", this node " + std::to_string(kWireVersion));
  }
  if (!r.U64(&h.cluster_id) || !r.U64(&h.from_member) || !r.U64(&h.to_member) ||
      !r.String(&h.name) || !r.Strings(&h.client_urls)) {
    return Malformed("hello: truncated");
  }
  if (r.remaining() != 0) return Malformed("hello: trailing bytes");
  return h;
}

Result<HelloReply> DecodeHelloReply(std::string_view body) {
  Reader r(body);
  HelloReply h;
  uint8_t accepted = 0;
  if (!r.U8(&h.version)) return Malformed("hello reply: truncated");
  if (h.version != kWireVersion) {
    return Status::FailedPrecondition("peer speaks wire version " + std::to_string(h.version) +
                                      ", this node " + std::to_string(kWireVersion));
  }
  if (!r.U8(&accepted) || !r.String(&h.error) || !r.U64(&h.member_id) || !r.String(&h.name) ||
      !r.Strings(&h.client_urls)) {
    return Malformed("hello reply: truncated");
  }
  if (r.remaining() != 0) return Malformed("hello reply: trailing bytes");
  h.accepted = accepted != 0;
  return h;
}

// Reads the snapshot description written by PutSnapshot into m (if its Message has one).
template <typename R, typename M>
bool GetSnapshot(R& r, M* m) {
  uint8_t present = 0;
  if (!r.U8(&present)) return false;
  if (present == 0) return true;
  if (present != 1) return false;
  uint64_t index = 0, term = 0;
  std::vector<uint64_t> ids[2];
  if (!r.U64(&index) || !r.U64(&term)) return false;
  for (auto& v : ids) {
    uint32_t n = 0;
    if (!r.U32(&n) || n > r.remaining() / 8) return false;
    v.resize(n);
    for (uint64_t& id : v) {
      if (!r.U64(&id)) return false;
    }
  }
  if constexpr (requires { m->snapshot.index; m->snapshot.term; m->snapshot.conf.voters; m->snapshot.conf.learners; }) {
    m->snapshot.index = index;
    m->snapshot.term = term;
    m->snapshot.conf.voters = std::move(ids[0]);
    m->snapshot.conf.learners = std::move(ids[1]);
  }
  return true;
}

Status DecodeMessages(std::string_view body, std::vector<raft::Message>* out) {
  Reader r(body);
  uint32_t count = 0;
  if (!r.U32(&count)) return Malformed("messages: truncated");
  // Each message is at least 71 bytes: a count beyond that is garbage, not a huge batch.
  if (count > r.remaining() / 71) return Malformed("messages: count exceeds frame");
  std::vector<raft::Message> msgs(count);
  for (raft::Message& m : msgs) {
    uint8_t type = 0, reject = 0;
    uint32_t n = 0;
    if (!r.U8(&type) || !r.U64(&m.to) || !r.U64(&m.from) || !r.U64(&m.term) ||
        !r.U64(&m.log_term) || !r.U64(&m.index) || !r.U64(&m.commit) || !r.U8(&reject) ||
        !r.U64(&m.reject_hint) || !r.U64(&m.context) || !r.U32(&n)) {
      return Malformed("messages: truncated message");
    }
    // Any type byte is passed on: the core ignores types it does not know, and a check
    // here against the newest type would silently break messages a later core adds.
    m.type = static_cast<raft::MessageType>(type);
    m.reject = reject != 0;
    if (n > r.remaining() / 21) return Malformed("messages: entry count exceeds frame");
    m.entries.resize(n);
    for (raft::Entry& e : m.entries) {
      uint8_t et = 0;
      if (!r.U64(&e.index) || !r.U64(&e.term) || !r.U8(&et) || !r.String(&e.data)) {
        return Malformed("messages: truncated entry");
      }
      if (et > kMaxEntryType) return Malformed("messages: unknown entry type");
      e.type = static_cast<raft::EntryType>(et);
    }
    if (!GetSnapshot(r, &m)) return Malformed("messages: bad snapshot description");
  }
  if (r.remaining() != 0) return Malformed("messages: trailing bytes");
  for (raft::Message& m : msgs) out->push_back(std::move(m));
  return Status::Ok();
}

}  // namespace rusd::transport
