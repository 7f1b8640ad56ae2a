// The peer wire format: how raft::Message values and the connection handshake travel
// between rusd-raftd processes over TCP (--listen-peer-urls). Defined once, here.
//
// A connection is a stream of frames:
//
//   +----------------+--------+---------------------------+
//   | length (u32 LE)| kind u8| body (length - 1 bytes)   |
//   +----------------+--------+---------------------------+
//
// All integers are little-endian; a string is u32 length + bytes.
//
//   kind 1 Hello       (dialer → acceptor, first frame of every connection)
//        u8 version (kWireVersion), u64 cluster_id, u64 from_member, u64 to_member,
//        string name, u32 n, n × string client_url
//   kind 2 HelloReply  (acceptor → dialer, once)
//        u8 version, u8 accepted, string error (empty when accepted), u64 member_id,
//        string name, u32 n, n × string client_url
//   kind 3 Messages    (dialer → acceptor, any number; a batch of one write)
//        u32 count, count × message:
//          u8 type, u64 to, from, term, log_term, index, commit, u8 reject,
//          u64 reject_hint, context, u32 n_entries,
//          n_entries × { u64 index, term, u8 entry_type, u32 len, len bytes data },
//          u8 has_snapshot [1: u64 index, u64 term, u32 n, n × u64 voter,
//                              u32 m, m × u64 learner]
//
// Messages flow one way on a connection: each node dials every peer and writes its own
// messages on that stream, and reads what peers send on the connections it accepted.
// A frame longer than kMaxFrameBytes, an unknown kind or version, an unknown entry type, a
// truncated body or trailing bytes are errors (the connection is closed), never a crash.
// Message types are passed through unchecked (the core ignores types it does not know).
// The snapshot description is carried when the build's raft::Message has one (a later
// core's `snapshot`); otherwise it is written as absent and skipped when read.
//
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "raftd/raft/messages.h"

namespace rusd::transport {

inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 5;
inline constexpr uint32_t kMaxFrameBytes = 256u << 20;
// Hello and HelloReply hold a name and a few URLs (a membership answer: every member's).
// Before the handshake a connection is anyone's, so its frames are held to this much: a
// stranger must not make the node buffer kMaxFrameBytes per connection.
inline constexpr uint32_t kMaxHandshakeFrameBytes = 1u << 20;

enum class FrameKind : uint8_t { kHello = 1, kHelloReply = 2, kMessages = 3 };

struct Hello {
  uint8_t version = kWireVersion;
  uint64_t cluster_id = 0;
  uint64_t from_member = 0;
  uint64_t to_member = 0;
  std::string name;
  std::vector<std::string> client_urls;
};

struct HelloReply {
  uint8_t version = kWireVersion;
  bool accepted = false;
  std::string error;
  uint64_t member_id = 0;
  std::string name;
  std::vector<std::string> client_urls;
};

// Appends one whole frame to `out`.
void AppendHelloFrame(const Hello& h, std::string* out);
void AppendHelloReplyFrame(const HelloReply& r, std::string* out);
// One frame carrying msgs[begin, end).
void AppendMessagesFrame(const std::vector<raft::Message>& msgs, size_t begin, size_t end,
                         std::string* out);
// The encoded size of one message inside a Messages frame (for batching limits).
size_t EncodedMessageSize(const raft::Message& m);

// Splits an Append whose encoding exceeds `max_bytes` into consecutive Appends (each
// (index, log_term) is the last entry of the part before; commit and term unchanged) and
// appends them to `out`; any other message is appended unchanged. A follower handles the
// parts exactly like the whole (Raft §5.3: each part's log-matching check holds after the
// part before), so the frame size stays bounded whatever the core batches (a part holds
// at least one entry, so one entry larger than max_bytes travels alone).
void SplitAppend(raft::Message&& m, size_t max_bytes, std::vector<raft::Message>* out);

// A frame split off the front of a byte stream.
struct FrameView {
  FrameKind kind;
  std::string_view body;
};

// Looks at the front of `buffer`: returns the number of bytes of the first complete frame
// (header included) and fills `frame`, 0 if more bytes are needed, or an error for a
// frame that can never be valid (longer than `max_bytes`, unknown kind).
Result<size_t> SplitFrame(std::string_view buffer, FrameView* frame,
                          uint32_t max_bytes = kMaxFrameBytes);

Result<Hello> DecodeHello(std::string_view body);
Result<HelloReply> DecodeHelloReply(std::string_view body);
// Appends the decoded messages to `out` (nothing on error).
Status DecodeMessages(std::string_view body, std::vector<raft::Message>* out);

}  // namespace rusd::transport
