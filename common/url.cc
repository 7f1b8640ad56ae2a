#include "common/url.h"

#include <algorithm>
#include <cctype>

namespace rusd {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool ValidPort(std::string_view p) {
  if (p.empty() || p.size() > 5) return false;
  if (!std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return false;
  }
  return std::stoul(std::string(p)) <= 65535;
}

}  // namespace

std::string Url::HostPort() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port;
  return host + ":" + port;
}

Result<Url> ParseUrl(std::string_view raw) {
  const std::string_view url = Trim(raw);
  const std::string text(url);
  const Status bad_scheme =
      Status::InvalidArgument("URL scheme must be http, https, unix, or unixs: " + text);
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return bad_scheme;
  Url out;
  out.scheme = std::string(url.substr(0, sep));
  std::transform(out.scheme.begin(), out.scheme.end(), out.scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (out.scheme != "http" && out.scheme != "https" && out.scheme != "unix" &&
      out.scheme != "unixs") {
    return bad_scheme;
  }
  std::string_view rest = url.substr(sep + 3);
  const Status has_path = Status::InvalidArgument("URL must not contain a path: " + text);
  // etcd takes url.Parse's Host: a path (even a lone "/") is refused; rusd also refuses
  // what would hide in a query, fragment or user part.
  const size_t end = rest.find_first_of("/?#@");
  const std::string_view after = end == std::string_view::npos ? "" : rest.substr(end);
  rest = rest.substr(0, end);
  const Status bad_form =
      Status::InvalidArgument("URL address does not have the form \"host:port\": " + text);
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return bad_form;
    }
    out.host = std::string(rest.substr(1, close - 1));
    out.port = std::string(rest.substr(close + 2));
    if (out.host.empty()) return bad_form;
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || rest.find(':') != colon) return bad_form;
    out.host = std::string(rest.substr(0, colon));
    out.port = std::string(rest.substr(colon + 1));
  }
  if (out.host.find_first_of("[]") != std::string::npos || !ValidPort(out.port)) return bad_form;
  if (!after.empty()) return has_path;
  return out;
}

Result<Url> ParsePeerUrl(std::string_view raw) {
  Result<Url> u = ParseUrl(raw);
  if (!u.ok()) return u;
  const std::string text(Trim(raw));
  if (u->tls()) {
    return Status::InvalidArgument("TLS peer URLs are not supported yet (use http://): " + text);
  }
  if (u->scheme != "http") {
    return Status::InvalidArgument("unix-socket peer URLs are not supported (use http://): " +
                                   text);
  }
  return u;
}

}  // namespace rusd
