// Encoding etcd's WatchResponse (etcdserverpb, rpc.proto) for the watch hub.
//
// Event responses are the hot path: the events of a revision are serialized ONCE
// (EncodedEvent: the Event without prev_kv, plus the prev_kv field on its own), then every
// watcher's response is spliced together from those bytes — no protobuf object per
// watcher, and a watcher that did not ask for prev_kv simply leaves that part out. The
// bytes are what protobuf would produce (fields in number order), so clients see no
// difference. Control responses (created, canceled, progress, compacted) are rare and use
// the generated class.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mvccpb {
class Event;
}

namespace rusd::frontend {

// An Event serialized once per revision and shared by all the watchers it matches.
struct EncodedEvent {
  std::string base;      // Event{type, kv}
  std::string prev_kv;   // the prev_kv field (tag, length, KeyValue) or empty
  bool is_put = true;
};

EncodedEvent EncodeEvent(const mvccpb::Event& event);

// ResponseHeader{cluster_id, member_id, revision, raft_term} serialized.
std::string EncodeHeader(uint64_t cluster_id, uint64_t member_id, int64_t revision,
                         uint64_t raft_term);

// Appends the WatchResponse carrying `events` for `watch_id` to `out`: one response, or with
// `fragment` and a response of at least `max_bytes` and two or more events, etcd's
// fragments (sendFragments: each piece below max_bytes unless one event alone exceeds it,
// `fragment = true` on all but the last).
void EncodeEventResponses(std::string_view header, int64_t watch_id,
                          std::span<const EncodedEvent* const> events, bool with_prev_kv,
                          bool fragment, size_t max_bytes, std::vector<std::string>* out);

// The merged path (WatchHub: one response per watcher per batch of revisions): the
// `events` fields of a response, appended to `body`, and a response made of a header, a
// watch id and such a body. EventFieldsSize is what AppendEventFields would append.
size_t EventFieldsSize(std::span<const EncodedEvent* const> events, bool with_prev_kv);
void AppendEventFields(std::span<const EncodedEvent* const> events, bool with_prev_kv,
                       std::string* body);
std::string EncodeEventsResponse(std::string_view header, int64_t watch_id,
                                 std::string_view body);
// What EncodeEventsResponse puts before the body (header and watch id fields).
std::string EncodeEventsResponsePrefix(std::string_view header, int64_t watch_id);
// The bytes a response adds around its events (header field, watch id, fragment flag).
size_t ResponseOverhead(std::string_view header, int64_t watch_id);

// Control responses.
struct ControlResponse {
  int64_t watch_id = 0;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;
  std::string cancel_reason;
};
std::string EncodeControlResponse(std::string_view header, const ControlResponse& r);

}  // namespace rusd::frontend
