#include <gtest/gtest.h>

#include "frontend/client_listener.h"
#include "frontend/http_handler.h"
#include "frontend/http_message.h"
#include "frontend/ring_client.h"

namespace rusd::frontend {
namespace {

TEST(HttpParse, CompleteGetWithKeepAlive) {
  HttpRequest r;
  size_t used = 0;
  std::string in = "GET /health?serializable=true HTTP/1.1\r\nHost: x\r\n\r\nGET /";
  ASSERT_EQ(ParseHttpRequest(in, &r, &used), HttpParse::kComplete);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/health");
  EXPECT_EQ(r.query, "serializable=true");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(used, in.size() - 5);
}

TEST(HttpParse, PartialRequestNeedsMoreBytes) {
  HttpRequest r;
  size_t used = 0;
  EXPECT_EQ(ParseHttpRequest("GET /version HTTP/1.1\r\nHo", &r, &used), HttpParse::kIncomplete);
  EXPECT_EQ(ParseHttpRequest("POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", &r, &used),
            HttpParse::kIncomplete);
  EXPECT_EQ(ParseHttpRequest("POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", &r, &used),
            HttpParse::kComplete);
  EXPECT_EQ(used, 42u);
}

TEST(HttpParse, ConnectionCloseAndHttp10EndTheConnection) {
  HttpRequest r;
  size_t used = 0;
  ASSERT_EQ(ParseHttpRequest("GET / HTTP/1.1\r\nconnection: Close\r\n\r\n", &r, &used),
            HttpParse::kComplete);
  EXPECT_FALSE(r.keep_alive);
  ASSERT_EQ(ParseHttpRequest("GET / HTTP/1.0\r\n\r\n", &r, &used), HttpParse::kComplete);
  EXPECT_FALSE(r.keep_alive);
}

TEST(HttpParse, GarbageIsBad) {
  HttpRequest r;
  size_t used = 0;
  EXPECT_EQ(ParseHttpRequest("\x01\x02\x03\r\n\r\n", &r, &used), HttpParse::kBad);
  EXPECT_EQ(ParseHttpRequest("GET /x HTTP/9\r\n\r\n", &r, &used), HttpParse::kBad);
  EXPECT_EQ(ParseHttpRequest("GET x HTTP/1.1\r\n\r\n", &r, &used), HttpParse::kBad);
  EXPECT_EQ(ParseHttpRequest("GET / HTTP/1.1\r\nNoColon\r\n\r\n", &r, &used), HttpParse::kBad);
  EXPECT_EQ(ParseHttpRequest("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", &r, &used),
            HttpParse::kBad);
  EXPECT_EQ(ParseHttpRequest("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r, &used),
            HttpParse::kBad);
  EXPECT_EQ(ParseHttpRequest(std::string(kMaxHttpHeadBytes + 1, 'A'), &r, &used),
            HttpParse::kBad);
}

TEST(HttpParse, QueryValuesSplitAndDecode) {
  EXPECT_EQ(QueryValues("exclude=a,b&exclude=c%5F&x=1", "exclude"),
            (std::vector<std::string>{"a", "b", "c_"}));
  EXPECT_TRUE(QueryHas("verbose&x=1", "verbose"));
  EXPECT_FALSE(QueryHas("verbosely=1", "verbose"));
}

TEST(HttpFormat, ResponseHasLengthAndConnection) {
  HttpResponse r;
  r.status = 503;
  r.content_type = "text/plain";
  r.body = "no";
  EXPECT_EQ(FormatHttpResponse(r, false),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            "Content-Length: 2\r\nConnection: close\r\n\r\nno");
}

class FakeProbe : public HealthProbe {
 public:
  bool HasLeader() override { return leader; }
  Status Read(bool serializable) override {
    (serializable ? serializable_reads : linearizable_reads)++;
    return serializable ? serializable_status : linearizable_status;
  }
  bool leader = true;
  Status serializable_status;
  Status linearizable_status;
  int serializable_reads = 0;
  int linearizable_reads = 0;
};

HttpRequest Get(const std::string& path, const std::string& query = "") {
  HttpRequest r;
  r.method = "GET";
  r.path = path;
  r.query = query;
  return r;
}

TEST(HttpHandler, VersionIsEtcds) {
  FakeProbe probe;
  HttpHandler h(probe, HttpVersions{"3.5.17", "3.5.0"});
  HttpResponse r = h.Handle(Get("/version"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"etcdserver":"3.5.17","etcdcluster":"3.5.0"})");
  EXPECT_EQ(r.content_type, "application/json");
}

TEST(HttpHandler, HealthTrueAfterLinearizableRead) {
  FakeProbe probe;
  HttpHandler h(probe, HttpVersions{});
  HttpResponse r = h.Handle(Get("/health"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"health":"true","reason":""})");
  EXPECT_EQ(probe.linearizable_reads, 1);
}

TEST(HttpHandler, HealthWithoutLeaderIs503) {
  FakeProbe probe;
  probe.leader = false;
  HttpHandler h(probe, HttpVersions{});
  HttpResponse r = h.Handle(Get("/health"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n");
  // Serializable health skips the leader check and reads locally.
  HttpResponse s = h.Handle(Get("/health", "serializable=true"));
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(probe.serializable_reads, 1);
}

TEST(HttpHandler, HealthReportsTheRangeError) {
  FakeProbe probe;
  probe.linearizable_status = Status::Unavailable("etcdserver: request timed out");
  HttpHandler h(probe, HttpVersions{});
  HttpResponse r = h.Handle(Get("/health"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body,
            "{\"health\":\"false\",\"reason\":\"RANGE ERROR:etcdserver: request timed out\"}\n");
}

TEST(HttpHandler, LivezAndReadyz) {
  FakeProbe probe;
  HttpHandler h(probe, HttpVersions{});
  EXPECT_EQ(h.Handle(Get("/livez")).body, "ok\n");
  EXPECT_EQ(h.Handle(Get("/readyz", "verbose")).body,
            "[+]data_corruption ok\n[+]linearizable_read ok\n[+]serializable_read ok\nok\n");
  probe.linearizable_status = Status::Unavailable("etcdserver: request timed out");
  HttpResponse bad = h.Handle(Get("/readyz"));
  EXPECT_EQ(bad.status, 503);
  EXPECT_NE(bad.body.find("[-]linearizable_read failed: etcdserver: request timed out"),
            std::string::npos);
  EXPECT_EQ(h.Handle(Get("/readyz", "exclude=linearizable_read")).status, 200);
  EXPECT_EQ(h.Handle(Get("/readyz/serializable_read")).status, 200);
  EXPECT_EQ(h.Handle(Get("/livez")).status, 200);  // livez never asks for consensus
}

TEST(HttpHandler, UnknownPathIs404AndPostIs405) {
  FakeProbe probe;
  HttpHandler h(probe, HttpVersions{});
  HttpResponse r = h.Handle(Get("/nope"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "404 page not found\n");
  HttpRequest post = Get("/health");
  post.method = "POST";
  HttpResponse p = h.Handle(post);
  EXPECT_EQ(p.status, 405);
  EXPECT_EQ(probe.linearizable_reads, 0);
}

// etcd's ?exclude= names alarms to ignore; rusd raises none, so it never changes the answer.
TEST(HttpHandler, HealthAcceptsExcludedAlarms) {
  FakeProbe probe;
  HttpHandler h(probe, HttpVersions{});
  HttpResponse r = h.Handle(Get("/health", "exclude=NOSPACE&exclude=CORRUPT"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"health":"true","reason":""})");
  probe.leader = false;
  EXPECT_EQ(h.Handle(Get("/health", "exclude=NOSPACE")).status, 503);
  EXPECT_EQ(h.Handle(Get("/health", "exclude=NOSPACE&serializable=true")).status, 200);
}

class FakeMetricsPage : public MetricsPage {
 public:
  std::string ContentType() override { return "text/plain; version=0.0.4; charset=utf-8"; }
  std::string Render() override {
    ++renders;
    return "# TYPE etcd_server_has_leader gauge\netcd_server_has_leader 1\n";
  }
  int renders = 0;
};

TEST(HttpHandler, MetricsServedFromThePage) {
  FakeProbe probe;
  HttpHandler h(probe, HttpVersions{});
  EXPECT_EQ(h.Handle(Get("/metrics")).status, 404);  // no page: etcd's 404 text
  FakeMetricsPage page;
  h.set_metrics_page(&page);
  HttpResponse r = h.Handle(Get("/metrics"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.body, "# TYPE etcd_server_has_leader gauge\netcd_server_has_leader 1\n");
  HttpRequest post = Get("/metrics");
  post.method = "POST";
  EXPECT_EQ(h.Handle(post).status, 405);
  EXPECT_EQ(page.renders, 1);
}

// URLs are parsed by common/url (etcd's rules and texts, tested in common/url_test.cc);
// the listener adds only what it cannot serve.
TEST(ClientListener, RefusesUrlsItCannotServeWithClearErrors) {
  auto ok = ClientListener::Bind({"http://127.0.0.1:0"});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_NE((*ok)->ports()[0], 0);
  auto tls = ClientListener::Bind({"https://127.0.0.1:2379"});
  ASSERT_FALSE(tls.ok());
  EXPECT_EQ(tls.status().message(),
            "client URL https://127.0.0.1:2379: TLS is not supported by rusd yet; use http://");
  auto unix_socket = ClientListener::Bind({"unix://localhost:2379"});
  ASSERT_FALSE(unix_socket.ok());
  EXPECT_EQ(unix_socket.status().message(),
            "client URL unix://localhost:2379: unix sockets are not supported by rusd yet; use "
            "http://");
  // etcd's texts (types.NewURLs) for malformed URLs.
  auto no_port = ClientListener::Bind({"http://localhost"});
  ASSERT_FALSE(no_port.ok());
  EXPECT_EQ(no_port.status().message(),
            "URL address does not have the form \"host:port\": http://localhost");
  auto scheme = ClientListener::Bind({"tcp://h:1"});
  ASSERT_FALSE(scheme.ok());
  EXPECT_EQ(scheme.status().message(),
            "URL scheme must be http, https, unix, or unixs: tcp://h:1");
  auto path = ClientListener::Bind({"http://127.0.0.1:2379/"});
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().message(), "URL must not contain a path: http://127.0.0.1:2379/");
  EXPECT_FALSE(ClientListener::Bind({"http://h:99999"}).ok());
}

TEST(ClientListener, PortInUseIsAClearError) {
  auto first = ClientListener::Bind({"http://127.0.0.1:0"});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  uint16_t port = (*first)->ports()[0];
  auto second = ClientListener::Bind({"http://127.0.0.1:" + std::to_string(port)});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("Address already in use"), std::string::npos)
      << second.status().message();
}

TEST(RangeReadEncoding, SplicesRequestBytes) {
  EXPECT_EQ(EncodeRangeRead(0, "ab"), std::string("\x12\x02" "ab"));
  EXPECT_EQ(EncodeRangeRead(300, "x"), std::string("\x08\xac\x02\x12\x01x"));
}

}  // namespace
}  // namespace rusd::frontend
