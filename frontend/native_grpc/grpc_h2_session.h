// GrpcH2Session: the server side of one HTTP/2 connection carrying gRPC calls, without
// any I/O. Bytes read from the socket go in (Receive), complete requests come out; answers go
// in (Respond), bytes to write come out (Produce). nghttp2 does the HTTP/2 part (framing,
// HPACK, flow control, SETTINGS, PING, GOAWAY); this class is the gRPC layer on top of it
// (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
//
// - A request is HEADERS (:path = method, content-type application/grpc[+proto|;...]) then
//   exactly one length-prefixed message (1 byte compressed flag, 4 bytes big-endian length)
//   and END_STREAM. Only unary calls: a stream ending with no message is answered INTERNAL,
//   and so is one with more than one, as soon as the bytes beyond the first message arrive
//   (nothing beyond one message is kept).
// - Streaming calls: a path `serves` refuses but `streams` accepts (the native server: every
//   method it forwards to gRPC C++) is a stream of events instead (GrpcRequest::Kind): its
//   start (path, grpc-timeout, the custom request headers), each request message as soon as
//   it is complete (its bytes count against the client's windows until MessageDone), the
//   client's half-close, and a cancel if the stream closes before the
//   owner finished it (client RST_STREAM, or a bad message refused here). The owner answers
//   with StartResponse (initial metadata), any number of SendMessage (a DATA stream fed from
//   a per-stream queue as the client's flow-control windows allow; queued_bytes tells the
//   owner how much waits, for its backpressure) and Finish (trailers; Trailers-Only if
//   nothing was sent). A stream finished before the client half-closed gets RST_STREAM
//   (NO_ERROR) after the trailers, as grpc-go.
// - A path the owner serves neither way is refused UNIMPLEMENTED at its request HEADERS, not
//   at END_STREAM, so the client is not left waiting and nothing of its body is kept.
// - Refused before the method sees them, with grpc-go's codes and texts (what etcd answers):
//   a content-type that is not application/grpc* → HTTP 415 + INVALID_ARGUMENT `invalid gRPC
//   request content-type "X"`; a malformed grpc-timeout → HTTP 400 + INTERNAL `malformed
//   grpc-timeout: ...`; grpc-encoding other than identity → UNIMPLEMENTED; a set compressed
//   flag → INTERNAL; a message longer than `max_receive_message_bytes` → RESOURCE_EXHAUSTED
//   (the rest of its bytes are discarded). A call refused before the client half-closed it
//   gets RST_STREAM(NO_ERROR) after the answer (as grpc-go), so the client stops uploading. The timeout is otherwise not enforced here: the
//   client enforces its deadline and resets the stream, which cancels the call.
// - A response is HEADERS(:status 200, content-type application/grpc), DATA (prefix +
//   message, as the client's flow-control windows allow), trailers (grpc-status,
//   grpc-message percent-encoded). An error is one Trailers-Only HEADERS frame.
// - nghttp2 runs without its HTTP messaging checks and the RFC 7540 priority tree (gRPC
//   needs neither; measured ~10 % of the frontend's CPU per call): only what gRPC needs of
//   the headers is checked, here.
// - RST_STREAM from the client (or the stream closing any other way) forgets the call: a
//   later Respond for it returns false and sends nothing.
//
// - If nghttp2 cannot set the session up (out of memory), Receive and Produce fail with that
//   error and Alive is false: the owner closes the connection.
//
// Thread safety: none (nghttp2 sessions are not thread-safe); the owner serialises every
// call (native_grpc_server.cc: a mutex per connection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rusd::frontend::native_grpc {

// Headers as sent on the wire (names lower case; "-bin" values base64).
using GrpcMetadata = std::vector<std::pair<std::string, std::string>>;

// One complete unary request, or one event of a streaming call.
struct GrpcRequest {
  enum class Kind : uint8_t {
    kUnary,        // path + message
    kStreamStart,  // path, timeout, metadata
    kStreamMessage,
    kStreamHalfClose,
    kStreamCancel,  // the stream is gone: stop the call; answers are dropped
  };
  Kind kind = Kind::kUnary;
  int32_t stream_id = 0;
  std::string path;     // "/etcdserverpb.KV/Put"
  std::string message;  // the request message, without the 5-byte prefix
  std::string timeout;  // kStreamStart: grpc-timeout as sent (valid), empty if none
  GrpcMetadata metadata;  // kStreamStart: headers but pseudo, content-type, te, grpc-*, user-agent
};

class GrpcH2Session {
 public:
  // Whether a method path is served; the others are refused UNIMPLEMENTED "rusd: <path> is
  // not served by the native gRPC server yet" at their HEADERS. Empty: every path is served.
  using ServedPath = std::function<bool(std::string_view path)>;

  // `streams`: the paths `serves` refuses that are served as streaming calls (empty: none).
  explicit GrpcH2Session(size_t max_receive_message_bytes, ServedPath serves = {},
                         ServedPath streams = {});
  ~GrpcH2Session();
  GrpcH2Session(const GrpcH2Session&) = delete;
  GrpcH2Session& operator=(const GrpcH2Session&) = delete;

  // Feeds bytes read from the peer (any split: frames may arrive a byte at a time). Complete
  // requests are appended to *requests; bad ones are answered here. A protocol error the
  // connection cannot survive returns its status: Produce what is queued (nghttp2's GOAWAY)
  // and close.
  Status Receive(std::string_view bytes, std::vector<GrpcRequest>* requests);

  // Answers the request on `stream_id`: OK with the serialized response `message`, or the
  // error `status` (Trailers-Only). False if the stream is gone (reset by the client, or the
  // connection is failing): nothing is sent.
  bool Respond(int32_t stream_id, const Status& status, std::string&& message);

  // Streaming calls (see above). Each returns false if the stream is gone or finished:
  // nothing is sent. StartResponse is implied by the first SendMessage or Finish.
  bool StartResponse(int32_t stream_id, const GrpcMetadata& initial);
  bool SendMessage(int32_t stream_id, std::string_view message);
  // Queues `prefixed`: whole messages, each already with its 5-byte gRPC prefix (the caller
  // vouches for the framing), sent as they are (no copy).
  bool SendPrefixed(int32_t stream_id, std::string&& prefixed);
  // `code` is gRPC's; an empty `message` sends no grpc-message.
  bool Finish(int32_t stream_id, int code, std::string_view message,
              const GrpcMetadata& trailing);
  // The owner is done with a kStreamMessage of `message_bytes` (its message's size): its
  // bytes go back to the client's flow-control windows (WINDOW_UPDATE, when worth one: see
  // WantsWrite). Until then they count against them, so a client cannot stream requests
  // faster than the owner takes them: at most the stream window (4 MiB) per stream and the
  // connection window (16 MiB) per connection wait. Nothing for a stream that is gone.
  void MessageDone(int32_t stream_id, size_t message_bytes);
  // Bytes SendMessage queued that nghttp2 has not taken yet (0 if the stream is gone).
  size_t queued_bytes(int32_t stream_id) const;
  // kStreamCancel events of streams that closed outside Receive (while producing).
  void TakeEvents(std::vector<GrpcRequest>* events);

  // Appends frames that are ready to be sent to *out, stopping once out->size() reaches
  // `limit` (so that a slow reader does not make us buffer a whole large response).
  // A non-OK status means the session failed (close the connection after writing *out).
  Status Produce(std::string* out, size_t limit);

  // nghttp2 has frames to send (Produce would append something, window permitting).
  bool WantsWrite() const;
  // The connection should stay open: the peer may still send or we still have to.
  bool Alive() const;

  // Starts a graceful shutdown: GOAWAY(NO_ERROR) naming the last stream we accepted;
  // streams already open are still answered.
  void SubmitGoaway();

  // Calls accepted and not yet answered or reset (tests).
  size_t open_calls() const;

 private:
  Status InitError() const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// grpc-message's encoding (PROTOCOL-HTTP2.md): bytes outside 0x20-0x7E and '%' become %XX.
std::string PercentEncodeGrpcMessage(std::string_view message);

}  // namespace rusd::frontend::native_grpc
