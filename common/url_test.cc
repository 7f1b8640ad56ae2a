#include "common/url.h"

#include <gtest/gtest.h>

namespace rusd {
namespace {

std::string ErrorOf(std::string_view url) {
  Result<Url> u = ParseUrl(url);
  return u.ok() ? std::string("ok") : u.status().message();
}

TEST(UrlTest, ParsesSchemeHostAndPort) {
  Result<Url> u = ParseUrl("http://127.0.0.1:2380");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "2380");
  EXPECT_EQ(u->HostPort(), "127.0.0.1:2380");
  EXPECT_FALSE(u->tls());
  u = ParseUrl("  HTTPS://example.com:443 ");  // etcd trims and lower-cases the scheme
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "example.com");
  EXPECT_TRUE(u->tls());
  u = ParseUrl("http://:2379");  // every interface
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "");
  EXPECT_TRUE(ParseUrl("unix://localhost:12345").ok());  // etcd's unix form: host:port too
}

TEST(UrlTest, ParsesBracketedIpv6) {
  Result<Url> u = ParseUrl("http://[::1]:2380");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "2380");
  EXPECT_EQ(u->HostPort(), "[::1]:2380");
  u = ParseUrl("http://[fe80::1%25eth0]:1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "fe80::1%25eth0");
}

TEST(UrlTest, RefusesWithEtcdsErrors) {
  const std::string scheme = "URL scheme must be http, https, unix, or unixs: ";
  const std::string form = "URL address does not have the form \"host:port\": ";
  const std::string path = "URL must not contain a path: ";
  EXPECT_EQ(ErrorOf("ftp://h:1"), scheme + "ftp://h:1");
  EXPECT_EQ(ErrorOf("127.0.0.1:2380"), scheme + "127.0.0.1:2380");
  EXPECT_EQ(ErrorOf("://h:1"), scheme + "://h:1");
  EXPECT_EQ(ErrorOf(""), scheme);
  EXPECT_EQ(ErrorOf("http://h"), form + "http://h");
  EXPECT_EQ(ErrorOf("http://"), form + "http://");
  EXPECT_EQ(ErrorOf("http://::1:2380"), form + "http://::1:2380");  // too many colons
  EXPECT_EQ(ErrorOf("http://[::1]"), form + "http://[::1]");
  EXPECT_EQ(ErrorOf("http://[::1:2380"), form + "http://[::1:2380");
  EXPECT_EQ(ErrorOf("http://[]:1"), form + "http://[]:1");
  EXPECT_EQ(ErrorOf("http://h:"), form + "http://h:");
  EXPECT_EQ(ErrorOf("http://h:http"), form + "http://h:http");
  EXPECT_EQ(ErrorOf("http://h:65536"), form + "http://h:65536");
  EXPECT_EQ(ErrorOf("http://h:123456"), form + "http://h:123456");
  EXPECT_EQ(ErrorOf("http://h:1/"), path + "http://h:1/");  // etcd: Path "/" is a path
  EXPECT_EQ(ErrorOf("http://h:1/x"), path + "http://h:1/x");
  EXPECT_EQ(ErrorOf("http://h:1?q"), path + "http://h:1?q");
  EXPECT_EQ(ErrorOf("http://u@h:1"), form + "http://u@h:1");
  EXPECT_EQ(ErrorOf("http://h/x"), form + "http://h/x");  // the address is checked first
  EXPECT_EQ(ErrorOf("unix:///tmp/sock"), form + "unix:///tmp/sock");
}

TEST(UrlTest, PeerUrlsMustBePlainHttp) {
  EXPECT_TRUE(ParsePeerUrl("http://10.0.0.1:2380").ok());
  Result<Url> tls = ParsePeerUrl("https://10.0.0.1:2380");
  ASSERT_FALSE(tls.ok());
  EXPECT_EQ(tls.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(tls.status().message().find("TLS peer URLs are not supported yet"), std::string::npos);
  EXPECT_FALSE(ParsePeerUrl("unix://localhost:1").ok());
  EXPECT_FALSE(ParsePeerUrl("unixs://localhost:1").ok());
  // A malformed URL keeps etcd's text.
  EXPECT_EQ(ParsePeerUrl("http://h").status().message(),
            "URL address does not have the form \"host:port\": http://h");
}

}  // namespace
}  // namespace rusd
