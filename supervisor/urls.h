// Parsing of the URLs etcd's flags take (--listen-client-urls, --initial-advertise-peer-urls,
// --initial-cluster values), with etcd's rules and error texts (client/pkg/types/urls.go):
// scheme http, https, unix or unixs; http(s) hosts must be "host:port"; no path.
// Pure functions; any thread.
#pragma once

#include <string>

#include "common/status.h"

namespace rusd::supervisor {

struct ParsedUrl {
  std::string scheme;  // lower-case
  std::string host;    // without brackets for IPv6; the socket path for unix URLs
  std::string port;    // decimal, empty for unix URLs
};

Result<ParsedUrl> ParseUrl(const std::string& url);

}  // namespace rusd::supervisor
