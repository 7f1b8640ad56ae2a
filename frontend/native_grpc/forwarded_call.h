// ForwardedCall: one call of the native gRPC server that it does not serve itself (Watch,
// Lease, Cluster, Maintenance, Lock, Election, LeaseForward), passed on in process to the
// gRPC C++ server that implements it (grpc::Server::InProcessChannel + GenericStub's callback
// API). A bidi generic call carries any method type: unary, client-, server-streaming and bidi
// calls look alike on the wire (messages each way, then status), so one class serves them all
// and the services keep their tested code.
//
// What it carries:
// - client → server: the request headers that are metadata (the etcd auth token, clientv3's
//   hasleader, anything custom; "-bin" values base64-decoded), grpc-timeout as the
//   ClientContext deadline, every request message, the half-close;
// - server → client: initial metadata, every response message, status, message and
//   trailing metadata ("-bin" values base64-encoded);
// - cancellation both ways: Cancel (the client reset the stream, or the connection closed)
//   cancels the in-process call; the in-process call ending finishes the stream.
// - Watch: the call asks the service for prefixed messages (frontend/forwarded_framing.h):
//   each in-process message then holds every response the stream had queued (≤ 64 KiB),
//   already length-prefixed, and is queued on the HTTP/2 stream as is (SendPrefixed). One
//   in-process round trip per response (two gRPC thread hand-offs) made a busy stream's
//   responses wait behind each other.
//
// Flow control: after each response message, if the stream's send queue in the session
// holds more than kForwardQueueLimit bytes (the client's flow-control windows are full), no
// further message is read from the in-process call (the service's own queue bounds it, e.g.
// the watch hub's per-stream limit) until the queue drained (ResumeRead: whichever thread
// flushed the connection checks after the flush, NativeConnection::TakeResumableLocked;
// not only the epoll thread, which an other thread's flush may have left with nothing
// to wait for). Request messages are written
// one at a time, the rest queued here; each one's bytes go back to the client's
// flow-control windows (GrpcH2Session::MessageDone) only once its write completed, so a
// client streaming faster than the service reads is held back by HTTP/2 flow control and
// the queue holds at most a stream window's worth.
//
// Lifetime: owned by shared_ptr (the connection's `forwarded` map and itself until
// OnDone); methods after OnDone do nothing. Thread safety: any thread; never call it with
// the connection's mutex held (gRPC may run reactions inline).
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "frontend/native_grpc/grpc_h2_session.h"

namespace rusd::frontend::native_grpc {

class NativeConnection;

// Above this many queued response bytes a forwarded stream stops reading from gRPC C++.
inline constexpr size_t kForwardQueueLimit = 256 << 10;

// Counts the forwarded calls in flight, so that Shutdown can wait for them to end.
class ForwardedCalls {
 public:
  void Add();
  void Done();
  // Waits until none is in flight or `timeout` passed; true if none is.
  bool WaitIdle(std::chrono::milliseconds timeout);

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  size_t in_flight_ = 0;
};

class ForwardedCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                            public std::enable_shared_from_this<ForwardedCall> {
  struct Passkey {  // only Create constructs one (make_shared needs a public constructor)
    explicit Passkey() = default;
  };

 public:
  // Prepares the in-process call for the kStreamStart event `start` on `connection`; the
  // caller registers it in connection->forwarded, then calls Begin (exactly once).
  static std::shared_ptr<ForwardedCall> Create(grpc::GenericStub& stub,
                                              std::shared_ptr<NativeConnection> connection,
                                              const GrpcRequest& start,
                                              std::shared_ptr<ForwardedCalls> tracker);

  void Begin();
  void ClientMessage(std::string&& message);
  void ClientHalfClose();
  // The native stream is gone (client RST_STREAM, connection closed): cancel the call.
  void Cancel();
  // Called (without the connection's mutex) once the stream's queue drained below the limit.
  void ResumeRead();

  int32_t stream_id() const { return stream_id_; }

  // grpc::ClientBidiReactor
  void OnReadInitialMetadataDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnWritesDoneDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

  ForwardedCall(Passkey, std::shared_ptr<NativeConnection> connection, int32_t stream_id,
                std::shared_ptr<ForwardedCalls> tracker);

 private:
  // With mu_ held: takes the next write to start (true) or the writes-done decision.
  void StartNextWriteLocked(std::unique_lock<std::mutex>& lock);
  void ReleaseWriteHoldLocked(std::unique_lock<std::mutex>& lock);

  // Counts the call in flight from its creation until it is destroyed, not only until
  // OnDone: Shutdown must not return (and the stub, gRPC C++ server and connections go)
  // while ~ForwardedCall (its ClientContext) still runs. First member: destroyed last.
  class InFlight {
   public:
    explicit InFlight(std::shared_ptr<ForwardedCalls> tracker) : tracker_(std::move(tracker)) {
      tracker_->Add();
    }
    ~InFlight() { tracker_->Done(); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

   private:
    const std::shared_ptr<ForwardedCalls> tracker_;
  };
  const InFlight in_flight_;
  const std::shared_ptr<NativeConnection> connection_;
  const int32_t stream_id_;
  grpc::ClientContext context_;
  grpc::ByteBuffer read_buf_;
  // Watch: each response message holds prefixed responses (frontend/forwarded_framing.h).
  bool prefixed_ = false;
  grpc::ByteBuffer write_buf_;
  std::shared_ptr<ForwardedCall> self_;  // until OnDone

  std::mutex mu_;  // the state below; never held across a Start* or the connection's mutex
  std::deque<std::string> pending_;  // request messages not yet written
  size_t write_bytes_ = 0;  // the size of the message being written (while writing_)
  bool writing_ = false;
  bool half_closed_ = false;   // the client half-closed: WritesDone after pending_
  bool write_hold_ = true;     // released once no write will start any more
  bool read_paused_ = false;   // holds a hold while paused
  bool read_done_ = false;    // the server sent its last message: the call is ending
  bool cancelled_ = false;
  bool done_ = false;
  bool initial_sent_ = false;  // under connection_->mu: the response HEADERS were started
};

}  // namespace rusd::frontend::native_grpc
