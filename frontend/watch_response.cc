#include "frontend/watch_response.h"

#include "etcd/etcdserverpb/rpc.pb.h"
#include "etcd/mvccpb/kv.pb.h"

namespace rusd::frontend {
namespace {

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

constexpr char kHeaderTag = 0x0a;    // field 1, length-delimited
constexpr char kWatchIdTag = 0x10;   // field 2, varint
constexpr char kFragmentTag = 0x38;  // field 7, varint
constexpr char kEventsTag = 0x5a;    // field 11, length-delimited
constexpr char kPrevKvTag = 0x1a;    // Event field 3, length-delimited

size_t EventSize(const EncodedEvent& e, bool with_prev) {
  return e.base.size() + (with_prev ? e.prev_kv.size() : 0);
}

size_t EventFieldSize(const EncodedEvent& e, bool with_prev) {
  size_t n = EventSize(e, with_prev);
  return 1 + VarintSize(n) + n;
}

std::string Begin(std::string_view header, int64_t watch_id, bool fragment, size_t reserve) {
  std::string out;
  out.reserve(reserve + header.size() + 16);
  out.push_back(kHeaderTag);
  AppendVarint(&out, header.size());
  out.append(header);
  if (watch_id != 0) {
    out.push_back(kWatchIdTag);
    AppendVarint(&out, static_cast<uint64_t>(watch_id));
  }
  if (fragment) {
    out.push_back(kFragmentTag);
    out.push_back(1);
  }
  return out;
}

void AppendEvent(std::string* out, const EncodedEvent& e, bool with_prev) {
  out->push_back(kEventsTag);
  AppendVarint(out, EventSize(e, with_prev));
  out->append(e.base);
  if (with_prev) out->append(e.prev_kv);
}

}  // namespace

EncodedEvent EncodeEvent(const mvccpb::Event& event) {
  EncodedEvent out;
  out.is_put = event.type() == mvccpb::Event::PUT;
  mvccpb::Event base;
  base.set_type(event.type());
  if (event.has_kv()) *base.mutable_kv() = event.kv();
  out.base = base.SerializeAsString();
  if (event.has_prev_kv()) {
    std::string kv = event.prev_kv().SerializeAsString();
    out.prev_kv.push_back(kPrevKvTag);
    AppendVarint(&out.prev_kv, kv.size());
    out.prev_kv.append(kv);
  }
  return out;
}

std::string EncodeHeader(uint64_t cluster_id, uint64_t member_id, int64_t revision,
                         uint64_t raft_term) {
  etcdserverpb::ResponseHeader h;
  h.set_cluster_id(cluster_id);
  h.set_member_id(member_id);
  h.set_revision(revision);
  h.set_raft_term(raft_term);
  return h.SerializeAsString();
}

void EncodeEventResponses(std::string_view header, int64_t watch_id,
                          std::span<const EncodedEvent* const> events, bool with_prev_kv,
                          bool fragment, size_t max_bytes, std::vector<std::string>* out) {
  size_t total = 0;
  for (const EncodedEvent* e : events) total += EventFieldSize(*e, with_prev_kv);
  const size_t base_size =
      1 + VarintSize(header.size()) + header.size() +
      (watch_id != 0 ? 1 + VarintSize(static_cast<uint64_t>(watch_id)) : 0);
  if (!fragment || base_size + total < max_bytes || events.size() < 2) {
    std::string r = Begin(header, watch_id, false, total);
    for (const EncodedEvent* e : events) AppendEvent(&r, *e, with_prev_kv);
    out->push_back(std::move(r));
    return;
  }
  // etcd's sendFragments: fill each piece while it stays below max_bytes (a piece always
  // takes at least one event); every piece but the last has fragment = true (2 bytes).
  size_t i = 0;
  while (i < events.size()) {
    size_t size = base_size + 2;
    size_t j = i;
    while (j < events.size()) {
      size_t add = EventFieldSize(*events[j], with_prev_kv);
      if (j > i && size + add >= max_bytes) break;
      size += add;
      ++j;
    }
    const bool last = j == events.size();
    std::string r = Begin(header, watch_id, !last, size);
    for (size_t k = i; k < j; ++k) AppendEvent(&r, *events[k], with_prev_kv);
    out->push_back(std::move(r));
    i = j;
  }
}

size_t EventFieldsSize(std::span<const EncodedEvent* const> events, bool with_prev_kv) {
  size_t total = 0;
  for (const EncodedEvent* e : events) total += EventFieldSize(*e, with_prev_kv);
  return total;
}

void AppendEventFields(std::span<const EncodedEvent* const> events, bool with_prev_kv,
                       std::string* body) {
  for (const EncodedEvent* e : events) AppendEvent(body, *e, with_prev_kv);
}

std::string EncodeEventsResponse(std::string_view header, int64_t watch_id,
                                 std::string_view body) {
  std::string r = Begin(header, watch_id, false, body.size());
  r.append(body);
  return r;
}

std::string EncodeEventsResponsePrefix(std::string_view header, int64_t watch_id) {
  return Begin(header, watch_id, false, 0);
}

size_t ResponseOverhead(std::string_view header, int64_t watch_id) {
  return 1 + VarintSize(header.size()) + header.size() +
         (watch_id != 0 ? 1 + VarintSize(static_cast<uint64_t>(watch_id)) : 0) + 2;
}

std::string EncodeControlResponse(std::string_view header, const ControlResponse& r) {
  etcdserverpb::WatchResponse w;
  w.mutable_header()->ParseFromArray(header.data(), static_cast<int>(header.size()));
  w.set_watch_id(r.watch_id);
  w.set_created(r.created);
  w.set_canceled(r.canceled);
  w.set_compact_revision(r.compact_revision);
  w.set_cancel_reason(r.cancel_reason);
  return w.SerializeAsString();
}

}  // namespace rusd::frontend
