#include "frontend/native_grpc/forwarded_call.h"

#include <absl/strings/escaping.h>

#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "frontend/forwarded_framing.h"
#include "frontend/native_grpc/native_connection.h"

namespace rusd::frontend::native_grpc {
namespace {

// grpc-timeout (already validated by the session: 1-8 digits and a unit), or none for one
// beyond kNoDeadlineBeyondNs (100 years): grpc-go sends "2562047H" for no deadline at all
// (math.MaxInt64 ns), and 99999999H would overflow nanoseconds (and now() + it, the clock).
constexpr int64_t kNoDeadlineBeyondNs = int64_t{100} * 365 * 24 * 3600 * 1'000'000'000;
std::optional<std::chrono::nanoseconds> ParseGrpcTimeout(std::string_view v) {
  int64_t n = 0;
  for (size_t i = 0; i + 1 < v.size(); ++i) n = n * 10 + (v[i] - '0');  // < 10^8
  int64_t unit_ns = 1;
  switch (v.back()) {
    case 'H': unit_ns = int64_t{3600} * 1'000'000'000; break;
    case 'M': unit_ns = int64_t{60} * 1'000'000'000; break;
    case 'S': unit_ns = 1'000'000'000; break;
    case 'm': unit_ns = 1'000'000; break;
    case 'u': unit_ns = 1'000; break;
    default: break;
  }
  if (n > kNoDeadlineBeyondNs / unit_ns) return std::nullopt;
  return std::chrono::nanoseconds(n * unit_ns);
}

// gRPC C++ refuses metadata keys outside [0-9a-z-_.]: such headers are not passed on.
bool LegalKey(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
          c == '.')) {
      return false;
    }
  }
  return true;
}

bool BinaryKey(std::string_view key) { return key.ends_with("-bin"); }

// The methods whose service writes prefixed messages when asked (forwarded_framing.h).
bool AsksForPrefixed(std::string_view path) { return path == "/etcdserverpb.Watch/Watch"; }

// `bytes` is a sequence of whole gRPC length-prefixed messages (uncompressed).
bool WholePrefixedMessages(std::string_view bytes) {
  return ForEachPrefixedMessage(bytes, [](size_t) {});
}

// gRPC C++ takes a non "-bin" value only of printable ASCII (0x20-0x7E); it aborts the
// process (GPR_CODEGEN_ASSERT in call_op_set.h) on a call started with any other. HTTP/2
// allows more (grpc-go passes UTF-8 and tabs on, and refuses control bytes with
// RST_STREAM), so such a header is not passed on: the call goes ahead without it, as it
// would without a header gRPC C++ cannot carry. No etcd header (token, hasleader) is
// anything but ASCII.
bool LegalValue(std::string_view value) {
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Server metadata as HTTP/2 headers: gRPC's own (grpc-*) and HTTP's are not metadata.
GrpcMetadata ToHeaders(const std::multimap<grpc::string_ref, grpc::string_ref>& md) {
  GrpcMetadata out;
  for (const auto& [k, v] : md) {
    std::string_view key(k.data(), k.size());
    if (!LegalKey(key) || key.starts_with("grpc-") || key == "content-type" || key == "te") {
      continue;
    }
    std::string_view value(v.data(), v.size());
    out.emplace_back(std::string(key),
                     BinaryKey(key) ? absl::Base64Escape(absl::string_view(value.data(), value.size()))
                                    : std::string(value));
  }
  return out;
}

}  // namespace

void ForwardedCalls::Add() {
  std::lock_guard lock(mu_);
  ++in_flight_;
}

void ForwardedCalls::Done() {
  std::lock_guard lock(mu_);
  if (--in_flight_ == 0) idle_.notify_all();
}

bool ForwardedCalls::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return idle_.wait_for(lock, timeout, [this] { return in_flight_ == 0; });
}

ForwardedCall::ForwardedCall(Passkey, std::shared_ptr<NativeConnection> connection,
                             int32_t stream_id,
                             std::shared_ptr<ForwardedCalls> tracker)
    : in_flight_(std::move(tracker)), connection_(std::move(connection)), stream_id_(stream_id) {}

std::shared_ptr<ForwardedCall> ForwardedCall::Create(grpc::GenericStub& stub,
                                                    std::shared_ptr<NativeConnection> connection,
                                                    const GrpcRequest& start,
                                                    std::shared_ptr<ForwardedCalls> tracker) {
  auto call = std::make_shared<ForwardedCall>(Passkey(), std::move(connection), start.stream_id,
                                              std::move(tracker));
  call->self_ = call;
  call->prefixed_ = AsksForPrefixed(start.path);
  if (call->prefixed_) {
    call->context_.AddMetadata(std::string(kForwardedFramingKey),
                               std::string(kForwardedFramingValue));
  }
  for (const auto& [key, value] : start.metadata) {
    if (!LegalKey(key) || key == kForwardedFramingKey) continue;  // that one is ours only
    if (BinaryKey(key)) {
      std::string raw;
      if (!absl::Base64Unescape(absl::string_view(value.data(), value.size()), &raw)) continue;
      call->context_.AddMetadata(key, raw);
    } else if (LegalValue(value)) {
      call->context_.AddMetadata(key, value);
    }
  }
  if (!start.timeout.empty()) {
    if (std::optional<std::chrono::nanoseconds> timeout = ParseGrpcTimeout(start.timeout)) {
      call->context_.set_deadline(std::chrono::system_clock::now() + *timeout);
    }
  }
  stub.PrepareBidiStreamingCall(&call->context_, start.path, grpc::StubOptions(), call.get());
  return call;
}

void ForwardedCall::Begin() {
  AddHold();  // the write side: released once no write will start any more
  StartRead(&read_buf_);
  StartCall();
}

void ForwardedCall::StartNextWriteLocked(std::unique_lock<std::mutex>& lock) {
  if (!pending_.empty()) {
    writing_ = true;
    std::string message = std::move(pending_.front());
    pending_.pop_front();
    write_bytes_ = message.size();
    lock.unlock();
    grpc::Slice slice(message);
    write_buf_ = grpc::ByteBuffer(&slice, 1);
    StartWrite(&write_buf_);
    return;
  }
  if (half_closed_ && write_hold_) {
    write_hold_ = false;
    lock.unlock();
    StartWritesDone();
    RemoveHold();
  }
}

void ForwardedCall::ReleaseWriteHoldLocked(std::unique_lock<std::mutex>& lock) {
  pending_.clear();
  if (!write_hold_ || writing_) return;  // OnWriteDone releases it
  write_hold_ = false;
  lock.unlock();
  RemoveHold();
}

void ForwardedCall::ClientMessage(std::string&& message) {
  std::unique_lock lock(mu_);
  if (cancelled_ || done_ || !write_hold_ || half_closed_) return;
  pending_.push_back(std::move(message));
  if (!writing_) StartNextWriteLocked(lock);
}

void ForwardedCall::ClientHalfClose() {
  std::unique_lock lock(mu_);
  if (cancelled_ || done_ || half_closed_) return;
  half_closed_ = true;
  if (!writing_) StartNextWriteLocked(lock);
}

void ForwardedCall::OnWriteDone(bool ok) {
  std::vector<std::shared_ptr<ForwardedCall>> resume;
  {
    // The service took the message: its bytes go back to the client's flow-control windows,
    // so that it may send more (a stream that is gone credited the connection already).
    std::lock_guard lock(connection_->mu);
    if (!connection_->closed) {
      connection_->session.MessageDone(stream_id_, write_bytes_);
      if (connection_->session.WantsWrite()) connection_->FlushFromCompletionLocked();
      connection_->TakeResumableLocked(&resume);
    }
  }
  ResumeReads(resume);
  std::unique_lock lock(mu_);
  writing_ = false;
  if (!ok || cancelled_ || read_done_) {
    ReleaseWriteHoldLocked(lock);
    return;
  }
  StartNextWriteLocked(lock);
}

void ForwardedCall::OnWritesDoneDone(bool) {}

void ForwardedCall::Cancel() {
  bool release_read = false;
  {
    std::unique_lock lock(mu_);
    if (cancelled_ || done_) return;
    cancelled_ = true;
    release_read = read_paused_;
    read_paused_ = false;
    ReleaseWriteHoldLocked(lock);
  }
  context_.TryCancel();
  if (release_read) RemoveHold();
}

void ForwardedCall::ResumeRead() {
  bool read = false;
  {
    std::lock_guard lock(mu_);
    if (!read_paused_) return;
    read_paused_ = false;
    read = !cancelled_ && !done_;
  }
  if (read) StartRead(&read_buf_);
  RemoveHold();
}

void ForwardedCall::OnReadInitialMetadataDone(bool ok) {
  if (!ok) return;
  std::vector<std::shared_ptr<ForwardedCall>> resume;
  {
    std::lock_guard lock(connection_->mu);
    if (connection_->closed || initial_sent_) return;
    initial_sent_ = true;
    if (connection_->session.StartResponse(stream_id_,
                                           ToHeaders(context_.GetServerInitialMetadata()))) {
      connection_->FlushFromCompletionLocked();
      connection_->TakeResumableLocked(&resume);
    }
  }
  ResumeReads(resume);
}

void ForwardedCall::OnReadDone(bool ok) {
  if (!ok) {
    // The server ended the call (its status is here or the call broke): no more writes, so
    // that OnDone, which waits for every hold, comes even if the client never half-closes.
    std::unique_lock lock(mu_);
    read_done_ = true;
    ReleaseWriteHoldLocked(lock);
    return;
  }
  std::string message;
  {
    std::vector<grpc::Slice> slices;
    (void)read_buf_.Dump(&slices);
    size_t n = 0;
    for (const auto& s : slices) n += s.size();
    message.reserve(n);
    for (const auto& s : slices) message.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  bool sent = false;
  bool paused = false;
  std::vector<std::shared_ptr<ForwardedCall>> resume;  // other streams this flush drained
  {
    std::lock_guard lock(connection_->mu);
    if (!initial_sent_ && !connection_->closed) {
      // OnReadInitialMetadataDone is not ordered before OnReadDone: the initial metadata
      // (valid once a message was read) go first whichever reaction comes first.
      initial_sent_ = true;
      (void)connection_->session.StartResponse(stream_id_,
                                               ToHeaders(context_.GetServerInitialMetadata()));
    }
    if (connection_->closed) {
      sent = false;
    } else if (prefixed_) {
      // The service's own framing (forwarded_framing.h), queued as is; a malformed one
      // (a bug) would corrupt the stream: the call is cancelled instead.
      sent = WholePrefixedMessages(message) &&
             connection_->session.SendPrefixed(stream_id_, std::move(message));
    } else {
      sent = connection_->session.SendMessage(stream_id_, message);
    }
    if (sent) {
      connection_->FlushFromCompletionLocked();
      connection_->TakeResumableLocked(&resume);
      if (connection_->session.queued_bytes(stream_id_) > kForwardQueueLimit) {
        // Paused before the epoll thread can see it in `paused` (it resumes under mu_).
        std::lock_guard call_lock(mu_);
        if (!cancelled_ && !done_) {
          paused = true;
          read_paused_ = true;
          AddHold();
          connection_->paused.push_back(stream_id_);
        }
      }
    }
  }
  ResumeReads(resume);
  if (!sent) {
    Cancel();  // the stream is gone (reset or the connection failed)
    return;
  }
  if (!paused) StartRead(&read_buf_);
}

void ForwardedCall::OnDone(const grpc::Status& status) {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  GrpcMetadata trailing = ToHeaders(context_.GetServerTrailingMetadata());
  if (!status.error_details().empty()) {
    trailing.emplace_back("grpc-status-details-bin", absl::Base64Escape(status.error_details()));
  }
  std::shared_ptr<ForwardedCall> keep = std::move(self_);  // destroyed last
  std::vector<std::shared_ptr<ForwardedCall>> resume;
  {
    std::lock_guard lock(connection_->mu);
    if (!connection_->closed &&
        connection_->session.Finish(stream_id_, static_cast<int>(status.error_code()),
                                    status.error_message(), trailing)) {
      connection_->FlushFromCompletionLocked();
      connection_->TakeResumableLocked(&resume);
    }
    auto it = connection_->forwarded.find(stream_id_);
    if (it != connection_->forwarded.end() && it->second.get() == this) {
      connection_->forwarded.erase(it);
    }
  }
  ResumeReads(resume);
  // `keep` may be the last reference: ~ForwardedCall runs here, and ~InFlight tells Shutdown.
}

}  // namespace rusd::frontend::native_grpc
