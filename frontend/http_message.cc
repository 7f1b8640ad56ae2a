#include "frontend/http_message.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace rusd::frontend {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c <= 32 || c >= 127) return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() &&
               HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Request Entity Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

}  // namespace

HttpParse ParseHttpRequest(std::string_view in, HttpRequest* out, size_t* consumed) {
  size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    return in.size() > kMaxHttpHeadBytes ? HttpParse::kBad : HttpParse::kIncomplete;
  }
  if (head_end > kMaxHttpHeadBytes) return HttpParse::kBad;
  std::string_view head = in.substr(0, head_end);

  size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return HttpParse::kBad;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return HttpParse::kBad;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method) || !IsToken(target) || target.front() != '/') return HttpParse::kBad;
  bool http11;
  if (version == "HTTP/1.1") {
    http11 = true;
  } else if (version == "HTTP/1.0") {
    http11 = false;
  } else {
    return HttpParse::kBad;
  }

  bool keep_alive = http11;
  size_t content_length = 0;
  std::string_view rest = line_end == std::string_view::npos ? std::string_view()
                                                             : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view h = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return HttpParse::kBad;
    std::string_view name = h.substr(0, colon);
    std::string_view value = Trim(h.substr(colon + 1));
    if (!IsToken(name)) return HttpParse::kBad;
    if (EqualsIgnoreCase(name, "Content-Length")) {
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), content_length);
      if (ec != std::errc() || p != value.data() + value.size()) return HttpParse::kBad;
      if (content_length > kMaxHttpBodyBytes) return HttpParse::kBad;
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      return HttpParse::kBad;  // chunked request bodies: nothing we serve takes a body
    } else if (EqualsIgnoreCase(name, "Connection")) {
      if (EqualsIgnoreCase(value, "close")) keep_alive = false;
      if (EqualsIgnoreCase(value, "keep-alive")) keep_alive = true;
    }
  }
  size_t total = head_end + 4 + content_length;
  if (in.size() < total) return HttpParse::kIncomplete;

  out->method = std::string(method);
  size_t q = target.find('?');
  out->path = std::string(target.substr(0, q));
  out->query = q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1));
  out->keep_alive = keep_alive;
  out->body = std::string(in.substr(head_end + 4, content_length));
  *consumed = total;
  return HttpParse::kComplete;
}

std::vector<std::string> QueryValues(std::string_view query, std::string_view name) {
  std::vector<std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (PercentDecode(pair.substr(0, eq)) != name) continue;
    if (eq == std::string_view::npos) continue;
    std::string value = PercentDecode(pair.substr(eq + 1));
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      std::string item = value.substr(start, comma == std::string::npos ? std::string::npos
                                                                        : comma - start);
      if (!item.empty()) out.push_back(item);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

bool QueryHas(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (PercentDecode(pair.substr(0, pair.find('='))) == name) return true;
  }
  return false;
}

std::string FormatHttpResponse(const HttpResponse& r, bool keep_alive) {
  std::string out;
  out.reserve(160 + r.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += Reason(r.status);
  out += "\r\n";
  if (!r.content_type.empty()) {
    out += "Content-Type: ";
    out += r.content_type;
    out += "\r\n";
  }
  for (const auto& [k, v] : r.headers) {
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  out += "Content-Length: ";
  out += std::to_string(r.body.size());
  out += "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  out += r.body;
  return out;
}

}  // namespace rusd::frontend
