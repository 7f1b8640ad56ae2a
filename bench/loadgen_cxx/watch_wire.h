// The few protobuf messages of the Watch API the watch benchmark sends and reads, encoded
// and walked by hand over the wire format (rpc.proto, kv.proto) rather than through the
// generated classes: receiving is most of the loadgen's work in that benchmark (up to
// hundreds of thousands of events per second on a core it shares with the servers), so a
// response is walked once, nothing is copied, and only what the benchmark uses is read.
//
// Read, as protobuf does: every field is stepped over by its wire type (unknown fields
// included); a truncated varint or a length beyond the message is malformed. The Go
// loadgen's scanWatchResponse (loadgen/watchstream.go) reads the same fields.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rusd::loadgen {

// WatchRequest{create_request: {key, range_end}} as a gRPC message frame.
std::string WatchCreateFrame(std::string_view key, std::string_view range_end);
// PutRequest{key, value} as a gRPC message frame.
std::string PutFrame(std::string_view key, std::string_view value);

// What the benchmark needs of a WatchResponse: header (1) and fragment (7) are stepped
// over, events (11) are counted, not decoded.
struct ScannedWatchResponse {
  int64_t watch_id = 0;           // 2
  bool created = false;           // 3
  bool canceled = false;          // 4
  int64_t compact_revision = 0;   // 5
  std::string_view cancel_reason; // 6 (into the message)
  int events = 0;                 // 11
};

// False (and *why says what) when the message is not a well-formed protobuf message.
bool ScanWatchResponse(std::string_view message, ScannedWatchResponse* out, const char** why);

// One event's key-value (mvccpb.Event.kv: key 1, mod_revision 3, value 5), views into the
// message.
struct WatchEventKv {
  bool has_kv = false;
  std::string_view key, value;
  int64_t mod_revision = 0;
};

// Decodes the events of a WatchResponse into *out (cleared first; its capacity is kept).
bool DecodeWatchEvents(std::string_view message, std::vector<WatchEventKv>* out,
                       const char** why);

}  // namespace rusd::loadgen
