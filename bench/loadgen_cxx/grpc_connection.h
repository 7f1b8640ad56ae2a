// GrpcConnection: one HTTP/2 cleartext (h2c, prior knowledge) connection to a gRPC server,
// carrying unary calls and bidirectional streams (StreamCall: the watch benchmark's Watch
// streams), built on nghttp2's client session. It is the load generator's
// transport: lean on purpose (no channel, no name resolution, no retries), so that the
// client's CPU per request stays small beside the server's.
//
// Threading: a connection belongs to one thread, which calls every method; callbacks
// (UnaryCall::OnDone, StreamCall::OnMessage / OnClose) run on that thread. A stream's
// callbacks run while the connection reads (inside nghttp2's receive), so they may Send on
// any stream but must not destroy a connection.
//
// Batching: completions found while reading are delivered after the read (OnReadable), and
// the requests their OnDone submits are written together: one write() per batch per
// connection, not one per request.
//
// Flow control: the connection advertises FlowWindows (by default a 1 MiB stream window and
// a 16 MiB connection window: a range of 1000 keys is ~290 KB); nghttp2 sends WINDOW_UPDATE
// as data is consumed.
//
// Errors: a call fails (OnDone with ok = false, error() says why) on RST_STREAM, on a
// response that is not HTTP 200 or has no grpc-status 0, on a malformed gRPC message frame,
// on a stream the server refused in its GOAWAY, on Cancel (the caller's deadline) and on
// connection loss (every call in flight fails). A connection that lost its socket or
// received GOAWAY refuses new calls (Start returns false); it does not reconnect: a cell
// with errors is reported as failed, so there is nothing to hide by reconnecting.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rusd::loadgen {

struct GrpcConnectionHeaders;

// The gRPC methods the load generator calls (one static header block each).
enum class Method { kRange, kPut, kTxn, kWatch };

// One unary call; the caller owns it and reuses it for its next request (no allocation per
// request once the buffers reached their size). Derive and implement OnDone.
class UnaryCall {
 public:
  virtual ~UnaryCall() = default;

  // Set before GrpcConnection::Start: the method and the request as a complete gRPC message
  // frame (1-byte flag 0, 4-byte big-endian length, the protobuf bytes).
  Method method = Method::kRange;
  std::string request_frame;

  // Filled while the answer arrives. message() is the response's protobuf bytes once
  // OnDone(true) runs.
  std::string_view message() const { return message_; }
  int grpc_status() const { return grpc_status_; }
  const std::string& error() const { return error_; }
  // Makes room for answers of this size up front (before a cell's measured window).
  void ReserveResponse(size_t bytes) { data_.reserve(bytes); }

  // ok: HTTP 200, grpc-status 0, exactly one well-formed uncompressed message. Otherwise
  // error() says why. The call may be started again from inside OnDone.
  virtual void OnDone(bool ok) = 0;

 private:
  friend class GrpcConnection;
  void Reset();
  size_t sent_ = 0;  // request_frame bytes handed to nghttp2
  int32_t stream_id_ = 0;
  size_t active_index_ = 0;   // position in GrpcConnection::active_
  std::string data_;          // DATA payload received (gRPC frames)
  std::string_view message_;  // into data_
  int http_status_ = 0;
  int grpc_status_ = -1;  // -1: no grpc-status seen
  std::string grpc_message_;
  std::string error_;
  bool failed_ = false;
};

// One bidirectional gRPC stream (client and server streaming) on a connection: messages
// are sent with GrpcConnection::Send and each complete message received is handed to
// OnMessage as it arrives (no per-message allocation: a message that lies whole in one DATA
// chunk is handed over in place). The caller owns it; it must outlive its stream (until
// OnClose) or its connection.
class StreamCall {
 public:
  virtual ~StreamCall() = default;

  // One received message (the protobuf bytes, without the 5-byte gRPC prefix).
  virtual void OnMessage(std::string_view message) = 0;
  // The stream ended: ok when the server closed it with grpc-status 0, otherwise why says
  // why (reset, non-zero grpc-status, connection lost, malformed message frame). Runs once;
  // no OnMessage after it.
  virtual void OnClose(bool ok, const std::string& why) = 0;

  bool open() const { return stream_id_ > 0 && !closed_; }

 private:
  friend class GrpcConnection;
  int32_t stream_id_ = 0;
  std::string out_;  // gRPC frames queued by Send, not yet handed to nghttp2
  size_t out_off_ = 0;
  bool deferred_ = false;  // nghttp2 waits for Send to resume the stream's DATA
  std::string in_;         // a message split across DATA chunks, so far
  int http_status_ = 0;
  int grpc_status_ = -1;
  std::string grpc_message_;
  std::string error_;  // a framing error found while receiving
  bool closed_ = false;
};

struct FlowWindows {
  int32_t stream = 1 << 20;
  int32_t connection = 16 << 20;
};

class GrpcConnection {
 public:
  // Blocking TCP connect to host:port (IPv4 literal or name), then non-blocking, TCP_NODELAY,
  // HTTP/2 preface and SETTINGS queued (sent with the first Flush).
  static Result<std::unique_ptr<GrpcConnection>> Connect(const std::string& host, int port,
                                                         FlowWindows windows = {});
  ~GrpcConnection();
  GrpcConnection(const GrpcConnection&) = delete;
  GrpcConnection& operator=(const GrpcConnection&) = delete;

  int fd() const { return fd_; }

  // Queues the call's HEADERS and DATA (sent at the next Flush). False (and the call is not
  // started, OnDone will not run) when the connection is dead or the server sent GOAWAY.
  bool Start(UnaryCall* call);

  // Opens a stream for `method` (HEADERS queued, sent at the next Flush). False when the
  // connection is dead or the server sent GOAWAY (OnClose will not run).
  bool StartStream(StreamCall* call, Method method);
  // Queues one complete gRPC message frame on an open stream (sent at the next Flush).
  // False when the stream is not open.
  bool Send(StreamCall* call, std::string_view frame);

  // Resets the call's stream (RST_STREAM CANCEL); it completes with OnDone(false).
  void Cancel(UnaryCall* call, const char* reason);

  // Writes whatever nghttp2 has to send, in one write() where the socket takes it. Returns
  // false when the socket has bytes left over (register for EPOLLOUT and call again).
  bool Flush();

  // Reads the available bytes, feeds them to nghttp2, then delivers completed calls and
  // flushes (the result is Flush()'s). Call on EPOLLIN / EPOLLERR / EPOLLHUP.
  bool OnReadable();

  bool usable() const { return !dead_ && !goaway_; }
  const std::string& dead_reason() const { return dead_reason_; }
  size_t in_flight() const { return active_.size(); }
  uint64_t goaways() const { return goaways_; }

 private:
  GrpcConnection(int fd, std::string authority, FlowWindows windows);
  void DeliverCompleted();
  void Fail(const std::string& reason);  // connection lost: every active call fails
  void Finish(UnaryCall* call);          // stream closed: validate, queue for delivery
  // Starts a request stream of `method` whose body `read_body` reads from `body_source`;
  // the stream id, or < 0 (the connection will start no more streams: goaway_ is set).
  int32_t SubmitRequest(Method method, void* body_source,
                        nghttp2_data_source_read_callback read_body, void* stream_user_data);

  static ssize_t ReadRequest(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                             nghttp2_data_source*, void*);
  static ssize_t ReadStreamData(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                                nghttp2_data_source*, void*);
  void StreamData(StreamCall* call, const uint8_t* data, size_t len);
  void CloseStream(StreamCall* call, uint32_t error_code);
  StreamCall* StreamOf(int32_t stream_id) const;

  static int OnHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int OnStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);

  int fd_;  // -1 once dead
  std::string authority_;
  std::vector<uint8_t> read_buf_;
  std::unique_ptr<GrpcConnectionHeaders> headers_;
  nghttp2_session* session_ = nullptr;
  std::string out_;  // bytes produced by nghttp2, not yet written
  size_t out_off_ = 0;
  std::vector<UnaryCall*> active_;     // started, not yet delivered
  std::vector<UnaryCall*> completed_;  // closed streams, delivered after the read
  std::vector<UnaryCall*> delivering_;
  std::vector<StreamCall*> streams_;  // open streams (few per connection: a linear search)
  uint64_t goaways_ = 0;
  bool dead_ = false;
  std::string dead_reason_;
  bool goaway_ = false;
};

}  // namespace rusd::loadgen
