#include "frontend/native_grpc/grpc_h2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <unordered_map>
#include <utility>

#include "frontend/native_grpc/session_allocator.h"

namespace rusd::frontend::native_grpc {
namespace {

// The client may send this much of a request before waiting for our WINDOW_UPDATE: large
// enough that a put of etcd's default 1.5 MiB limit takes one round trip, not 24.
constexpr int32_t kStreamWindow = 4 << 20;
constexpr int32_t kConnectionWindow = 16 << 20;
constexpr size_t kPrefixBytes = 5;  // compressed flag + big-endian length
constexpr const char* kOneMessage = "rusd: a unary call takes exactly one request message";

nghttp2_nv StaticHeader(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

// nghttp2 copies the value (it may not outlive the call).
nghttp2_nv CopiedHeader(std::string_view name, const std::string& value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NO_COPY_NAME};
}

// grpc-timeout: at most 8 digits and a unit (H M S m u n). Empty if valid, else grpc-go's
// error text (decodeTimeout in http_util.go; its strconv error for a bad number).
std::string GrpcTimeoutError(std::string_view v) {
  std::string quoted(1, '"');  // appended, not "\"" + ...: GCC 12's false -Wrestrict
  quoted.append(v);
  quoted.push_back('"');
  if (v.size() < 2) return "transport: timeout string is too short: " + quoted;
  if (v.size() > 9) return "transport: timeout string is too long: " + quoted;
  if (std::strchr("HMSmun", v.back()) == nullptr) {
    return "transport: timeout unit is not recognized: " + quoted;
  }
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') {
      std::string error = "strconv.ParseInt: parsing \"";
      error.append(v.substr(0, v.size() - 1));
      error.append("\": invalid syntax");
      return error;
    }
  }
  return {};
}

// grpc-go's check (http_util.go): "application/grpc" alone or followed by '+' or ';'.
bool GrpcContentType(std::string_view v) {
  constexpr std::string_view kBase = "application/grpc";
  if (v.substr(0, kBase.size()) != kBase) return false;
  return v.size() == kBase.size() || v[kBase.size()] == '+' || v[kBase.size()] == ';';
}

}  // namespace

std::string PercentEncodeGrpcMessage(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (char ch : message) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

struct GrpcH2Session::Impl {
  // One stream's call, from its request HEADERS until the stream closes.
  struct Call {
    int32_t stream_id = 0;
    std::string path;
    std::string content_type;
    std::string encoding;
    std::string timeout;
    std::string body;       // received DATA (prefix + message)
    bool answered = false;  // Respond ran (or a refusal): further request bytes are dropped
    bool refused_early = false;  // refused in a HEADERS/DATA callback, before END_STREAM
    bool reset_after_answer = false;  // send RST_STREAM(NO_ERROR) once the answer is sent
    bool headers_sent = false;  // our response HEADERS left (OnFrameSend)
    // Streaming calls (`streams`): decided at :path.
    bool streaming = false;
    bool refused_path = false;   // neither served nor streamed
    bool started = false;        // kStreamStart emitted (the owner knows the call)
    bool response_started = false;
    bool finished = false;       // Finish ran: trailers follow the queue
    bool deferred = false;       // the data provider returned NGHTTP2_ERR_DEFERRED
    GrpcMetadata metadata;       // request headers, then (after Finish) the trailers
    std::deque<std::string> out_q;  // prefixed messages to send; front from out_off on
    size_t out_off = 0;
    size_t queued = 0;
    // Request bytes not yet returned to the client's flow-control windows: a streaming call's
    // partial message and the messages the owner has not declared done (MessageDone).
    size_t unconsumed = 0;
    // The response, once answered OK: prefix + message, sent from `sent` on.
    char prefix[kPrefixBytes] = {};
    std::string message;
    size_t sent = 0;

    // Back to a fresh call's state for stream `id`, keeping the small buffers' capacity
    // (a pooled call: see `spare`); large ones are released.
    void Reset(int32_t id) {
      stream_id = id;
      path.clear();
      content_type.clear();
      encoding.clear();
      timeout.clear();
      ClearOrRelease(&body);
      answered = refused_early = reset_after_answer = headers_sent = false;
      streaming = refused_path = started = response_started = finished = deferred = false;
      if (metadata.capacity() > 16) {
        GrpcMetadata().swap(metadata);
      } else {
        metadata.clear();
      }
      out_q.clear();  // libstdc++ keeps its map and one node: no allocation on reuse
      out_off = 0;
      queued = 0;
      unconsumed = 0;
      ClearOrRelease(&message);
      sent = 0;
    }

    static void ClearOrRelease(std::string* s) {
      if (s->capacity() > kKeepBytes) {
        std::string().swap(*s);
      } else {
        s->clear();
      }
    }
    static constexpr size_t kKeepBytes = 4096;
  };

  // nghttp2's memory (session_allocator.h); outlives the session (deleted in ~Impl's body).
  SessionAllocator allocator;
  nghttp2_session* session = nullptr;  // null if its setup failed (init_error)
  int init_error = 0;
  size_t max_message;
  GrpcH2Session::ServedPath serves;
  using CallMap = std::unordered_map<int32_t, std::unique_ptr<Call>>;
  CallMap calls;
  // Closed streams' calls with their map nodes, reused by the next streams: a call's
  // objects (the call, its deque's blocks, its strings, the map node) are allocated on the
  // thread that reads requests and were freed on the one that writes the answers, which
  // glibc's per-thread caches do not serve (~5 allocations per call).
  static constexpr size_t kSpareCalls = 16;
  std::vector<CallMap::node_type> spare;
  GrpcH2Session::ServedPath streams;
  std::vector<GrpcRequest>* requests = nullptr;  // set during Receive
  std::vector<GrpcRequest> later;  // events raised outside Receive (TakeEvents)

  Impl(size_t max, GrpcH2Session::ServedPath s, GrpcH2Session::ServedPath st)
      : max_message(max), serves(std::move(s)), streams(std::move(st)) {}

  void Emit(GrpcRequest&& event) {
    (requests != nullptr ? requests : &later)->push_back(std::move(event));
  }

  // The owner forgets a started streaming call (it closed, or was refused here).
  void EmitCancel(Call* call) {
    if (!call->started || call->finished) return;
    call->finished = true;
    GrpcRequest e;
    e.kind = GrpcRequest::Kind::kStreamCancel;
    e.stream_id = call->stream_id;
    Emit(std::move(e));
  }
  ~Impl() { nghttp2_session_del(session); }

  Call* Find(int32_t stream_id) {
    auto it = calls.find(stream_id);
    return it == calls.end() ? nullptr : it->second.get();
  }

  // Trailers-Only: one HEADERS frame with END_STREAM. `http_status` 200 but for a wrong
  // content-type (415) or a malformed header (400), as grpc-go.
  bool SubmitError(Call* call, const Status& status, const char* http_status = "200") {
    if (call->streaming) {
      EmitCancel(call);
      if (call->response_started) {
        return FinishStream(call, static_cast<int>(status.code()), status.message(), {});
      }
    }
    return SubmitTrailersOnly(call, static_cast<int>(status.code()), status.message(), {},
                              http_status);
  }

  // The call is answered: the request bytes not yet passed on will never be; a streaming
  // call's go back to the client's windows now (a unary call's went at once).
  void DropBody(Call* call) {
    if (call->streaming) Consume(call, call->body.size());
    call->body.clear();
  }

  void Consume(Call* call, size_t bytes) {
    bytes = std::min(bytes, call->unconsumed);
    if (bytes == 0) return;
    call->unconsumed -= bytes;
    nghttp2_session_consume(session, call->stream_id, bytes);
  }

  bool SubmitTrailersOnly(Call* call, int code_value, std::string_view message,
                          const GrpcMetadata& extra, const char* http_status = "200") {
    call->answered = true;
    DropBody(call);
    const std::string code = std::to_string(code_value);
    const std::string text = PercentEncodeGrpcMessage(message);
    std::vector<nghttp2_nv> nva = {StaticHeader(":status", http_status),
                                   StaticHeader("content-type", "application/grpc"),
                                   CopiedHeader("grpc-status", code)};
    if (!message.empty()) nva.push_back(CopiedHeader("grpc-message", text));
    for (const auto& [n, v] : extra) nva.push_back(CopiedPair(n, v));
    return nghttp2_submit_response(session, call->stream_id, nva.data(), nva.size(), nullptr) ==
           0;
  }

  static nghttp2_nv CopiedPair(const std::string& name, const std::string& value) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
            value.size(), NGHTTP2_NV_FLAG_NONE};
  }

  // --- streaming responses ---

  bool StartStream(Call* call, const GrpcMetadata& initial) {
    if (call->response_started) return true;
    std::vector<nghttp2_nv> nva = {StaticHeader(":status", "200"),
                                   StaticHeader("content-type", "application/grpc")};
    for (const auto& [n, v] : initial) nva.push_back(CopiedPair(n, v));
    nghttp2_data_provider data;
    data.source.ptr = call;
    data.read_callback = &Impl::ReadStream;
    // Started only if submitted: a failed submit must not make SendMessage and Finish act as
    // if the HEADERS were on their way (they would queue behind nothing).
    call->response_started =
        nghttp2_submit_response(session, call->stream_id, nva.data(), nva.size(), &data) == 0;
    return call->response_started;
  }

  // Trailers after what is queued (the response HEADERS were submitted).
  bool FinishStream(Call* call, int code, std::string_view message, const GrpcMetadata& extra) {
    call->answered = true;
    DropBody(call);
    call->metadata.clear();
    call->metadata.emplace_back("grpc-status", std::to_string(code));
    if (!message.empty()) {
      call->metadata.emplace_back("grpc-message", PercentEncodeGrpcMessage(message));
    }
    call->metadata.insert(call->metadata.end(), extra.begin(), extra.end());
    Resume(call);
    return true;
  }

  void Resume(Call* call) {
    if (!call->deferred) return;
    call->deferred = false;
    nghttp2_session_resume_data(session, call->stream_id);
  }

  static ssize_t ReadStream(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                            size_t length, uint32_t* flags, nghttp2_data_source* source,
                            void*) {
    auto* call = static_cast<Call*>(source->ptr);
    size_t n = 0;
    while (n < length && !call->out_q.empty()) {
      const std::string& front = call->out_q.front();
      const size_t take = std::min(length - n, front.size() - call->out_off);
      std::memcpy(buf + n, front.data() + call->out_off, take);
      n += take;
      call->out_off += take;
      if (call->out_off == front.size()) {
        call->out_q.pop_front();
        call->out_off = 0;
      }
    }
    call->queued -= n;
    if (call->out_q.empty() && call->answered) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nva;
      for (const auto& [k, v] : call->metadata) nva.push_back(CopiedPair(k, v));
      if (nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size()) != 0) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      return static_cast<ssize_t>(n);
    }
    if (n == 0) {
      call->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }

  // The streaming call's request messages, as they complete in call->body.
  void ExtractMessages(Call* call) {
    size_t off = 0;
    const std::string& b = call->body;
    while (b.size() - off >= kPrefixBytes) {
      const size_t length = MessageLength(b, off);
      if (length > max_message) {
        Refuse(call, Status::ResourceExhausted("grpc: received message larger than max (" +
                                               std::to_string(length) + " vs. " +
                                               std::to_string(max_message) + ")"));
        return;
      }
      if (b[off] != 0) {
        Refuse(call, Status::Internal("grpc: compressed flag set with identity or empty "
                                      "encoding"));
        return;
      }
      if (b.size() - off < kPrefixBytes + length) break;
      GrpcRequest e;
      e.kind = GrpcRequest::Kind::kStreamMessage;
      e.stream_id = call->stream_id;
      e.message.assign(b, off + kPrefixBytes, length);
      Emit(std::move(e));
      off += kPrefixBytes + length;
    }
    call->body.erase(0, off);
  }

  bool SubmitOk(Call* call, std::string&& message) {
    call->answered = true;
    call->body.clear();
    call->message = std::move(message);
    const auto len = static_cast<uint32_t>(call->message.size());
    call->prefix[0] = 0;
    call->prefix[1] = static_cast<char>(len >> 24);
    call->prefix[2] = static_cast<char>(len >> 16);
    call->prefix[3] = static_cast<char>(len >> 8);
    call->prefix[4] = static_cast<char>(len);
    nghttp2_nv nva[] = {StaticHeader(":status", "200"),
                        StaticHeader("content-type", "application/grpc")};
    nghttp2_data_provider data;
    data.source.ptr = call;
    data.read_callback = &Impl::ReadResponse;
    return nghttp2_submit_response(session, call->stream_id, nva, 2, &data) == 0;
  }

  // A refusal before the request ended (HEADERS or DATA callbacks): the frame's END_STREAM
  // is known only in OnFrameRecv, which then decides on the RST_STREAM.
  void Refuse(Call* call, const Status& status, const char* http_status = "200") {
    SubmitError(call, status, http_status);
    call->refused_early = true;
  }

  // The request HEADERS arrived: refuse what no method may see.
  void CheckHeaders(Call* call) {
    // grpc-go's order and answers (http2_server.go, operateHeaders): content-type, then the
    // headers' errors, then the method and the encoding.
    if (!GrpcContentType(call->content_type)) {
      Refuse(call,
             Status::InvalidArgument("invalid gRPC request content-type \"" +
                                     call->content_type + "\""),
             "415");
      return;
    }
    if (!call->timeout.empty()) {
      std::string error = GrpcTimeoutError(call->timeout);
      if (!error.empty()) {
        Refuse(call, Status::Internal("malformed grpc-timeout: " + error), "400");
        return;
      }
    }
    if (call->refused_path) {
      Refuse(call, Status::Unimplemented("rusd: " + call->path +
                                         " is not served by the native gRPC server yet"));
    } else if (!call->encoding.empty() && call->encoding != "identity") {
      Refuse(call, Status::Unimplemented("grpc: Decompressor is not installed for "
                                         "grpc-encoding \"" + call->encoding + "\""));
    }
  }

  // The request HEADERS passed CheckHeaders: the owner learns of the streaming call.
  void StartCall(Call* call) {
    call->started = true;
    GrpcRequest e;
    e.kind = GrpcRequest::Kind::kStreamStart;
    e.stream_id = call->stream_id;
    e.path = call->path;
    e.timeout = std::move(call->timeout);
    e.metadata = std::move(call->metadata);
    call->metadata.clear();
    Emit(std::move(e));
  }

  // END_STREAM: the request is complete.
  void FinishRequest(Call* call) {
    if (call->answered) return;
    if (call->streaming) {
      GrpcRequest e;
      e.kind = GrpcRequest::Kind::kStreamHalfClose;
      e.stream_id = call->stream_id;
      Emit(std::move(e));
      return;
    }
    const std::string& b = call->body;
    if (b.size() < kPrefixBytes) {
      SubmitError(call, Status::Internal(kOneMessage));
      return;
    }
    if (b[0] != 0) {
      SubmitError(call, Status::Internal("grpc: compressed flag set with identity or empty "
                                         "encoding"));
      return;
    }
    if (b.size() != kPrefixBytes + MessageLength(b)) {
      SubmitError(call, Status::Internal(kOneMessage));
      return;
    }
    // Moved, not copied: the call keeps neither (one allocation less per request).
    GrpcRequest r;
    r.stream_id = call->stream_id;
    r.path = std::move(call->path);
    call->body.erase(0, kPrefixBytes);
    r.message = std::move(call->body);
    requests->push_back(std::move(r));
  }

  static size_t MessageLength(const std::string& b, size_t off = 0) {
    return (static_cast<size_t>(static_cast<uint8_t>(b[off + 1])) << 24) |
           (static_cast<size_t>(static_cast<uint8_t>(b[off + 2])) << 16) |
           (static_cast<size_t>(static_cast<uint8_t>(b[off + 3])) << 8) |
           static_cast<size_t>(static_cast<uint8_t>(b[off + 4]));
  }

  // --- nghttp2 callbacks (user_data = Impl*) ---

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;
    }
    const int32_t id = frame->hd.stream_id;
    if (auto it = self->calls.find(id); it != self->calls.end()) {
      it->second->Reset(id);  // a fresh call, as a replaced one would be
      return 0;
    }
    if (self->spare.empty()) {
      auto call = std::make_unique<Call>();
      call->stream_id = id;
      self->calls.emplace(id, std::move(call));
      return 0;
    }
    CallMap::node_type node = std::move(self->spare.back());
    self->spare.pop_back();
    node.key() = id;
    node.mapped()->stream_id = id;  // Reset when it was spared
    self->calls.insert(std::move(node));
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user) {
    auto* self = static_cast<Impl*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;  // trailers from the client carry nothing we use
    }
    Call* call = self->Find(frame->hd.stream_id);
    if (call == nullptr) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":path") {
      call->path = v;
      if (self->serves && !self->serves(v)) {
        if (self->streams && self->streams(v)) {
          call->streaming = true;
        } else {
          call->refused_path = true;
        }
      }
    } else if (n == "content-type") {
      call->content_type = v;
    } else if (n == "grpc-encoding") {
      call->encoding = v;
    } else if (n == "grpc-timeout") {
      call->timeout = v;
    } else if (call->streaming && !n.empty() && n[0] != ':' && n != "te" &&
               n != "user-agent" && !n.starts_with("grpc-")) {
      call->metadata.emplace_back(n, v);  // pseudo-headers come first: :path is known
    }
    return 0;
  }

  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user) {
    auto* self = static_cast<Impl*>(user);
    Call* call = self->Find(stream_id);
    if (call == nullptr || call->answered || !call->streaming) {
      // Flow control (no automatic WINDOW_UPDATE, see the constructor): a unary request's
      // bytes, and discarded ones, go back to the client's windows at once.
      nghttp2_session_consume(self->session, stream_id, len);
      if (call == nullptr || call->answered) return 0;  // discarded
    }
    call->body.append(reinterpret_cast<const char*>(data), len);
    if (call->streaming) {
      call->unconsumed += len;  // returned once the owner is done with each message
      self->ExtractMessages(call);
      return 0;
    }
    if (call->body.size() >= kPrefixBytes) {
      const size_t length = MessageLength(call->body);
      if (length > self->max_message) {
        self->Refuse(call, Status::ResourceExhausted(
                                    "grpc: received message larger than max (" +
                                    std::to_string(length) + " vs. " +
                                    std::to_string(self->max_message) + ")"));
      } else if (call->body.size() > kPrefixBytes + length) {
        // A second message (as grpc-go, INTERNAL): answered now, not at END_STREAM, so a
        // client that keeps sending cannot make the body grow past one message.
        self->Refuse(call, Status::Internal(kOneMessage));
      } else if (call->body.size() == kPrefixBytes) {
        call->body.reserve(kPrefixBytes + length);  // one allocation for a large request
      }
    }
    return 0;
  }

  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    Call* call = self->Find(frame->hd.stream_id);
    if (call == nullptr) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      self->CheckHeaders(call);
      if (call->streaming && !call->answered) self->StartCall(call);
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      self->FinishRequest(call);
    } else if (call->refused_early) {
      call->refused_early = false;
      call->reset_after_answer = true;  // OnFrameSend, or now if the answer already left
      if (call->headers_sent) return self->ResetAfterAnswer(call);
    }
    return 0;
  }

  int ResetAfterAnswer(Call* call) {
    call->reset_after_answer = false;
    if (nghttp2_session_get_stream_remote_close(session, call->stream_id) != 0) return 0;
    if (nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_NO_ERROR) != 0) {
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }

  // As grpc-go: RST_STREAM(NO_ERROR) after the Trailers-Only answer of a call refused before
  // the client half-closed, so the client stops uploading the rest of the request. Submitted
  // once the answer is sent: a RST_STREAM queued earlier makes nghttp2 drop the answer.
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    // A streaming call's first HEADERS are not its answer: only the END_STREAM ones.
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
    auto* self = static_cast<Impl*>(user);
    Call* call = self->Find(frame->hd.stream_id);
    if (call == nullptr) return 0;
    call->headers_sent = true;
    return call->reset_after_answer ? self->ResetAfterAnswer(call) : 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
    auto* self = static_cast<Impl*>(user);
    auto it = self->calls.find(stream_id);
    if (it == self->calls.end()) return 0;
    self->EmitCancel(it->second.get());
    // What the owner still holds of the stream's messages goes back to the connection's
    // window now (a later MessageDone finds no call and does nothing).
    if (it->second->unconsumed > 0) {
      nghttp2_session_consume_connection(self->session, it->second->unconsumed);
    }
    if (self->spare.size() >= kSpareCalls) {
      self->calls.erase(it);
      return 0;
    }
    CallMap::node_type node = self->calls.extract(it);
    node.mapped()->Reset(0);
    self->spare.push_back(std::move(node));
    return 0;
  }

  static ssize_t ReadResponse(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                              size_t length, uint32_t* flags, nghttp2_data_source* source,
                              void*) {
    auto* call = static_cast<Call*>(source->ptr);
    const size_t total = kPrefixBytes + call->message.size();
    size_t n = 0;
    while (n < length && call->sent < total) {
      if (call->sent < kPrefixBytes) {
        buf[n++] = static_cast<uint8_t>(call->prefix[call->sent++]);
        continue;
      }
      const size_t from = call->sent - kPrefixBytes;
      const size_t take = std::min(length - n, call->message.size() - from);
      std::memcpy(buf + n, call->message.data() + from, take);
      n += take;
      call->sent += take;
    }
    if (call->sent == total) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      call->message.clear();
      call->message.shrink_to_fit();
      nghttp2_nv trailers[] = {StaticHeader("grpc-status", "0")};
      if (nghttp2_submit_trailer(session, stream_id, trailers, 1) != 0) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
    }
    return static_cast<ssize_t>(n);
  }
};

GrpcH2Session::GrpcH2Session(size_t max_receive_message_bytes, ServedPath serves,
                             ServedPath streams)
    : impl_(std::make_unique<Impl>(max_receive_message_bytes, std::move(serves),
                                   std::move(streams))) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &Impl::OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cb, &Impl::OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Impl::OnDataChunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Impl::OnFrameRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Impl::OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &Impl::OnFrameSend);
  // Per-call costs nghttp2 need not pay for gRPC: the RFC 7540 priority tree (gRPC never
  // uses priorities; closed streams would be kept for it) and HTTP messaging checks of every
  // header (what gRPC needs of the headers is checked here).
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_closed_streams(option, 1);
  nghttp2_option_set_no_http_messaging(option, 1);
  // Request bytes go back to the client's flow-control windows when we are done with them
  // (nghttp2_session_consume), not on arrival: a client streaming requests faster than the
  // owner takes them (MessageDone) runs out of window instead of growing our memory.
  nghttp2_option_set_no_auto_window_update(option, 1);
  int rv = nghttp2_session_server_new3(&impl_->session, cb, impl_.get(), option,
                                       impl_->allocator.mem());
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    impl_->session = nullptr;
    impl_->init_error = rv;
    return;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0x7fffffff},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  rv = nghttp2_submit_settings(impl_->session, NGHTTP2_FLAG_NONE, settings, 3);
  if (rv == 0) {
    rv = nghttp2_session_set_local_window_size(impl_->session, NGHTTP2_FLAG_NONE, 0,
                                               kConnectionWindow);
  }
  if (rv != 0) {
    nghttp2_session_del(impl_->session);
    impl_->session = nullptr;
    impl_->init_error = rv;
  }
}

Status GrpcH2Session::InitError() const {
  return Status::Unavailable(std::string("http2: session setup: ") +
                             nghttp2_strerror(impl_->init_error));
}

GrpcH2Session::~GrpcH2Session() = default;

Status GrpcH2Session::Receive(std::string_view bytes, std::vector<GrpcRequest>* requests) {
  if (impl_->session == nullptr) return InitError();
  impl_->requests = requests;
  ssize_t n = nghttp2_session_mem_recv(impl_->session,
                                       reinterpret_cast<const uint8_t*>(bytes.data()),
                                       bytes.size());
  impl_->requests = nullptr;
  if (n < 0) {
    return Status::Unavailable(std::string("http2: ") + nghttp2_strerror(static_cast<int>(n)));
  }
  return Status::Ok();
}

bool GrpcH2Session::Respond(int32_t stream_id, const Status& status, std::string&& message) {
  if (impl_->session == nullptr) return false;
  Impl::Call* call = impl_->Find(stream_id);
  if (call == nullptr || call->answered) return false;
  return status.ok() ? impl_->SubmitOk(call, std::move(message))
                     : impl_->SubmitError(call, status);
}

bool GrpcH2Session::StartResponse(int32_t stream_id, const GrpcMetadata& initial) {
  if (impl_->session == nullptr) return false;
  Impl::Call* call = impl_->Find(stream_id);
  if (call == nullptr || !call->streaming || call->answered) return false;
  return impl_->StartStream(call, initial);
}

bool GrpcH2Session::SendMessage(int32_t stream_id, std::string_view message) {
  if (impl_->session == nullptr) return false;
  Impl::Call* call = impl_->Find(stream_id);
  if (call == nullptr || !call->streaming || call->answered) return false;
  if (!impl_->StartStream(call, {})) return false;
  std::string framed(kPrefixBytes + message.size(), '\0');
  const auto len = static_cast<uint32_t>(message.size());
  framed[1] = static_cast<char>(len >> 24);
  framed[2] = static_cast<char>(len >> 16);
  framed[3] = static_cast<char>(len >> 8);
  framed[4] = static_cast<char>(len);
  if (!message.empty()) std::memcpy(framed.data() + kPrefixBytes, message.data(), message.size());
  call->queued += framed.size();
  call->out_q.push_back(std::move(framed));
  impl_->Resume(call);
  return true;
}

bool GrpcH2Session::SendPrefixed(int32_t stream_id, std::string&& prefixed) {
  if (impl_->session == nullptr) return false;
  Impl::Call* call = impl_->Find(stream_id);
  if (call == nullptr || !call->streaming || call->answered) return false;
  if (!impl_->StartStream(call, {})) return false;
  if (prefixed.empty()) return true;
  call->queued += prefixed.size();
  call->out_q.push_back(std::move(prefixed));
  impl_->Resume(call);
  return true;
}

bool GrpcH2Session::Finish(int32_t stream_id, int code, std::string_view message,
                           const GrpcMetadata& trailing) {
  if (impl_->session == nullptr) return false;
  Impl::Call* call = impl_->Find(stream_id);
  if (call == nullptr || !call->streaming || call->answered) return false;
  call->finished = true;
  // As grpc-go: a stream we end before the client half-closed is reset after the trailers.
  call->reset_after_answer =
      nghttp2_session_get_stream_remote_close(impl_->session, stream_id) == 0;
  if (!call->response_started) {
    return impl_->SubmitTrailersOnly(call, code, message, trailing);
  }
  return impl_->FinishStream(call, code, message, trailing);
}

void GrpcH2Session::MessageDone(int32_t stream_id, size_t message_bytes) {
  if (impl_->session == nullptr) return;
  Impl::Call* call = impl_->Find(stream_id);
  if (call != nullptr) impl_->Consume(call, kPrefixBytes + message_bytes);
}

size_t GrpcH2Session::queued_bytes(int32_t stream_id) const {
  Impl::Call* call = impl_->Find(stream_id);
  return call == nullptr ? 0 : call->queued;
}

void GrpcH2Session::TakeEvents(std::vector<GrpcRequest>* events) {
  if (impl_->later.empty()) return;
  for (GrpcRequest& e : impl_->later) events->push_back(std::move(e));
  impl_->later.clear();
}

Status GrpcH2Session::Produce(std::string* out, size_t limit) {
  if (impl_->session == nullptr) return InitError();
  while (out->size() < limit) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(impl_->session, &data);
    if (n < 0) {
      return Status::Unavailable(std::string("http2: ") + nghttp2_strerror(static_cast<int>(n)));
    }
    if (n == 0) break;
    out->append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return Status::Ok();
}

bool GrpcH2Session::WantsWrite() const {
  return impl_->session != nullptr && nghttp2_session_want_write(impl_->session) != 0;
}

bool GrpcH2Session::Alive() const {
  if (impl_->session == nullptr) return false;
  return nghttp2_session_want_read(impl_->session) != 0 ||
         nghttp2_session_want_write(impl_->session) != 0;
}

void GrpcH2Session::SubmitGoaway() {
  if (impl_->session == nullptr) return;
  nghttp2_submit_goaway(impl_->session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(impl_->session),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

size_t GrpcH2Session::open_calls() const {
  size_t n = 0;
  for (const auto& [id, call] : impl_->calls) n += call->answered ? 0 : 1;
  return n;
}

}  // namespace rusd::frontend::native_grpc
