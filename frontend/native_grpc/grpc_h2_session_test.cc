// GrpcH2Session without sockets: a real nghttp2 *client* session produces the bytes a gRPC
// client would send, and parses what the server session answers.
#include "frontend/native_grpc/grpc_h2_session.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rusd::frontend::native_grpc {
namespace {

std::string Framed(std::string_view message, bool compressed = false) {
  std::string out(5, '\0');
  out[0] = compressed ? 1 : 0;
  const auto n = static_cast<uint32_t>(message.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  out.append(message);
  return out;
}

// What the client saw on one stream.
struct ClientStream {
  std::map<std::string, std::string> headers;   // the response HEADERS
  std::map<std::string, std::string> trailers;  // the trailing HEADERS
  int header_frames = 0;
  std::string data;
  bool closed = false;
  uint32_t close_error = 0;
  bool reset = false;  // the server sent RST_STREAM
  uint32_t reset_error = 0;
};

class TestClient {
 public:
  TestClient() {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, &OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &OnFrame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &OnClose);
    nghttp2_session_client_new(&session_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~TestClient() { nghttp2_session_del(session_); }

  // Starts a call whose request body is `body` (already framed, or deliberately not).
  int32_t Call(const std::string& path, std::string body,
               std::vector<std::pair<std::string, std::string>> extra = {},
               std::string content_type = "application/grpc", bool end_stream = true) {
    std::vector<std::pair<std::string, std::string>> h = {
        {":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "localhost"},
        {"content-type", content_type}, {"te", "trailers"}};
    h.insert(h.end(), extra.begin(), extra.end());
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : h) {
      nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()),
                     n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    auto b = std::make_unique<Body>();
    b->bytes = std::move(body);
    b->end_stream = end_stream;
    nghttp2_data_provider p;
    p.source.ptr = b.get();
    p.read_callback = &ReadBody;
    int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &p, nullptr);
    bodies_.push_back(std::move(b));
    return id;
  }

  void Reset(int32_t stream) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, NGHTTP2_CANCEL);
  }

  std::string Produce() {
    std::string out;
    for (;;) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      EXPECT_GE(n, 0);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    return out;
  }

  void Receive(const std::string& bytes) {
    ssize_t n = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                         bytes.size());
    EXPECT_EQ(n, static_cast<ssize_t>(bytes.size())) << nghttp2_strerror(static_cast<int>(n));
  }

  std::map<int32_t, ClientStream> streams;
  int32_t goaway_last_stream = -1;  // from the server's GOAWAY

 private:
  struct Body {
    std::string bytes;
    size_t off = 0;
    bool end_stream = true;  // false: the body ends without END_STREAM (a streaming call)
  };
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* b = static_cast<Body*>(source->ptr);
    size_t n = std::min(length, b->bytes.size() - b->off);
    std::memcpy(buf, b->bytes.data() + b->off, n);
    b->off += n;
    if (b->off == b->bytes.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!b->end_stream) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return static_cast<ssize_t>(n);
  }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nl,
                      const uint8_t* value, size_t vl, uint8_t, void* user) {
    auto& s = static_cast<TestClient*>(user)->streams[f->hd.stream_id];
    auto& into = f->headers.cat == NGHTTP2_HCAT_RESPONSE ? s.headers : s.trailers;
    into[std::string(reinterpret_cast<const char*>(name), nl)] =
        std::string(reinterpret_cast<const char*>(value), vl);
    return 0;
  }
  static int OnFrame(nghttp2_session*, const nghttp2_frame* f, void* user) {
    auto* self = static_cast<TestClient*>(user);
    if (f->hd.type == NGHTTP2_HEADERS) ++self->streams[f->hd.stream_id].header_frames;
    if (f->hd.type == NGHTTP2_GOAWAY) self->goaway_last_stream = f->goaway.last_stream_id;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
      self->streams[f->hd.stream_id].reset = true;
      self->streams[f->hd.stream_id].reset_error = f->rst_stream.error_code;
    }
    return 0;
  }
  static int OnData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n,
                    void* user) {
    static_cast<TestClient*>(user)->streams[id].data.append(reinterpret_cast<const char*>(d), n);
    return 0;
  }
  static int OnClose(nghttp2_session*, int32_t id, uint32_t error, void* user) {
    auto& s = static_cast<TestClient*>(user)->streams[id];
    s.closed = true;
    s.close_error = error;
    return 0;
  }

  nghttp2_session* session_ = nullptr;
  std::vector<std::unique_ptr<Body>> bodies_;
};

constexpr size_t kLimit = 1000;

bool IsKv(std::string_view path) { return path.starts_with("/etcdserverpb.KV/"); }

struct Pair {
  // Serves KV only, as the native server without forwarding; `streams` as with it.
  explicit Pair(GrpcH2Session::ServedPath streams = {})
      : server(kLimit, &IsKv, std::move(streams)) {}
  TestClient client;
  GrpcH2Session server;
  std::vector<GrpcRequest> requests;

  // Moves bytes both ways until neither side has anything to say. With `byte_at_a_time`
  // the client's bytes reach the server one byte per Receive call.
  void Pump(bool byte_at_a_time = false) {
    for (int round = 0; round < 10000; ++round) {
      std::string up = client.Produce();
      if (byte_at_a_time) {
        for (char ch : up) {
          ASSERT_TRUE(server.Receive(std::string_view(&ch, 1), &requests).ok());
        }
      } else if (!up.empty()) {
        ASSERT_TRUE(server.Receive(up, &requests).ok());
      }
      std::string down;
      ASSERT_TRUE(server.Produce(&down, 1 << 30).ok());
      if (!down.empty()) client.Receive(down);
      if (up.empty() && down.empty()) return;
    }
    FAIL() << "no quiescence";
  }
};

TEST(GrpcH2Session, UnaryCallHasHeadersMessageAndOkTrailers) {
  Pair p;
  int32_t id = p.client.Call("/etcdserverpb.KV/Put", Framed("request"));
  p.Pump();
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.requests[0].stream_id, id);
  EXPECT_EQ(p.requests[0].path, "/etcdserverpb.KV/Put");
  EXPECT_EQ(p.requests[0].message, "request");
  EXPECT_EQ(p.server.open_calls(), 1u);
  ASSERT_TRUE(p.server.Respond(id, Status::Ok(), "response"));
  p.Pump();
  const ClientStream& s = p.client.streams[id];
  EXPECT_EQ(s.headers.at(":status"), "200");
  EXPECT_EQ(s.headers.at("content-type"), "application/grpc");
  EXPECT_EQ(s.data, Framed("response"));
  EXPECT_EQ(s.trailers.at("grpc-status"), "0");
  EXPECT_EQ(s.trailers.count("grpc-message"), 0u);
  EXPECT_EQ(s.header_frames, 2);
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.close_error, 0u);
  EXPECT_EQ(p.server.open_calls(), 0u);
  EXPECT_FALSE(p.server.Respond(id, Status::Ok(), "again"));  // answered once only
}

TEST(GrpcH2Session, ErrorIsTrailersOnlyWithPercentEncodedMessage) {
  Pair p;
  int32_t id = p.client.Call("/etcdserverpb.KV/Put", Framed("x"));
  p.Pump();
  ASSERT_TRUE(p.server.Respond(id, Status::InvalidArgument("etcdserver: bad 100%\n"), "ignored"));
  p.Pump();
  const ClientStream& s = p.client.streams[id];
  EXPECT_EQ(s.header_frames, 1);
  EXPECT_EQ(s.headers.at(":status"), "200");
  EXPECT_EQ(s.headers.at("grpc-status"), "3");
  EXPECT_EQ(s.headers.at("grpc-message"), "etcdserver: bad 100%25%0A");
  EXPECT_TRUE(s.data.empty());
  EXPECT_TRUE(s.closed);
}

TEST(GrpcH2Session, WrongContentTypeIsRefusedWith415) {
  Pair p;
  int32_t id = p.client.Call("/etcdserverpb.KV/Put", Framed("x"), {}, "application/json");
  p.Pump();
  EXPECT_TRUE(p.requests.empty());
  const ClientStream& s = p.client.streams[id];
  EXPECT_EQ(s.headers.at(":status"), "415");
  EXPECT_EQ(s.headers.at("grpc-status"), "3");  // grpc-go's code and text
  EXPECT_EQ(s.headers.at("grpc-message"), "invalid gRPC request content-type \"application/json\"");
  // application/grpc+proto is gRPC too.
  int32_t ok = p.client.Call("/etcdserverpb.KV/Put", Framed("x"), {}, "application/grpc+proto");
  p.Pump();
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.requests[0].stream_id, ok);
}

// Closed streams' calls are reused (kept capacity, reset state): nothing of a refused or
// answered call leaks into a later one on the same connection.
TEST(GrpcH2Session, ReusedCallsStartFresh) {
  Pair p;
  for (int round = 0; round < 40; ++round) {
    std::vector<int32_t> ok;
    for (int i = 0; i < 5; ++i) {
      ok.push_back(p.client.Call("/etcdserverpb.KV/Put", Framed("req" + std::to_string(i))));
    }
    int32_t bad_type = p.client.Call("/etcdserverpb.KV/Put", Framed("x"),
                                     {{"grpc-timeout", "5S"}}, "text/plain");
    int32_t compressed =
        p.client.Call("/etcdserverpb.KV/Range", Framed("x"), {{"grpc-encoding", "gzip"}});
    int32_t unserved = p.client.Call("/etcdserverpb.Watch/Watch", Framed("w"), {},
                                     "application/grpc", /*end_stream=*/false);
    int32_t two = p.client.Call("/etcdserverpb.KV/Txn", Framed("a") + Framed("b"));
    p.requests.clear();
    p.Pump();
    ASSERT_EQ(p.requests.size(), ok.size()) << round;
    for (size_t i = 0; i < ok.size(); ++i) {
      EXPECT_EQ(p.requests[i].stream_id, ok[i]);
      EXPECT_EQ(p.requests[i].path, "/etcdserverpb.KV/Put");
      EXPECT_EQ(p.requests[i].message, "req" + std::to_string(i));
      EXPECT_TRUE(p.requests[i].timeout.empty());
      EXPECT_TRUE(p.requests[i].metadata.empty());
      // One answered with an error, the others with their message.
      Status st = i == 2 ? Status::NotFound("gone") : Status::Ok();
      ASSERT_TRUE(p.server.Respond(ok[i], st, "resp" + std::to_string(i)));
    }
    p.Pump();
    EXPECT_EQ(p.server.open_calls(), 0u);
    for (size_t i = 0; i < ok.size(); ++i) {
      const ClientStream& s = p.client.streams[ok[i]];
      EXPECT_TRUE(s.closed);
      EXPECT_EQ(s.headers.at(":status"), "200");
      if (i == 2) {
        EXPECT_EQ(s.header_frames, 1);
        EXPECT_EQ(s.headers.at("grpc-status"), "5");
        EXPECT_EQ(s.headers.at("grpc-message"), "gone");
      } else {
        EXPECT_EQ(s.header_frames, 2);
        EXPECT_EQ(s.headers.count("grpc-status"), 0u);
        EXPECT_EQ(s.data, Framed("resp" + std::to_string(i)));
        EXPECT_EQ(s.trailers.at("grpc-status"), "0");
      }
    }
    EXPECT_EQ(p.client.streams[bad_type].headers.at(":status"), "415");
    EXPECT_EQ(p.client.streams[compressed].headers.at("grpc-status"), "12");
    EXPECT_EQ(p.client.streams[unserved].headers.at("grpc-status"), "12");
    EXPECT_EQ(p.client.streams[two].headers.at("grpc-status"), "13");
  }
}

TEST(GrpcH2Session, CompressionIsUnimplementedAndCompressedFlagIsAnError) {
  Pair p;
  int32_t gz = p.client.Call("/etcdserverpb.KV/Put", Framed("x"), {{"grpc-encoding", "gzip"}});
  int32_t identity =
      p.client.Call("/etcdserverpb.KV/Put", Framed("y"), {{"grpc-encoding", "identity"}});
  int32_t flag = p.client.Call("/etcdserverpb.KV/Put", Framed("z", /*compressed=*/true));
  p.Pump();
  EXPECT_EQ(p.client.streams[gz].headers.at("grpc-status"), "12");
  EXPECT_EQ(p.client.streams[gz].headers.at("grpc-message"),
            "grpc: Decompressor is not installed for grpc-encoding \"gzip\"");
  EXPECT_EQ(p.client.streams[flag].headers.at("grpc-status"), "13");
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.requests[0].stream_id, identity);
}

TEST(GrpcH2Session, OversizeMessageIsResourceExhausted) {
  Pair p;
  int32_t big = p.client.Call("/etcdserverpb.KV/Put", Framed(std::string(kLimit + 1, 'a')));
  int32_t fits = p.client.Call("/etcdserverpb.KV/Put", Framed(std::string(kLimit, 'b')));
  p.Pump();
  const ClientStream& s = p.client.streams[big];
  EXPECT_EQ(s.headers.at("grpc-status"), "8");
  EXPECT_EQ(s.headers.at("grpc-message"), "grpc: received message larger than max (1001 vs. 1000)");
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.requests[0].stream_id, fits);
  EXPECT_EQ(p.requests[0].message.size(), kLimit);
}

// Refused at its first DATA frame: the client gets the answer and RST_STREAM(NO_ERROR), and
// stops sending (its request is larger than the 65535 bytes it may send before our SETTINGS).
TEST(GrpcH2Session, OversizeRequestIsResetAfterTheAnswer) {
  Pair p;
  int32_t big = p.client.Call("/etcdserverpb.KV/Put", Framed(std::string(200000, 'a')));
  p.Pump();
  const ClientStream& s = p.client.streams[big];
  ASSERT_EQ(s.header_frames, 1);
  EXPECT_EQ(s.headers.at("grpc-status"), "8");
  EXPECT_TRUE(s.reset);
  EXPECT_EQ(s.reset_error, 0u);
  EXPECT_TRUE(s.closed);
  EXPECT_TRUE(p.requests.empty());
  // A request refused after END_STREAM is not reset (nothing left to stop).
  int32_t done = p.client.Call("/etcdserverpb.KV/Put", "");
  p.Pump();
  EXPECT_EQ(p.client.streams[done].headers.at("grpc-status"), "13");
  EXPECT_FALSE(p.client.streams[done].reset);
}

// The same with the request split at every byte (the refusal in the middle of a DATA frame).
TEST(GrpcH2Session, OversizeRequestIsResetWhenBytesArriveOneAtATime) {
  Pair p;
  int32_t big = p.client.Call("/etcdserverpb.KV/Put", Framed(std::string(200000, 'a')));
  p.Pump(/*byte_at_a_time=*/true);
  const ClientStream& s = p.client.streams[big];
  EXPECT_EQ(s.headers.at("grpc-status"), "8");
  EXPECT_TRUE(s.reset);
  EXPECT_EQ(s.reset_error, 0u);
}

TEST(GrpcH2Session, NotExactlyOneMessageOrBadTimeoutIsInternal) {
  Pair p;
  int32_t none = p.client.Call("/etcdserverpb.KV/Put", "");
  int32_t two = p.client.Call("/etcdserverpb.KV/Put", Framed("a") + Framed("b"));
  int32_t cut = p.client.Call("/etcdserverpb.KV/Put", Framed("abc").substr(0, 6));
  int32_t timeout = p.client.Call("/etcdserverpb.KV/Put", Framed("a"), {{"grpc-timeout", "1x"}});
  int32_t number = p.client.Call("/etcdserverpb.KV/Put", Framed("a"), {{"grpc-timeout", "1aS"}});
  int32_t good = p.client.Call("/etcdserverpb.KV/Put", Framed("a"), {{"grpc-timeout", "100m"}});
  p.Pump();
  for (int32_t id : {none, two, cut, timeout, number}) {
    EXPECT_EQ(p.client.streams[id].headers.at("grpc-status"), "13") << id;
  }
  for (int32_t id : {none, two, cut}) {
    EXPECT_EQ(p.client.streams[id].headers.at(":status"), "200") << id;
  }
  // grpc-go: HTTP 400 and its texts.
  EXPECT_EQ(p.client.streams[timeout].headers.at(":status"), "400");
  EXPECT_EQ(p.client.streams[timeout].headers.at("grpc-message"),
            "malformed grpc-timeout: transport: timeout unit is not recognized: \"1x\"");
  EXPECT_EQ(p.client.streams[number].headers.at("grpc-message"),
            "malformed grpc-timeout: strconv.ParseInt: parsing \"1a\": invalid syntax");
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.requests[0].stream_id, good);
}

// A streaming method never half-closes: it must be refused at its HEADERS, not at END_STREAM.
TEST(GrpcH2Session, UnservedStreamingMethodIsRefusedWithoutEndStream) {
  Pair p;
  int32_t id = p.client.Call("/etcdserverpb.Watch/Watch", Framed("create"), {},
                             "application/grpc", /*end_stream=*/false);
  p.Pump();
  EXPECT_TRUE(p.requests.empty());
  const ClientStream& s = p.client.streams[id];
  ASSERT_EQ(s.header_frames, 1);
  EXPECT_EQ(s.headers.at(":status"), "200");
  EXPECT_EQ(s.headers.at("grpc-status"), "12");
  EXPECT_EQ(s.headers.at("grpc-message"),
            "rusd: /etcdserverpb.Watch/Watch is not served by the native gRPC server yet");
  EXPECT_TRUE(s.reset);
  EXPECT_EQ(s.reset_error, 0u);
  EXPECT_EQ(p.server.open_calls(), 0u);
}

// Bytes beyond the first message are refused when they arrive, without waiting for END_STREAM.
TEST(GrpcH2Session, SecondMessageIsInternalAtOnce) {
  Pair p;
  int32_t id = p.client.Call("/etcdserverpb.KV/Put", Framed("a") + Framed("b"), {},
                             "application/grpc", /*end_stream=*/false);
  p.Pump();
  EXPECT_TRUE(p.requests.empty());
  const ClientStream& s = p.client.streams[id];
  ASSERT_EQ(s.header_frames, 1);
  EXPECT_EQ(s.headers.at("grpc-status"), "13");
  EXPECT_EQ(s.headers.at("grpc-message"), "rusd: a unary call takes exactly one request message");
  EXPECT_EQ(p.server.open_calls(), 0u);
}

TEST(GrpcH2Session, ClientResetCancelsTheCall) {
  Pair p;
  int32_t id = p.client.Call("/etcdserverpb.KV/Range", Framed("r"));
  p.Pump();
  ASSERT_EQ(p.requests.size(), 1u);
  p.client.Reset(id);
  p.Pump();
  EXPECT_EQ(p.server.open_calls(), 0u);
  EXPECT_FALSE(p.server.Respond(id, Status::Ok(), "late"));  // dropped
  std::string down;
  ASSERT_TRUE(p.server.Produce(&down, 1 << 30).ok());
  EXPECT_TRUE(down.empty());
  // The connection still serves new calls.
  int32_t next = p.client.Call("/etcdserverpb.KV/Range", Framed("r2"));
  p.Pump();
  ASSERT_EQ(p.requests.size(), 2u);
  ASSERT_TRUE(p.server.Respond(next, Status::Ok(), "ok"));
  p.Pump();
  EXPECT_EQ(p.client.streams[next].trailers.at("grpc-status"), "0");
}

TEST(GrpcH2Session, FramesSplitAtEveryByte) {
  Pair p;
  int32_t a = p.client.Call("/etcdserverpb.KV/Put", Framed("first"));
  int32_t b = p.client.Call("/etcdserverpb.KV/Txn", Framed(std::string(300, 't')));
  p.Pump(/*byte_at_a_time=*/true);
  ASSERT_EQ(p.requests.size(), 2u);
  EXPECT_EQ(p.requests[0].message, "first");
  EXPECT_EQ(p.requests[1].path, "/etcdserverpb.KV/Txn");
  EXPECT_EQ(p.requests[1].message, std::string(300, 't'));
  ASSERT_TRUE(p.server.Respond(b, Status::Ok(), "B"));
  ASSERT_TRUE(p.server.Respond(a, Status::Ok(), "A"));
  p.Pump(true);
  EXPECT_EQ(p.client.streams[a].data, Framed("A"));
  EXPECT_EQ(p.client.streams[b].data, Framed("B"));
}

TEST(GrpcH2Session, LargeResponseWaitsForTheClientsWindow) {
  Pair p;
  int32_t id = p.client.Call("/etcdserverpb.KV/Range", Framed("r"));
  p.Pump();
  std::string big(3 << 20, 'v');
  for (size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>(i);
  ASSERT_TRUE(p.server.Respond(id, Status::Ok(), std::string(big)));
  // Without WINDOW_UPDATEs from the client only its initial window (65535) may leave.
  std::string down;
  ASSERT_TRUE(p.server.Produce(&down, 1 << 30).ok());
  EXPECT_LT(down.size(), 65535u + 1024);
  EXPECT_GT(down.size(), 65535u);
  p.client.Receive(down);
  p.Pump();
  EXPECT_EQ(p.client.streams[id].data, Framed(big));
  EXPECT_EQ(p.client.streams[id].trailers.at("grpc-status"), "0");
}

TEST(GrpcH2Session, ProduceStopsAtTheLimit) {
  Pair p;
  std::vector<int32_t> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(p.client.Call("/etcdserverpb.KV/Put", Framed("x")));
  p.Pump();
  for (int32_t id : ids) ASSERT_TRUE(p.server.Respond(id, Status::Ok(), std::string(1000, 'r')));
  std::string down;
  ASSERT_TRUE(p.server.Produce(&down, 4096).ok());
  EXPECT_GE(down.size(), 4096u);
  EXPECT_LT(down.size(), 4096u + 1100);
  EXPECT_TRUE(p.server.WantsWrite());
}

TEST(GrpcH2Session, GarbageInsteadOfThePrefaceFailsTheConnection) {
  GrpcH2Session server(kLimit);
  std::vector<GrpcRequest> requests;
  Status st = server.Receive("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &requests);
  std::string down;
  (void)server.Produce(&down, 1 << 20);
  EXPECT_TRUE(!st.ok() || !server.Alive());
  EXPECT_TRUE(requests.empty());
}

TEST(GrpcH2Session, GoawayNamesTheLastStreamAndOpenCallsStillAnswer) {
  Pair p;
  int32_t id = p.client.Call("/etcdserverpb.KV/Put", Framed("x"));
  p.Pump();
  p.server.SubmitGoaway();
  ASSERT_TRUE(p.server.Respond(id, Status::Ok(), "done"));
  p.Pump();
  EXPECT_EQ(p.client.goaway_last_stream, id);
  EXPECT_EQ(p.client.streams[id].trailers.at("grpc-status"), "0");
}

// As the native server with forwarding: KV unary, every other path a streaming call.
struct StreamPair : Pair {
  StreamPair() : Pair([](std::string_view) { return true; }) {}

  std::vector<GrpcRequest> Take() {
    std::vector<GrpcRequest> out;
    out.swap(requests);
    return out;
  }
};

using Kind = GrpcRequest::Kind;

TEST(GrpcH2SessionStreaming, ManyMessagesEachWayWithMetadataAndTrailers) {
  StreamPair p;
  std::string body;
  for (int i = 0; i < 50; ++i) body += Framed("req" + std::to_string(i));
  int32_t id = p.client.Call("/etcdserverpb.Watch/Watch", body,
                             {{"token", "secret"}, {"grpc-timeout", "5S"}, {"x-bin", "AAE"},
                              {"user-agent", "test"}},
                             "application/grpc", /*end_stream=*/false);
  p.Pump(/*byte_at_a_time=*/true);
  std::vector<GrpcRequest> events = p.Take();
  ASSERT_EQ(events.size(), 51u);
  EXPECT_EQ(events[0].kind, Kind::kStreamStart);
  EXPECT_EQ(events[0].stream_id, id);
  EXPECT_EQ(events[0].path, "/etcdserverpb.Watch/Watch");
  EXPECT_EQ(events[0].timeout, "5S");
  EXPECT_EQ(events[0].metadata,
            (GrpcMetadata{{"token", "secret"}, {"x-bin", "AAE"}}));  // not te, grpc-*, user-agent
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(events[1 + i].kind, Kind::kStreamMessage);
    EXPECT_EQ(events[1 + i].message, "req" + std::to_string(i));
  }
  ASSERT_TRUE(p.server.StartResponse(id, {{"initial", "md"}}));
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    std::string m = "resp" + std::to_string(i);
    ASSERT_TRUE(p.server.SendMessage(id, m));
    expected += Framed(m);
    if (i % 7 == 0) p.Pump();  // the stream's data provider was deferred: resumed
  }
  ASSERT_TRUE(p.server.SendMessage(id, ""));  // an empty message is a message
  expected += Framed("");
  ASSERT_TRUE(p.server.Finish(id, 0, "", {{"trailing", "t"}}));
  EXPECT_FALSE(p.server.SendMessage(id, "late"));
  EXPECT_FALSE(p.server.Finish(id, 0, "", {}));
  p.Pump();
  const ClientStream& s = p.client.streams[id];
  EXPECT_EQ(s.headers.at(":status"), "200");
  EXPECT_EQ(s.headers.at("initial"), "md");
  EXPECT_EQ(s.data, expected);
  EXPECT_EQ(s.trailers.at("grpc-status"), "0");
  EXPECT_EQ(s.trailers.at("trailing"), "t");
  EXPECT_EQ(s.header_frames, 2);
  // Finished before the client half-closed: reset after the trailers, as grpc-go.
  EXPECT_TRUE(s.reset);
  EXPECT_EQ(s.reset_error, 0u);
  EXPECT_TRUE(s.closed);
  EXPECT_TRUE(p.Take().empty());  // no cancel for a stream the owner finished
}

TEST(GrpcH2SessionStreaming, HalfCloseThenResponsesThenErrorStatus) {
  StreamPair p;
  int32_t id = p.client.Call("/etcdserverpb.Maintenance/Snapshot", Framed(""));
  p.Pump();
  std::vector<GrpcRequest> events = p.Take();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, Kind::kStreamStart);
  EXPECT_EQ(events[1].kind, Kind::kStreamMessage);
  EXPECT_EQ(events[1].message, "");
  EXPECT_EQ(events[2].kind, Kind::kStreamHalfClose);
  ASSERT_TRUE(p.server.SendMessage(id, "chunk1"));  // implies the response HEADERS
  ASSERT_TRUE(p.server.SendMessage(id, "chunk2"));
  ASSERT_TRUE(p.server.Finish(id, 14, "broken 100%", {}));
  p.Pump();
  const ClientStream& s = p.client.streams[id];
  EXPECT_EQ(s.data, Framed("chunk1") + Framed("chunk2"));
  EXPECT_EQ(s.trailers.at("grpc-status"), "14");
  EXPECT_EQ(s.trailers.at("grpc-message"), "broken 100%25");
  EXPECT_FALSE(s.reset);  // the client had half-closed: the trailers close the stream
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.close_error, 0u);
}

// SendPrefixed queues bytes that already hold whole prefixed messages (the forwarded Watch's
// batches, frontend/forwarded_framing.h) as they are, in order with SendMessage's, and
// counts them in queued_bytes until nghttp2 took them.
TEST(GrpcH2SessionStreaming, PrefixedBatchesGoOutAsTheyAre) {
  StreamPair p;
  int32_t id = p.client.Call("/etcdserverpb.Watch/Watch", Framed("create"), {},
                             "application/grpc", /*end_stream=*/false);
  p.Pump();
  ASSERT_EQ(p.Take().size(), 2u);
  const std::string batch = Framed("a") + Framed("") + Framed(std::string(70000, 'b'));
  ASSERT_TRUE(p.server.SendPrefixed(id, std::string(batch)));  // implies the response HEADERS
  EXPECT_EQ(p.server.queued_bytes(id), batch.size());
  ASSERT_TRUE(p.server.SendMessage(id, "single"));
  ASSERT_TRUE(p.server.SendPrefixed(id, std::string()));  // nothing, and no harm
  ASSERT_TRUE(p.server.SendPrefixed(id, Framed("c")));
  p.Pump();
  EXPECT_EQ(p.server.queued_bytes(id), 0u);
  ASSERT_TRUE(p.server.Finish(id, 0, "", {}));
  p.Pump();
  const ClientStream& s = p.client.streams[id];
  EXPECT_EQ(s.data, batch + Framed("single") + Framed("c"));
  EXPECT_EQ(s.trailers.at("grpc-status"), "0");
  EXPECT_FALSE(p.server.SendPrefixed(id, Framed("late")));
}

TEST(GrpcH2SessionStreaming, FinishWithNothingSentIsTrailersOnly) {
  StreamPair p;
  int32_t id = p.client.Call("/etcdserverpb.Lease/LeaseGrant", Framed("g"));
  p.Pump();
  ASSERT_TRUE(p.server.Finish(id, 5, "etcdserver: requested lease not found", {{"k", "v"}}));
  p.Pump();
  const ClientStream& s = p.client.streams[id];
  EXPECT_EQ(s.header_frames, 1);
  EXPECT_EQ(s.headers.at("grpc-status"), "5");
  EXPECT_EQ(s.headers.at("grpc-message"), "etcdserver: requested lease not found");
  EXPECT_EQ(s.headers.at("k"), "v");
  EXPECT_TRUE(s.closed);
}

TEST(GrpcH2SessionStreaming, ClientResetMidStreamIsACancelEvent) {
  StreamPair p;
  int32_t id = p.client.Call("/etcdserverpb.Watch/Watch", Framed("create"), {},
                             "application/grpc", /*end_stream=*/false);
  p.Pump();
  ASSERT_EQ(p.Take().size(), 2u);
  ASSERT_TRUE(p.server.SendMessage(id, "created"));
  p.Pump();
  ASSERT_TRUE(p.server.SendMessage(id, std::string(100000, 'e')));  // some of it queued
  p.client.Reset(id);
  p.Pump();
  std::vector<GrpcRequest> events = p.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kStreamCancel);
  EXPECT_EQ(events[0].stream_id, id);
  EXPECT_FALSE(p.server.SendMessage(id, "late"));
  EXPECT_FALSE(p.server.Finish(id, 0, "", {}));
  EXPECT_EQ(p.server.queued_bytes(id), 0u);
  // Unary KV on the same connection is unaffected.
  int32_t kv = p.client.Call("/etcdserverpb.KV/Range", Framed("r"));
  p.Pump();
  events = p.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kUnary);
  ASSERT_TRUE(p.server.Respond(kv, Status::Ok(), "ok"));
  p.Pump();
  EXPECT_EQ(p.client.streams[kv].trailers.at("grpc-status"), "0");
}

// The send queue holds what the client's windows do not let out yet; queued_bytes shows it.
TEST(GrpcH2SessionStreaming, WindowLimitedSenderQueuesAndDrains) {
  StreamPair p;
  int32_t id = p.client.Call("/etcdserverpb.Watch/Watch", Framed("create"), {},
                             "application/grpc", /*end_stream=*/false);
  p.Pump();
  std::string expected;
  for (int i = 0; i < 10; ++i) {
    std::string m(100000, static_cast<char>('a' + i));
    ASSERT_TRUE(p.server.SendMessage(id, m));
    expected += Framed(m);
  }
  EXPECT_EQ(p.server.queued_bytes(id), expected.size());
  std::string down;
  ASSERT_TRUE(p.server.Produce(&down, 1 << 30).ok());
  // Only the client's initial stream window (65535) left.
  EXPECT_EQ(p.server.queued_bytes(id), expected.size() - 65535);
  EXPECT_LT(down.size(), 65535u + 1024);
  p.client.Receive(down);
  p.Pump();  // the client's WINDOW_UPDATEs let the rest out
  EXPECT_EQ(p.server.queued_bytes(id), 0u);
  EXPECT_EQ(p.client.streams[id].data, expected);
  ASSERT_TRUE(p.server.Finish(id, 0, "", {}));
  p.Pump();
  EXPECT_EQ(p.client.streams[id].trailers.at("grpc-status"), "0");
}

TEST(GrpcH2SessionStreaming, BadMessageIsAnErrorAndACancel) {
  StreamPair p;
  int32_t id = p.client.Call("/etcdserverpb.Watch/Watch",
                             Framed("ok") + Framed(std::string(kLimit + 1, 'x')), {},
                             "application/grpc", /*end_stream=*/false);
  p.Pump();
  std::vector<GrpcRequest> events = p.Take();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].message, "ok");
  EXPECT_EQ(events[2].kind, Kind::kStreamCancel);
  EXPECT_EQ(p.client.streams[id].headers.at("grpc-status"), "8");
  EXPECT_FALSE(p.server.SendMessage(id, "late"));
}

// A streaming call's request bytes count against the client's windows until the owner is
// done with each message: a client streaming faster than the owner takes its messages
// stops at one stream window (4 MiB) instead of growing the server's memory; unary calls on
// the same connection keep flowing (their bytes go back at once).
TEST(GrpcH2SessionStreaming, RequestBytesCountAgainstTheWindowUntilMessageDone) {
  StreamPair p;
  const std::string m(900, 'w');
  constexpr size_t kMessages = 10000;  // ~9 MB: two stream windows and more
  std::string body;
  for (size_t i = 0; i < kMessages; ++i) body += Framed(m);
  int32_t id = p.client.Call("/etcdserverpb.Watch/Watch", body, {}, "application/grpc",
                             /*end_stream=*/false);
  p.Pump();
  std::vector<GrpcRequest> events = p.Take();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0].kind, Kind::kStreamStart);
  size_t got = events.size() - 1;
  EXPECT_LE(got * Framed(m).size(), size_t{4} << 20);
  EXPECT_GT(got * Framed(m).size(), size_t{3} << 20);
  p.Pump();
  EXPECT_TRUE(p.Take().empty()) << "the client got window without MessageDone";
  // Unary calls (more than the 16 MiB connection window in all) are not held back.
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 1000; ++i) ids.push_back(p.client.Call("/etcdserverpb.KV/Put", Framed(m)));
    p.Pump();
    std::vector<GrpcRequest> unary = p.Take();
    ASSERT_EQ(unary.size(), ids.size()) << "batch " << batch;
    for (int32_t kv : ids) ASSERT_TRUE(p.server.Respond(kv, Status::Ok(), ""));
    p.Pump();
  }
  size_t total = got;
  for (int round = 0; round < 10 && total < kMessages; ++round) {
    for (size_t i = 0; i < got; ++i) p.server.MessageDone(id, m.size());
    p.Pump();
    got = p.Take().size();
    ASSERT_GT(got, 0u) << "MessageDone gave no window back";
    total += got;
  }
  EXPECT_EQ(total, kMessages);
}

TEST(PercentEncodeGrpcMessage, KeepsPrintableAsciiButPercent) {
  EXPECT_EQ(PercentEncodeGrpcMessage("etcdserver: key not found"), "etcdserver: key not found");
  EXPECT_EQ(PercentEncodeGrpcMessage("a%b\tc\xc3\xa9"), "a%25b%09c%C3%A9");
}

}  // namespace
}  // namespace rusd::frontend::native_grpc
