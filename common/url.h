// One parser for every URL rusd takes or dials: the flags (--listen-*-urls,
// --initial-advertise-peer-urls, --initial-cluster), the peer URLs of MemberAdd and
// MemberUpdate, the peer transport's listeners and dials, snapshot streams, and the client
// URLs a frontend forwards lease requests to and the frontend's client listeners.
//
// The rules and error texts are etcd's (types.NewURLs, client/pkg/types/urls.go): scheme
// http, https, unix or unixs (case-insensitive), an address of the form "host:port"
// (net.SplitHostPort: an IPv6 host in brackets, no other colon in the host), no path.
// Stricter than etcd in two ways, because rusd must dial what it accepts: the port must be
// a decimal number 0-65535, and a query, fragment or user part is refused as a path.
// Pure functions; any thread.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace rusd {

struct Url {
  std::string scheme;  // lower-case: http, https, unix or unixs
  std::string host;    // without the brackets of an IPv6 literal; may be empty ("all")
  std::string port;    // decimal

  bool tls() const { return scheme == "https" || scheme == "unixs"; }
  // "host:port", "[v6]:port" for an IPv6 host: what getaddrinfo-less dialers (gRPC) take.
  std::string HostPort() const;
};

// etcd's validation of one URL (surrounding spaces are ignored, as etcd trims them).
// InvalidArgument with etcd's text on failure.
Result<Url> ParseUrl(std::string_view url);

// A peer URL this build can listen on or dial: ParseUrl, then http only. https (TLS on the
// peer port) and unix sockets are refused with a clear InvalidArgument saying they are not
// supported yet, so a member nobody could reach is never accepted.
Result<Url> ParsePeerUrl(std::string_view url);

}  // namespace rusd
