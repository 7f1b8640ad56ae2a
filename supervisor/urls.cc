#include "supervisor/urls.h"

#include <algorithm>
#include <cctype>

namespace rusd::supervisor {

Result<ParsedUrl> ParseUrl(const std::string& url) {
  ParsedUrl out;
  auto sep = url.find("://");
  if (sep == std::string::npos || sep == 0) {
    return Status::InvalidArgument("URL scheme must be http, https, unix, or unixs: " + url);
  }
  out.scheme = url.substr(0, sep);
  std::transform(out.scheme.begin(), out.scheme.end(), out.scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (out.scheme != "http" && out.scheme != "https" && out.scheme != "unix" &&
      out.scheme != "unixs") {
    return Status::InvalidArgument("URL scheme must be http, https, unix, or unixs: " + url);
  }
  std::string rest = url.substr(sep + 3);
  if (out.scheme == "unix" || out.scheme == "unixs") {
    if (rest.empty()) return Status::InvalidArgument("URL must name a socket: " + url);
    out.host = rest;
    return out;
  }
  auto slash = rest.find('/');
  if (slash != std::string::npos) {
    if (slash + 1 < rest.size()) return Status::InvalidArgument("URL must not contain a path: " + url);
    rest = rest.substr(0, slash);
  }
  if (rest.find_first_of("?#@") != std::string::npos) {
    return Status::InvalidArgument("URL must not contain a path: " + url);
  }
  auto bad_form = [&url] {
    return Status::InvalidArgument("URL address does not have the form \"host:port\": " + url);
  };
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return bad_form();
    }
    out.host = rest.substr(1, close - 1);
    out.port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string::npos || rest.find(':') != colon) return bad_form();
    out.host = rest.substr(0, colon);
    out.port = rest.substr(colon + 1);
  }
  if (out.port.empty() || out.port.size() > 5 ||
      !std::all_of(out.port.begin(), out.port.end(),
                   [](unsigned char c) { return std::isdigit(c); }) ||
      std::stoul(out.port) > 65535) {
    return bad_form();
  }
  return out;
}

}  // namespace rusd::supervisor
