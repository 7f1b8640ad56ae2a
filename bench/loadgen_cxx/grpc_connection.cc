#include "bench/loadgen_cxx/grpc_connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace rusd::loadgen {
namespace {

constexpr size_t kReadBuffer = 256 << 10;

const char* PathOf(Method m) {
  switch (m) {
    case Method::kRange:
      return "/etcdserverpb.KV/Range";
    case Method::kPut:
      return "/etcdserverpb.KV/Put";
    case Method::kTxn:
      return "/etcdserverpb.KV/Txn";
    case Method::kWatch:
      return "/etcdserverpb.Watch/Watch";
  }
  return "";
}

nghttp2_nv Header(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

}  // namespace

// The header blocks of the three methods, built once per connection (nghttp2 is told not to
// copy them: they live as long as the connection).
struct GrpcConnectionHeaders {
  std::vector<std::string> strings;
  std::vector<nghttp2_nv> nv[4];
};

void UnaryCall::Reset() {
  sent_ = 0;
  stream_id_ = 0;
  data_.clear();
  message_ = {};
  http_status_ = 0;
  grpc_status_ = -1;
  grpc_message_.clear();
  error_.clear();
  failed_ = false;
}

Result<std::unique_ptr<GrpcConnection>> GrpcConnection::Connect(const std::string& host, int port,
                                                                FlowWindows windows) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    return Status::Unavailable("resolve " + host + ": " + gai_strerror(rc));
  }
  int fd = -1;
  std::string last = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    last = std::strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return Status::Unavailable("connect " + host + ":" + service + ": " + last);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  std::unique_ptr<GrpcConnection> c(new GrpcConnection(fd, host + ":" + service, windows));
  if (c->session_ == nullptr) return Status::Internal("nghttp2 session setup failed");
  return c;
}

GrpcConnection::GrpcConnection(int fd, std::string authority, FlowWindows windows)
    : fd_(fd), authority_(std::move(authority)), read_buf_(kReadBuffer) {
  headers_ = std::make_unique<GrpcConnectionHeaders>();
  auto& h = *headers_;
  // Reserve first: the nv entries point into these strings.
  h.strings.reserve(64);  // 4 methods x 6 headers x 2 strings, never reallocated
  auto add = [&](std::vector<nghttp2_nv>& nv, const std::string& n, const std::string& v) {
    h.strings.push_back(n);
    const std::string& name = h.strings.back();
    h.strings.push_back(v);
    nv.push_back(Header(name, h.strings.back()));
  };
  for (int m = 0; m < 4; ++m) {
    auto& nv = h.nv[m];
    add(nv, ":method", "POST");
    add(nv, ":scheme", "http");
    add(nv, ":path", PathOf(static_cast<Method>(m)));
    add(nv, ":authority", authority_);
    add(nv, "content-type", "application/grpc");
    add(nv, "te", "trailers");
  }

  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return;
  nghttp2_session_callbacks_set_on_header_callback(cbs, &GrpcConnection::OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &GrpcConnection::OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &GrpcConnection::OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &GrpcConnection::OnFrameRecv);
  int rc = nghttp2_session_client_new(&session_, cbs, this);
  nghttp2_session_callbacks_del(cbs);
  if (rc != 0) {
    session_ = nullptr;
    return;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(windows.stream)},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2) != 0 ||
      (windows.connection > 65535 &&
       nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, windows.connection) !=
           0)) {
    nghttp2_session_del(session_);
    session_ = nullptr;
  }
}

GrpcConnection::~GrpcConnection() {
  if (session_ != nullptr) nghttp2_session_del(session_);
  if (fd_ >= 0) close(fd_);
}

int32_t GrpcConnection::SubmitRequest(Method method, void* body_source,
                                      nghttp2_data_source_read_callback read_body,
                                      void* stream_user_data) {
  nghttp2_data_provider body;
  body.source.ptr = body_source;
  body.read_callback = read_body;
  const auto& nv = headers_->nv[static_cast<int>(method)];
  const int32_t id =
      nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), &body, stream_user_data);
  if (id < 0) {
    // Out of stream ids, or the session will not start streams any more (GOAWAY).
    goaway_ = true;
    if (dead_reason_.empty())
      dead_reason_ = std::string("cannot start a stream: ") + nghttp2_strerror(id);
  }
  return id;
}

bool GrpcConnection::Start(UnaryCall* call) {
  if (!usable()) return false;
  call->Reset();
  const int32_t id = SubmitRequest(call->method, call, &GrpcConnection::ReadRequest, call);
  if (id < 0) return false;
  call->stream_id_ = id;
  call->active_index_ = active_.size();
  active_.push_back(call);
  return true;
}

bool GrpcConnection::StartStream(StreamCall* call, Method method) {
  if (!usable()) return false;
  const int32_t id = SubmitRequest(method, call, &GrpcConnection::ReadStreamData, nullptr);
  if (id < 0) return false;
  call->stream_id_ = id;
  call->closed_ = false;
  streams_.push_back(call);
  return true;
}

bool GrpcConnection::Send(StreamCall* call, std::string_view frame) {
  if (!call->open() || dead_) return false;
  call->out_.append(frame);
  if (call->deferred_) {
    call->deferred_ = false;
    nghttp2_session_resume_data(session_, call->stream_id_);
  }
  return true;
}

StreamCall* GrpcConnection::StreamOf(int32_t stream_id) const {
  for (StreamCall* s : streams_) {
    if (s->stream_id_ == stream_id) return s;
  }
  return nullptr;
}

ssize_t GrpcConnection::ReadStreamData(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                       uint32_t*, nghttp2_data_source* source, void*) {
  auto* call = static_cast<StreamCall*>(source->ptr);
  const size_t left = call->out_.size() - call->out_off_;
  if (left == 0) {
    // Nothing queued: nghttp2 waits until Send resumes the stream (it is never ended from
    // this side; the benchmark ends it by closing the connection).
    call->out_.clear();
    call->out_off_ = 0;
    call->deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  const size_t n = left < length ? left : length;
  std::memcpy(buf, call->out_.data() + call->out_off_, n);
  call->out_off_ += n;
  return static_cast<ssize_t>(n);
}

// Splits the DATA of a stream into gRPC messages: whole messages are handed over from the
// chunk itself; only a message split across chunks is gathered in in_.
void GrpcConnection::StreamData(StreamCall* call, const uint8_t* data, size_t len) {
  if (!call->error_.empty()) return;
  auto frame_len = [](const uint8_t* d) {
    return (size_t{d[1]} << 24) | (size_t{d[2]} << 16) | (size_t{d[3]} << 8) | size_t{d[4]};
  };
  auto bad_flag = [&](const uint8_t* d) {
    if (d[0] == 0) return false;
    call->error_ = "compressed or malformed message frame (flag " + std::to_string(d[0]) + ")";
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, call->stream_id_, NGHTTP2_CANCEL);
    return true;
  };
  if (!call->in_.empty()) {
    // Complete the pending message first.
    size_t need = 5;
    if (call->in_.size() >= 5) need = 5 + frame_len(reinterpret_cast<const uint8_t*>(call->in_.data()));
    while (call->in_.size() < need && len > 0) {
      const size_t take = std::min(need - call->in_.size(), len);
      call->in_.append(reinterpret_cast<const char*>(data), take);
      data += take;
      len -= take;
      if (call->in_.size() == 5) need = 5 + frame_len(reinterpret_cast<const uint8_t*>(call->in_.data()));
    }
    if (call->in_.size() < need) return;
    const auto* d = reinterpret_cast<const uint8_t*>(call->in_.data());
    if (bad_flag(d)) return;
    call->OnMessage(std::string_view(call->in_).substr(5));
    call->in_.clear();
    if (call->closed_) return;
  }
  while (len >= 5 && len >= 5 + frame_len(data)) {
    if (bad_flag(data)) return;
    const size_t n = frame_len(data);
    call->OnMessage(std::string_view(reinterpret_cast<const char*>(data) + 5, n));
    if (call->closed_) return;
    data += 5 + n;
    len -= 5 + n;
  }
  if (len > 0) call->in_.assign(reinterpret_cast<const char*>(data), len);
}

void GrpcConnection::CloseStream(StreamCall* call, uint32_t error_code) {
  if (call->closed_) return;
  call->closed_ = true;
  if (auto it = std::find(streams_.begin(), streams_.end(), call); it != streams_.end())
    streams_.erase(it);
  std::string why;
  if (!call->error_.empty()) {
    why = call->error_;
  } else if (error_code != NGHTTP2_NO_ERROR) {
    why = std::string("stream reset: ") + nghttp2_http2_strerror(error_code);
  } else if (call->http_status_ != 200) {
    why = "HTTP status " + std::to_string(call->http_status_);
  } else if (call->grpc_status_ != 0) {
    why = call->grpc_status_ < 0 ? std::string("stream ended without grpc-status")
                                 : "grpc-status " + std::to_string(call->grpc_status_) + ": " +
                                       call->grpc_message_;
  } else if (!call->in_.empty()) {
    why = "stream ended inside a message";
  }
  call->OnClose(why.empty(), why);
}

void GrpcConnection::Cancel(UnaryCall* call, const char* reason) {
  if (dead_ || call->stream_id_ <= 0 || call->failed_) return;
  call->failed_ = true;
  call->error_ = reason;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, call->stream_id_, NGHTTP2_CANCEL);
}

bool GrpcConnection::Flush() {
  if (dead_) return true;
  for (;;) {
    const uint8_t* p = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &p);
    if (n < 0) {
      Fail(std::string("nghttp2: ") + nghttp2_strerror(static_cast<int>(n)));
      return true;
    }
    if (n == 0) break;
    out_.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  while (out_off_ < out_.size()) {
    ssize_t w = write(fd_, out_.data() + out_off_, out_.size() - out_off_);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      Fail(std::string("write: ") + std::strerror(errno));
      return true;
    }
    out_off_ += static_cast<size_t>(w);
  }
  out_.clear();
  out_off_ = 0;
  return true;
}

bool GrpcConnection::OnReadable() {
  while (!dead_) {
    ssize_t n = read(fd_, read_buf_.data(), read_buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Fail(std::string("read: ") + std::strerror(errno));
      break;
    }
    if (n == 0) {
      Fail(goaway_ ? "connection closed by the server after GOAWAY"
                   : "connection closed by the server");
      break;
    }
    ssize_t used = nghttp2_session_mem_recv(session_, read_buf_.data(), static_cast<size_t>(n));
    if (used < 0) {
      Fail(std::string("nghttp2: ") + nghttp2_strerror(static_cast<int>(used)));
      break;
    }
    // A short read drained the socket; level-triggered epoll reports whatever comes next,
    // so skip the read that would only say EAGAIN.
    if (static_cast<size_t>(n) < read_buf_.size()) break;
  }
  DeliverCompleted();
  return Flush();
}

void GrpcConnection::Finish(UnaryCall* call) {
  UnaryCall* last = active_.back();
  active_[call->active_index_] = last;
  last->active_index_ = call->active_index_;
  active_.pop_back();
  completed_.push_back(call);
}

void GrpcConnection::Fail(const std::string& reason) {
  if (dead_) return;
  dead_ = true;
  dead_reason_ = reason;
  for (UnaryCall* c : active_) {
    if (!c->failed_) {
      c->failed_ = true;
      c->error_ = reason;
    }
    completed_.push_back(c);
  }
  active_.clear();
  // Streams learn it now (a stream is not delivered after a read, as a unary call is).
  std::vector<StreamCall*> streams;
  streams.swap(streams_);
  for (StreamCall* s : streams) {
    if (s->error_.empty()) s->error_ = reason;
    CloseStream(s, NGHTTP2_NO_ERROR);
  }
  if (fd_ >= 0) close(fd_);  // also leaves every epoll set it was in
  fd_ = -1;
}

void GrpcConnection::DeliverCompleted() {
  while (!completed_.empty()) {
    delivering_.swap(completed_);
    for (UnaryCall* c : delivering_) {
      bool ok = false;
      if (c->failed_) {
        // error_ already says why
      } else if (c->http_status_ != 200) {
        c->error_ = "HTTP status " + std::to_string(c->http_status_);
      } else if (c->grpc_status_ != 0) {
        c->error_ = c->grpc_status_ < 0 ? std::string("response without grpc-status")
                                        : "grpc-status " + std::to_string(c->grpc_status_) + ": " +
                                              c->grpc_message_;
      } else if (c->data_.size() < 5) {
        c->error_ = "response without a message";
      } else {
        const auto* d = reinterpret_cast<const uint8_t*>(c->data_.data());
        const size_t len =
            (size_t{d[1]} << 24) | (size_t{d[2]} << 16) | (size_t{d[3]} << 8) | size_t{d[4]};
        if (d[0] != 0) {
          c->error_ = "compressed response message";
        } else if (5 + len != c->data_.size()) {
          c->error_ = "response is not exactly one message (" + std::to_string(c->data_.size()) +
                      " bytes, first " + std::to_string(len) + ")";
        } else {
          c->message_ = std::string_view(c->data_).substr(5, len);
          ok = true;
        }
      }
      c->OnDone(ok);
    }
    delivering_.clear();
  }
}

ssize_t GrpcConnection::ReadRequest(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                    uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* call = static_cast<UnaryCall*>(source->ptr);
  const size_t left = call->request_frame.size() - call->sent_;
  const size_t n = left < length ? left : length;
  std::memcpy(buf, call->request_frame.data() + call->sent_, n);
  call->sent_ += n;
  if (call->sent_ == call->request_frame.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

int GrpcConnection::OnHeader(nghttp2_session* session, const nghttp2_frame* frame,
                             const uint8_t* name, size_t namelen, const uint8_t* value,
                             size_t valuelen, uint8_t, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* self = static_cast<GrpcConnection*>(user);
  int* http_status = nullptr;
  int* grpc_status = nullptr;
  std::string* grpc_message = nullptr;
  if (StreamCall* s = self->StreamOf(frame->hd.stream_id)) {
    http_status = &s->http_status_;
    grpc_status = &s->grpc_status_;
    grpc_message = &s->grpc_message_;
  } else if (auto* call = static_cast<UnaryCall*>(
                 nghttp2_session_get_stream_user_data(session, frame->hd.stream_id))) {
    http_status = &call->http_status_;
    grpc_status = &call->grpc_status_;
    grpc_message = &call->grpc_message_;
  } else {
    return 0;
  }
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  auto number = [](std::string_view s) {
    int x = 0;
    for (char ch : s) {
      if (ch < '0' || ch > '9') return -2;
      x = x * 10 + (ch - '0');
    }
    return s.empty() ? -2 : x;
  };
  if (n == ":status") {
    *http_status = number(v);
  } else if (n == "grpc-status") {
    *grpc_status = number(v);
  } else if (n == "grpc-message") {
    grpc_message->assign(v);
  }
  return 0;
}

int GrpcConnection::OnDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                                const uint8_t* data, size_t len, void* user) {
  auto* self = static_cast<GrpcConnection*>(user);
  if (StreamCall* s = self->StreamOf(stream_id)) {
    self->StreamData(s, data, len);
    return 0;
  }
  auto* call = static_cast<UnaryCall*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (call != nullptr) call->data_.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int GrpcConnection::OnStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                                  void* user) {
  auto* self = static_cast<GrpcConnection*>(user);
  if (self->dead_) return 0;
  if (StreamCall* s = self->StreamOf(stream_id)) {
    self->CloseStream(s, error_code);
    return 0;
  }
  auto* call = static_cast<UnaryCall*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (call == nullptr) return 0;
  if (error_code != NGHTTP2_NO_ERROR && !call->failed_) {
    call->failed_ = true;
    call->error_ = std::string(error_code == NGHTTP2_REFUSED_STREAM ? "stream refused (GOAWAY): "
                                                                    : "stream reset: ") +
                   nghttp2_http2_strerror(error_code);
  }
  self->Finish(call);
  return 0;
}

int GrpcConnection::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<GrpcConnection*>(user);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    self->goaway_ = true;
    ++self->goaways_;
    if (self->dead_reason_.empty()) {
      self->dead_reason_ =
          std::string("GOAWAY ") + nghttp2_http2_strerror(frame->goaway.error_code);
    }
  }
  return 0;
}

}  // namespace rusd::loadgen
