// The agreement between the native gRPC server's in-process forwarding
// (native_grpc/forwarded_call.h) and the Watch service (watch_service.cc) that lets one
// in-process message carry several Watch responses.
//
// Why: a callback bidi call has at most one write in flight, and over the in-process channel
// each write completes only once the forwarding's read took it, two thread hand-offs in gRPC
// C++ (its executor on the reading side, its callback threads on the writing side) per
// message: ~100-150 µs on a loaded machine against ~15 µs for a write into a socket. A Watch
// stream carrying many small responses (a prefix stream gets one per watcher per put) then
// queued them one round trip each: at 500 puts/s and ten prefix watchers per stream the
// stream was busy ~70 % of the time and the put-to-event p99 grew to ~75 ms.
//
// What: the forwarding asks for it with the request header kForwardedFramingKey =
// kForwardedFramingValue on a Watch call (and drops that header from any client); the Watch
// service then writes each in-process message as one or more responses, each with gRPC's
// 5-byte length prefix (flag 0, big-endian length), exactly the bytes a DATA frame carries,
// so the forwarding queues them on the HTTP/2 stream as they are. Without the header
// (every gRPC C++ client) each message is one response, as always. A client reaching gRPC
// C++ directly that sends the header gets length-prefixed bytes inside its messages: it
// harms only itself. The metrics interceptor counts each response of a prefixed message as
// a message sent, with its own size (as without the header).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rusd::frontend {

inline constexpr std::string_view kForwardedFramingKey = "rusd-internal-prefixed-messages";
inline constexpr std::string_view kForwardedFramingValue = "1";

// At most this many bytes of responses go into one prefixed message (a single larger
// response goes alone): a stream over the forwarding's send-queue limit stops reading soon
// enough, and one message never holds the stream's whole queue.
inline constexpr size_t kForwardedFramingBatchBytes = 64 << 10;

// Whether request metadata `md` (gRPC's multimap of string_ref) asks for prefixed messages.
template <typename Metadata>
bool AsksForPrefixedMessages(const Metadata& md) {
  using Ref = typename Metadata::key_type;
  auto it = md.find(Ref(kForwardedFramingKey.data(), kForwardedFramingKey.size()));
  return it != md.end() &&
         it->second == Ref(kForwardedFramingValue.data(), kForwardedFramingValue.size());
}

// Calls fn(message_size) for each whole prefixed message at the start of `bytes`; returns
// true if `bytes` is exactly a sequence of them (uncompressed).
template <typename Fn>
bool ForEachPrefixedMessage(std::string_view bytes, Fn&& fn) {
  size_t off = 0;
  while (bytes.size() - off >= 5) {
    if (bytes[off] != 0) return false;
    const size_t len = (size_t{static_cast<uint8_t>(bytes[off + 1])} << 24) |
                       (size_t{static_cast<uint8_t>(bytes[off + 2])} << 16) |
                       (size_t{static_cast<uint8_t>(bytes[off + 3])} << 8) |
                       size_t{static_cast<uint8_t>(bytes[off + 4])};
    if (bytes.size() - off - 5 < len) return false;
    fn(len);
    off += 5 + len;
  }
  return off == bytes.size();
}

}  // namespace rusd::frontend
